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
