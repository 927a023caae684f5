"""PET plugins: frame buffering, config validation, the shipped ``pet-tof`` chain and its image output.

The end-to-end chain test uses analytic events (a point source in air on the ``small`` scanner, drawn here
without any projector) and checks the output image: geometry fields, units, the hot voxel at the source
position (within one voxel), the SUV scaling and the JSON report.
"""

from __future__ import annotations

import json

import ismrmrd
import numpy as np
import pydantic
import pytest

from plugins.pet.frame_buffer import PETFrameBuffer, PETFrameBufferConfig
from plugins.pet.items import PETFrame, PETMuMap
from plugins.pet.tof_recon import PETTOFReconstructionConfig
from plugins.runtime.chain import load_chain
from plugins.runtime.items import Report
from plugins.runtime.pipeline import run_chain
from plugins.runtime.plugin import ChainContext
from recon.tof.geometry import ImageGrid, ScannerGeometry, small_test_scanner
from recon.tof.listmode import ListModeBatch, PETAcquisitionInfo

SOURCE_XYZ_MM = (20.0, -10.0, 5.0)


def _batch(n: int, frame: int, last: bool, seed: int) -> ListModeBatch:
    rng = np.random.default_rng(seed)
    c1 = rng.integers(0, 500, n).astype(np.int32)
    return ListModeBatch(
        c1,
        c1 + 600,
        np.zeros(n, np.int16),
        np.ones(n, bool),
        (1000 * seed + np.sort(rng.integers(0, 1000, n))).astype(np.uint32),
        "small",
        frame,
        last,
    )


def test_frame_buffer_groups_batches_by_frame_and_passes_others_through() -> None:
    plugin = PETFrameBuffer(PETFrameBufferConfig(), ChainContext("test"))
    items = [
        _batch(5, 0, False, 1),
        "other",
        _batch(7, 0, True, 2),
        _batch(3, 1, False, 3),
        _batch(4, 1, False, 4),
    ]
    out = list(plugin.run(items))
    assert out[0] == "other"
    frames = [o for o in out if isinstance(o, PETFrame)]
    assert [f.frame_index for f in frames] == [0, 1]
    assert [f.events.n_events for f in frames] == [12, 7]
    assert [f.n_batches for f in frames] == [2, 2]


def test_frame_buffer_guards_memory() -> None:
    plugin = PETFrameBuffer(PETFrameBufferConfig(max_events_per_frame=10), ChainContext("test"))
    with pytest.raises(ValueError, match="max_events_per_frame"):
        list(plugin.run([_batch(6, 0, False, 1), _batch(6, 0, True, 2)]))


def test_config_rejects_unknown_keys_and_out_of_range_values() -> None:
    with pytest.raises(pydantic.ValidationError):
        PETTOFReconstructionConfig(n_subsets=0)
    with pytest.raises(pydantic.ValidationError):
        PETTOFReconstructionConfig(post_filter_fwhm_cm=0.5)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        PETTOFReconstructionConfig(kernel="opencl")  # type: ignore[arg-type]


def point_source_events(scanner: ScannerGeometry, n: int, seed: int) -> ListModeBatch:
    """Back-to-back photon pairs from a point in air: crystals hit by the two rays, TOF from the true offset."""
    rng = np.random.default_rng(seed)
    p = np.asarray(SOURCE_XYZ_MM)
    u = rng.normal(size=(4 * n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    r = scanner.detection_radius_mm
    a, b = u[:, 0] ** 2 + u[:, 1] ** 2, p[0] * u[:, 0] + p[1] * u[:, 1]
    root = np.sqrt(b * b - a * (p[0] ** 2 + p[1] ** 2 - r * r))
    ids = []
    for sign in (1.0, -1.0):
        hit = p + ((-b + sign * root) / a)[:, None] * u
        idx = (
            np.rint(np.arctan2(hit[:, 1], hit[:, 0]) / (2 * np.pi) * scanner.n_crystals_per_ring).astype(int)
            % scanner.n_crystals_per_ring
        )
        ring = np.rint(hit[:, 2] / scanner.ring_spacing_mm + (scanner.n_rings - 1) / 2).astype(int)
        ids.append((ring, idx))
    ok = (ids[0][0] >= 0) & (ids[0][0] < scanner.n_rings) & (ids[1][0] >= 0) & (ids[1][0] < scanner.n_rings)
    c1 = (ids[0][0] * scanner.n_crystals_per_ring + ids[0][1])[ok][:n]
    c2 = (ids[1][0] * scanner.n_crystals_per_ring + ids[1][1])[ok][:n]
    table = scanner.crystal_positions_mm().astype(np.float64)
    direction = table[c2] - table[c1]
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    d = np.sum((p - 0.5 * (table[c1] + table[c2])) * direction, axis=1) + rng.normal(
        0, scanner.tof_sigma_mm(), c1.size
    )
    k = scanner.max_tof_bin
    bins = np.clip(np.rint(d / scanner.tof_bin_width_mm()), -k, k).astype(np.int16)
    m = c1.size
    return ListModeBatch(
        c1.astype(np.int32),
        c2.astype(np.int32),
        bins,
        np.ones(m, bool),
        np.linspace(0, 9999, m).astype(np.uint32),
        scanner.name,
        0,
        True,
    )


@pytest.mark.parametrize("output", ["bq_per_ml", "suv"])
def test_pet_tof_chain_emits_a_quantified_image_with_geometry(output: str) -> None:
    scanner = small_test_scanner()
    chain = load_chain(
        "pet-tof",
        {
            "pet_tof_osem.voxel_size_mm": 4.0,
            "pet_tof_osem.transaxial_fov_mm": 120.0,
            "pet_tof_osem.n_iterations": 2,
            "pet_tof_osem.n_subsets": 2,
            "pet_tof_osem.post_filter_fwhm_mm": 0.0,
            "pet_tof_osem.max_sensitivity_pairs": 200_000,
            "pet_tof_osem.kernel": "numba",
            "pet_tof_osem.output": output,
        },
    )
    batch = point_source_events(scanner, 20_000, seed=3)
    info = PETAcquisitionInfo("small", 0.0, 10.0, "F-18", 6586.2, 3.0e8, -1800.0, 70.0)
    grid = ImageGrid.centred((16, 30, 30), (4.0, 4.0, 4.0))
    mu = PETMuMap(np.zeros(grid.shape_zyx, np.float32), grid)  # air: no attenuation, tails everywhere
    out = run_chain(chain, [info, mu, batch], ChainContext("pet-tof"))
    images = [o for o in out if isinstance(o, ismrmrd.Image)]
    reports = [o for o in out if isinstance(o, Report)]
    assert len(images) == 1 and len(reports) == 1
    image = images[0]
    volume = image.data[0]  # (z, y, x)
    n_z = round(scanner.axial_fov_mm / 4.0)
    assert volume.shape == (n_z, 30, 30)
    assert tuple(image.field_of_view) == pytest.approx((120.0, 120.0, n_z * 4.0))
    assert tuple(image.read_dir) == (1.0, 0.0, 0.0) and tuple(image.slice_dir) == (0.0, 0.0, 1.0)
    meta = ismrmrd.Meta.deserialize(image.attribute_string)
    assert meta["Units"] == ("SUVbw" if output == "suv" else "Bq/ml")
    hottest = np.unravel_index(np.argmax(volume), volume.shape)
    centre = np.asarray(image.position)  # (x, y, z) of the volume centre
    voxel_xyz = [centre[a] + (hottest[2 - a] - (volume.shape[2 - a] - 1) / 2.0) * 4.0 for a in range(3)]
    assert np.allclose(voxel_xyz, SOURCE_XYZ_MM, atol=4.0 + 1e-6), voxel_xyz
    report = json.loads(reports[0].content)
    assert report["n_prompts"] == batch.n_events and report["n_delayeds"] == 0
    if output == "suv":
        assert float(meta["SUVbwScaleFactor"]) == pytest.approx(
            70_000.0 / (3.0e8 * 2 ** (-1800.0 / 6586.2)), rel=1e-6
        )


def test_frame_buffer_names_a_frame_cut_by_an_interrupted_stream() -> None:
    from plugins.runtime.items import IncompleteUnit, StreamInterrupted

    plugin = PETFrameBuffer(PETFrameBufferConfig(), ChainContext("test"))
    marker = StreamInterrupted("the journaled session ends without CLOSE", 9)
    out = list(plugin.run([_batch(5, 0, False, 1), _batch(7, 0, True, 2), _batch(3, 1, False, 3), marker]))
    frames = [o for o in out if isinstance(o, PETFrame)]
    (cut,) = [o for o in out if isinstance(o, IncompleteUnit)]
    assert [f.frame_index for f in frames] == [0] and out[-1] is marker
    assert cut.kind == "frame" and cut.index == 1 and cut.readouts_received == 3
    assert "never came" in cut.missing
