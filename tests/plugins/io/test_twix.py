"""Siemens twix import on the real example files published with twixtools (fetched by
``scripts/fetch_twix_examples.py``; the tests skip when they are absent)."""

from __future__ import annotations

import os
from pathlib import Path

import ismrmrd
import numpy as np
import pytest

from plugins.cli import main
from plugins.io.formats import detect_format
from plugins.io.ismrmrd_files import open_raw
from plugins.io.mr_header import mr_header
from plugins.io.twix_files import _directions
from plugins.runtime.items import StreamInterrupted
from tests.plugins.io.mrd2_cases import correlation, images_of, read_run_images

EXAMPLES = Path(
    os.environ.get("RECONSTREAM_TWIX_EXAMPLES", Path(__file__).resolve().parents[3] / "out" / "twix_examples")
)


def _example(name: str) -> Path:
    path = EXAMPLES / name
    if not path.is_file():
        pytest.skip(f"twix example {name} absent from {EXAMPLES}: run scripts/fetch_twix_examples.py")
    return path


def _twixtools_rss(path: Path) -> tuple[np.ndarray, dict]:
    """Plain reference from twixtools alone: image readouts by line, inverse FFT, crop 2× oversampling, RSS."""
    import twixtools

    (meas,) = twixtools.read_twix(str(path), verbose=False)[-1:]
    readouts = [m for m in meas["mdb"] if m.is_image_scan()]
    n_coils, n_samples = readouts[0].data.shape
    kspace = np.zeros((n_coils, max(m.cLin for m in readouts) + 1, n_samples), np.complex64)
    for m in readouts:
        kspace[:, m.cLin, :] = m.data
    coil_images = np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), axes=(-2, -1)), axes=(-2, -1)
    )
    cropped = coil_images[..., n_samples // 4 : n_samples // 4 + n_samples // 2]
    return np.sqrt((np.abs(cropped) ** 2).sum(axis=0)), meas["hdr"]


def test_quaternion_gives_siemens_p_r_s_columns() -> None:
    read, phase, slice_ = _directions((1.0, 0.0, 0.0, 0.0))
    assert phase == (1.0, 0.0, 0.0) and read == (0.0, 1.0, 0.0) and slice_ == (0.0, 0.0, 1.0)
    half = np.sqrt(0.5)  # 90° about the slice normal: phase and read turn in plane
    read, phase, slice_ = _directions((half, 0.0, 0.0, half))
    assert np.allclose(phase, (0, 1, 0)) and np.allclose(read, (-1, 0, 0)) and np.allclose(slice_, (0, 0, 1))


def test_gre_converts_and_reconstructs_like_a_plain_fft(tmp_path: Path) -> None:
    gre = _example("gre.dat")
    assert detect_format(gre).kind == "twix"
    converted = tmp_path / "gre.h5"
    assert main(["convert", "twix", str(gre), "--out", str(converted)]) == 0
    reference, hdr = _twixtools_rss(gre)
    for source in (converted, gre):  # the converted file, and the .dat directly
        out = tmp_path / f"run_{source.suffix[1:]}"
        assert main(["run", "--chain", "cartesian", "--input", str(source), "--out", str(out)]) == 0
        (image,) = read_run_images(out)
        assert correlation(images_of([image])[0], reference) >= 0.97
        geometry = hdr["MeasYaps"]["sSliceArray"]["asSlice"][0]
        position = [geometry["sPosition"][k] for k in ("dSag", "dCor", "dTra")]
        normal = [geometry["sNormal"].get(k, 0.0) for k in ("dSag", "dCor", "dTra")]
        assert np.allclose(image.position, position, atol=1e-3)
        assert np.allclose(image.slice_dir, normal, atol=1e-5)
        assert abs(np.dot(image.read_dir, image.phase_dir)) < 1e-6
        assert np.allclose(
            image.field_of_view, (geometry["dReadoutFOV"], geometry["dPhaseFOV"], geometry["dThickness"])
        )


def test_gre_header_has_units_and_oversampling() -> None:
    raw = open_raw(_example("gre.dat"))
    typed = mr_header(raw.header)
    list(raw.items)
    assert typed is not None
    enc = typed.encodings[0]
    assert enc.encoded.matrix == (320, 160, 1) and enc.recon.matrix == (160, 160, 1)
    assert enc.encoded.fov_mm == (400.0, 200.0, 4.0)
    assert typed.tr_ms == (10.0,) and typed.te_ms == (3.0,) and typed.flip_angle_deg == (15.0,)
    assert typed.field_strength_t == pytest.approx(2.894, abs=1e-3) and typed.larmor_hz == 123263034


def test_epi_keeps_reflect_and_phase_correction_flags() -> None:
    import twixtools

    epi = _example("epi.dat")
    (meas,) = twixtools.read_twix(str(epi), verbose=False)[-1:]
    mdbs = [m for m in meas["mdb"] if not m.is_flag_set("SYNCDATA")]
    acquisitions = [a for a in open_raw(epi).items if isinstance(a, ismrmrd.Acquisition)]
    assert len(acquisitions) == len(mdbs)
    for flag, twix_name in ((ismrmrd.ACQ_IS_REVERSE, "REFLECT"), (ismrmrd.ACQ_IS_PHASECORR_DATA, "PHASCOR")):
        expected = sum(m.is_flag_set(twix_name) for m in mdbs)
        assert expected > 0 and sum(a.is_flag_set(flag) for a in acquisitions) == expected
    assert [a.idx.kspace_encode_step_1 for a in acquisitions] == [m.cLin for m in mdbs]


def test_cut_twix_keeps_complete_readouts_and_names_the_offset(tmp_path: Path) -> None:
    data = _example("gre.dat").read_bytes()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[:1_200_000])
    items = list(open_raw(cut).items)
    assert isinstance(items[-1], StreamInterrupted) and "cut at byte 1200000" in items[-1].reason
    n_complete = len(items) - 1
    assert 0 < n_complete < 160
    assert main(["convert", "twix", str(cut), "--out", str(tmp_path / "cut.h5")]) == 6
    back = [a for a in open_raw(tmp_path / "cut.h5").items if isinstance(a, ismrmrd.Acquisition)]
    assert len(back) == n_complete
    header_only = tmp_path / "header_cut.dat"
    header_only.write_bytes(data[:20_000])
    assert main(["convert", "twix", str(header_only), "--out", str(tmp_path / "h.h5")]) == 2


def _readout_offset(path: Path, k: int) -> int:
    """Byte offset of the k-th readout (twixtools' own parse) of the last measurement."""
    import twixtools

    (meas,) = twixtools.read_twix(str(path), verbose=False)[-1:]
    return int(meas["mdb"][k].mem_pos)


@pytest.mark.parametrize("damage", ["impossible_dma_length", "garbage_mdh"])
def test_corrupt_readout_header_names_file_and_offset(
    tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gre = _example("gre.dat")
    data = bytearray(gre.read_bytes())
    pos = _readout_offset(gre, 80)  # a readout in the middle of the 160
    if damage == "impossible_dma_length":  # keep the flag bits, announce 1 byte more than the readout takes
        (word,) = np.frombuffer(bytes(data[pos : pos + 4]), "<u4")
        data[pos : pos + 4] = np.uint32(int(word) + 1).tobytes()
    else:  # garbage over the first 40 bytes (length, IDs, time stamps, table) and samples / channels
        garbage = np.random.default_rng(7).integers(0, 256, 56, dtype=np.uint8).tobytes()
        data[pos : pos + 40] = garbage[:40]
        data[pos + 48 : pos + 52] = garbage[40:44]
    corrupt = tmp_path / "corrupt.dat"
    corrupt.write_bytes(bytes(data))

    items = list(open_raw(corrupt).items)
    assert isinstance(items[-1], StreamInterrupted)
    reason = items[-1].reason
    assert "\n" not in reason and str(corrupt) in reason and f"byte {pos} is corrupt" in reason
    assert len(items) - 1 == 80
    out = tmp_path / "corrupt.h5"
    capsys.readouterr()
    assert main(["convert", "twix", str(corrupt), "--out", str(out)]) == 6
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(corrupt) in err and f"byte {pos}" in err
    back = [a for a in open_raw(out).items if isinstance(a, ismrmrd.Acquisition)]
    original = [a for a in open_raw(gre).items if isinstance(a, ismrmrd.Acquisition)][:80]
    assert [a.scan_counter for a in back] == [a.scan_counter for a in original]
    assert all(np.array_equal(a.data, b.data) for a, b in zip(back, original, strict=True))


def test_vb_file_with_short_acqend_block_converts_completely(tmp_path: Path) -> None:
    """A real VB (single-raid) file whose final ACQEND block announces more bytes than the file holds, as VB
    files do: every readout converts and no cut is reported (twixtools' own parse gives the reference)."""
    import twixtools

    vb = _example("pulseq_epi_vb.dat")
    (meas,) = twixtools.read_twix(str(vb), verbose=False)[-1:]
    mdbs = [m for m in meas["mdb"] if not m.is_flag_set("SYNCDATA") and not m.is_flag_set("ACQEND")]
    items = list(open_raw(vb).items)
    assert not any(isinstance(item, StreamInterrupted) for item in items)
    acquisitions = [a for a in items if isinstance(a, ismrmrd.Acquisition)]
    assert len(acquisitions) == len(mdbs) == 96
    assert [a.scan_counter for a in acquisitions] == [int(m.mdh.ScanCounter) for m in mdbs]
    assert all(np.array_equal(a.data, m.data) for a, m in zip(acquisitions, mdbs, strict=True))
    assert main(["convert", "twix", str(vb), "--out", str(tmp_path / "vb.h5")]) == 0


# --- Files assembled from real data with twixtools' own writer (``twixtools.write_twix``) -------------------
# No public real file holds several measurements, noise adjustment readouts or PAT reference readouts, so
# these tests build them in tmp_path from the real gre.dat: REAL READOUTS (data, counters, geometry, time
# stamps untouched) RE-FLAGGED BY THE TEST as noise / PAT reference scans.  Nothing here is committed.

N_NOISE = 8  # gre.dat readouts 0..7, re-flagged NOISEADJSCAN by the test
N_EXTRA = (
    4  # gre.dat readouts 8..11, left as imaging readouts of the earlier measurement (must not be carried)
)
N_GRE = 160


def _read_gre(gre: Path) -> dict:
    import twixtools

    (meas,) = twixtools.read_twix(str(gre), verbose=False)
    return meas


@pytest.fixture
def two_measurements(tmp_path: Path) -> Path:
    """A VE multi-raid file written by ``twixtools.write_twix``: measurement 0 = gre.dat's first 12 readouts,
    the first 8 of them re-flagged by the test as a noise adjustment scan (flags replaced by NOISEADJSCAN,
    MeasUID and the raid entry's measId one lower, as an earlier measurement has); measurement 1 = the real
    gre.dat measurement, unchanged (write_twix only renumbers ScanCounter from 1 and adds ACQEND)."""
    import twixtools

    gre = _example("gre.dat")
    noise, image = _read_gre(gre), _read_gre(gre)
    noise["mdb"] = noise["mdb"][: N_NOISE + N_EXTRA]
    for mdb in noise["mdb"][:N_NOISE]:
        mdb.clear_all_flags()
        mdb.add_flag("NOISEADJSCAN")
        mdb.mdh.MeasUID = int(mdb.mdh.MeasUID) - 1
    noise["raidfile_hdr"] = noise["raidfile_hdr"].copy()
    noise["raidfile_hdr"]["measId_"] -= 1
    path = tmp_path / "noise_then_gre.dat"
    twixtools.write_twix([noise, image], str(path))
    check = twixtools.read_twix(str(path), verbose=False)  # twixtools reads back what it wrote
    assert [len(m["mdb"]) for m in check] == [N_NOISE + N_EXTRA, N_GRE]
    return path


def _acquisitions(path: Path) -> list[ismrmrd.Acquisition]:
    items = list(open_raw(path).items)
    assert not any(isinstance(item, StreamInterrupted) for item in items)
    return [a for a in items if isinstance(a, ismrmrd.Acquisition)]


def _is_noise(acquisitions: list[ismrmrd.Acquisition]) -> list[bool]:
    return [a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT) for a in acquisitions]


def test_multi_raid_default_is_last_measurement_with_earlier_noise_in_front(two_measurements: Path) -> None:
    from plugins.io.twix_files import read_twix_input

    gre = _acquisitions(_example("gre.dat"))
    acquisitions = _acquisitions(two_measurements)  # the default: the last measurement
    assert len(acquisitions) == N_NOISE + N_GRE
    assert _is_noise(acquisitions) == [True] * N_NOISE + [False] * N_GRE
    noise, image = acquisitions[:N_NOISE], acquisitions[N_NOISE:]
    # the noise readouts are gre.dat's first 8 (re-flagged), from measurement 0 (MeasUID one lower)
    assert all(np.array_equal(a.data, g.data) for a, g in zip(noise, gre, strict=False))
    assert {a.measurement_uid for a in noise} == {gre[0].measurement_uid - 1}
    # then the real measurement, readout for readout (the 4 imaging readouts of measurement 0 are not carried)
    assert all(np.array_equal(a.data, g.data) for a, g in zip(image, gre, strict=True))
    assert [a.idx.kspace_encode_step_1 for a in image] == [g.idx.kspace_encode_step_1 for g in gre]
    assert [a.flags for a in image] == [g.flags for g in gre]
    assert {a.measurement_uid for a in image} == {gre[0].measurement_uid}
    # the header is measurement 1's, from its first imaging readout (not from a noise readout)
    header = mr_header(read_twix_input(two_measurements).header)
    assert header is not None and header.encodings[0].encoded.matrix == (320, 160, 1)


def test_multi_raid_measurement_option_selects(two_measurements: Path, tmp_path: Path) -> None:
    src = str(two_measurements)
    default, last, first, from_end = (tmp_path / f"{name}.h5" for name in ("default", "m1", "m0", "m-2"))
    assert main(["convert", "twix", src, "--out", str(default)]) == 0
    assert main(["convert", "twix", src, "--out", str(last), "--measurement", "1"]) == 0
    assert main(["convert", "twix", src, "--out", str(first), "--measurement", "0"]) == 0
    assert main(["convert", "twix", src, "--out", str(from_end), "--measurement", "-2"]) == 0
    assert (
        _is_noise(_acquisitions(default))
        == _is_noise(_acquisitions(last))
        == [True] * N_NOISE + [False] * N_GRE
    )
    for path in (first, from_end):  # measurement 0 alone: its own noise readouts first, nothing carried in
        assert _is_noise(_acquisitions(path)) == [True] * N_NOISE + [False] * N_EXTRA
    assert main(["convert", "twix", src, "--out", str(tmp_path / "m2.h5"), "--measurement", "2"]) != 0
    assert not (tmp_path / "m2.h5").exists()

    assert main(["convert", "twix", src, "--out", str(tmp_path / "all.h5"), "--measurement", "all"]) == 0
    assert sorted(p.name for p in tmp_path.glob("all*")) == ["all_meas0.h5", "all_meas1.h5"]
    each = [_acquisitions(tmp_path / f"all_meas{k}.h5") for k in (0, 1)]
    assert _is_noise(each[0]) == [True] * N_NOISE + [False] * N_EXTRA
    assert _is_noise(each[1]) == [True] * N_NOISE + [False] * N_GRE
    by_option = _acquisitions(last)
    assert all(np.array_equal(a.data, b.data) for a, b in zip(each[1], by_option, strict=True))


def test_multi_raid_image_equals_the_single_file_image(two_measurements: Path, tmp_path: Path) -> None:
    """Through the ``cartesian`` chain the assembled file gives gre.dat's image.  The noise readouts are real
    image readouts (signal, not noise), so whitening with them would change the image: both runs set
    ``noise.min_noise_samples`` above the 8 × 320 samples, so the noise stage takes and drops them unused."""
    images = []
    for source in (_example("gre.dat"), two_measurements):
        out = tmp_path / f"run_{source.stem}"
        args = ["run", "--chain", "cartesian", "--input", str(source), "--out", str(out)]
        assert main([*args, "--set", "noise.min_noise_samples=10000"]) == 0
        (image,) = read_run_images(out)
        images.append(image)
    single, assembled = images
    assert np.array_equal(assembled.data, single.data)
    assert np.allclose(assembled.position, single.position) and np.allclose(
        assembled.slice_dir, single.slice_dir
    )


def test_pat_reference_flags_map_from_reflagged_real_readouts(tmp_path: Path) -> None:
    """gre.dat written back by ``twixtools.write_twix`` with 8 centre lines re-flagged BY THE TEST as
    PATREFANDIMASCAN and 8 other readouts as PATREFSCAN (real readouts; only their flags change)."""
    import twixtools

    gre = _example("gre.dat")
    meas = _read_gre(gre)
    ref_and_image = set(range(76, 84))
    ref_only = set(range(20, 28))
    for k, mdb in enumerate(meas["mdb"]):
        if k in ref_and_image:
            mdb.add_flag("PATREFANDIMASCAN")
        elif k in ref_only:
            mdb.add_flag("PATREFSCAN")
    path = tmp_path / "patref.dat"
    twixtools.write_twix(meas, str(path))

    acquisitions = _acquisitions(path)
    original = _acquisitions(gre)
    assert len(acquisitions) == len(original) == N_GRE
    calibration = {
        k for k, a in enumerate(acquisitions) if a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)
    }
    both = {
        k
        for k, a in enumerate(acquisitions)
        if a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)
    }
    assert calibration == ref_only and both == ref_and_image
    calib_bits = (1 << (ismrmrd.ACQ_IS_PARALLEL_CALIBRATION - 1)) | (
        1 << (ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING - 1)
    )
    for a, o in zip(acquisitions, original, strict=True):  # nothing else changes
        assert a.flags & ~calib_bits == o.flags and np.array_equal(a.data, o.data)
    # time stamps of the real readouts: TimeStamp and PMUTimeStamp (2.5 ms ticks) as twixtools reads them
    mdhs = [m.mdh for m in _read_gre(gre)["mdb"]]
    assert [a.acquisition_time_stamp for a in original] == [int(m.TimeStamp) for m in mdhs]
    assert [a.physiology_time_stamp[0] for a in original] == [int(m.PMUTimeStamp) for m in mdhs]
