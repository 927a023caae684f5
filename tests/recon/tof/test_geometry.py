"""Tests of the PET scanner geometry, the image grid and the list-mode wire format."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recon.tof.geometry import (
    ImageGrid,
    ScannerGeometry,
    mmr_like,
    scanner_by_name,
    signa_like,
    small_test_scanner,
)
from recon.tof.listmode import (
    MESSAGE_ID_LISTMODE_BATCH,
    ListModeBatch,
    PETAcquisitionInfo,
    concatenate_batches,
    decode_batch,
    decode_message,
    encode_batch,
    encode_message,
    validate_batch_for_scanner,
)


@pytest.mark.parametrize("name", ["signa", "mmr", "small"])
def test_crystal_positions_lie_on_the_detection_cylinder(name: str) -> None:
    scanner = scanner_by_name(name)
    positions = scanner.crystal_positions_mm()
    assert positions.shape == (scanner.n_crystals, 3)
    assert positions.dtype == np.float32
    radius = np.hypot(positions[:, 0], positions[:, 1])
    np.testing.assert_allclose(radius, scanner.ring_radius_mm + scanner.depth_of_interaction_mm, rtol=1e-6)
    # z centred on 0, ring pitch as configured, crystal id = ring * n_per_ring + index
    np.testing.assert_allclose(positions[:, 2].mean(), 0.0, atol=1e-3)
    ring, index = scanner.ring_and_index(np.arange(scanner.n_crystals))
    np.testing.assert_array_equal(scanner.crystal_id(ring, index), np.arange(scanner.n_crystals))
    dz = positions[scanner.n_crystals_per_ring, 2] - positions[0, 2]
    assert dz == pytest.approx(scanner.ring_spacing_mm, rel=1e-5)
    # neighbouring crystals in a ring are one pitch apart
    step = np.linalg.norm(positions[1] - positions[0])
    pitch = 2 * (scanner.detection_radius_mm) * math.sin(math.pi / scanner.n_crystals_per_ring)
    assert step == pytest.approx(pitch, rel=1e-5)


def test_signa_and_mmr_figures() -> None:
    signa, mmr = signa_like(), mmr_like()
    # σ along the LOR = c·FWHM/(2·2.355) ≈ 24.8 mm at 390 ps (DESIGN.md)
    assert signa.tof_sigma_mm() == pytest.approx(24.8, abs=0.1)
    assert signa.tof_bin_width_mm() == pytest.approx(0.299792458 * 89.0 / 2)
    assert signa.n_crystals == 448 * 45 and mmr.n_crystals == 448 * 64
    assert signa.axial_fov_mm == pytest.approx(250.0, abs=1.0)
    assert mmr.axial_fov_mm == pytest.approx(258.0, abs=1.0)
    assert not mmr.is_tof and math.isinf(mmr.tof_sigma_mm()) and mmr.n_tof_bins == 1
    assert small_test_scanner().is_tof


def test_invalid_scanner_is_rejected() -> None:
    good = signa_like()
    fields = {f: getattr(good, f) for f in good.__dataclass_fields__}
    with pytest.raises(ValueError, match="odd"):
        ScannerGeometry(**{**fields, "n_tof_bins": 44})
    with pytest.raises(ValueError, match="non-TOF"):
        ScannerGeometry(**{**fields, "tof_fwhm_ps": None})
    with pytest.raises(ValueError, match="511"):
        ScannerGeometry(**{**fields, "energy_window_kev": (520.0, 650.0)})
    with pytest.raises(ValueError, match="unknown scanner"):
        scanner_by_name("vereos")


def test_image_grid_centres_and_indices() -> None:
    grid = ImageGrid.centred((3, 4, 5), (2.0, 1.0, 1.5))
    z, y, x = grid.voxel_centres_mm()
    assert z.shape == (3, 4, 5)
    np.testing.assert_allclose([z.mean(), y.mean(), x.mean()], 0.0, atol=1e-12)
    assert grid.voxel_volume_ml == pytest.approx(3e-3)
    points = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)  # (x, y, z)
    index = grid.index_of_points(points + 0.2)
    expected = np.stack(np.unravel_index(np.arange(grid.n_voxels), grid.shape_zyx), axis=1)
    np.testing.assert_array_equal(index, expected)
    assert np.all(grid.index_of_points(np.array([[100.0, 0.0, 0.0]])) == -1)
    lower, upper = grid.bounds_mm()
    np.testing.assert_allclose(upper - lower, [6.0, 4.0, 7.5])


def _batch(n_events: int, seed: int = 0) -> ListModeBatch:
    rng = np.random.default_rng(seed)
    c1 = rng.integers(0, 1000, n_events).astype(np.int32)
    return ListModeBatch(
        crystal_id_1=c1,
        crystal_id_2=((c1 + rng.integers(1, 999, n_events)) % 1000).astype(np.int32),
        tof_bin=rng.integers(-22, 23, n_events).astype(np.int16),
        is_prompt=rng.random(n_events) < 0.8,
        time_ms=np.sort(rng.integers(0, 2**32 - 1, n_events, dtype=np.uint32)),
        scanner="signa",
        frame_index=3,
        is_last_in_frame=True,
    )


@pytest.mark.parametrize("n_events", [0, 1, 1000])
def test_wire_format_round_trip(n_events: int) -> None:
    batch = _batch(n_events)
    message = encode_message(batch)
    assert int.from_bytes(message[:2], "little") == MESSAGE_ID_LISTMODE_BATCH
    payload_length = int.from_bytes(message[2:10], "little")
    header_length = int.from_bytes(message[10:14], "little")
    assert len(message) == 10 + payload_length == 14 + header_length + 15 * n_events
    assert message[10:] == encode_batch(batch)
    for decoded in (decode_message(message), decode_batch(encode_batch(batch))):
        for field in ("crystal_id_1", "crystal_id_2", "tof_bin", "is_prompt", "time_ms"):
            np.testing.assert_array_equal(getattr(decoded, field), getattr(batch, field))
            assert getattr(decoded, field).dtype == getattr(batch, field).dtype
        assert (decoded.scanner, decoded.frame_index, decoded.is_last_in_frame) == ("signa", 3, True)
    with pytest.raises(ValueError):
        decode_message(message[:-1] if n_events else message + b"\0")
    with pytest.raises(ValueError):
        decode_batch(encode_batch(batch) + b"\0")


def test_batch_validation() -> None:
    batch = _batch(10)
    with pytest.raises(TypeError):
        ListModeBatch(**{**batch.__dict__, "tof_bin": batch.tof_bin.astype(np.int32)})
    with pytest.raises(ValueError, match="events"):
        ListModeBatch(**{**batch.__dict__, "time_ms": batch.time_ms[:-1]})
    with pytest.raises(ValueError, match="different crystals"):
        ListModeBatch(**{**batch.__dict__, "crystal_id_2": batch.crystal_id_1.copy()})
    with pytest.raises(ValueError, match="non-decreasing"):
        ListModeBatch(**{**batch.__dict__, "time_ms": batch.time_ms[::-1].copy()})
    validate_batch_for_scanner(batch, n_crystals=1000, n_tof_bins=45)
    with pytest.raises(ValueError, match="TOF"):
        validate_batch_for_scanner(batch, n_crystals=1000, n_tof_bins=5)
    first = np.arange(10) < 4
    joined = concatenate_batches([batch.select(first), batch.select(~first)])
    np.testing.assert_array_equal(joined.crystal_id_1, batch.crystal_id_1)
    assert joined.n_prompts + joined.n_delayeds == 10


def test_acquisition_info_validation_and_decay() -> None:
    info = PETAcquisitionInfo("signa", 0.0, 600.0, "F-18", 6586.2, 3.7e8, -3600.0, 75.0)
    assert info.decay_factor_at_frame_start() == pytest.approx(2 ** (-3600 / 6586.2))
    with pytest.raises(ValueError):
        PETAcquisitionInfo("signa", 0.0, 0.0, "F-18", 6586.2, 3.7e8, 0.0, 75.0)
    with pytest.raises(ValueError):
        PETAcquisitionInfo(
            "signa", 0.0, 1.0, "F-18", 6586.2, 3.7e8, 0.0, 75.0, crystal_efficiencies=np.array([-1.0])
        )
