"""PETSIRD writing and reading: scanner geometry mapping, list-mode round trip, foreign files."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import petsird
import pytest

from plugins.io.petsird_io import (
    PETSIRDWriter,
    crystal_efficiencies_from_information,
    detection_bin_centres_mm,
    petsird_header,
    read_petsird,
    read_petsird_raw,
    scanner_geometry_from_information,
    scanner_information,
    time_blocks_of_batch,
    write_petsird,
)
from plugins.runtime.plugin import ChainContext
from recon.tof.geometry import mmr_like, scanner_by_name, small_test_scanner
from recon.tof.listmode import ListModeBatch, concatenate_batches


def _events(n_events: int, seed: int, time_offset_ms: int = 0) -> ListModeBatch:
    scanner = small_test_scanner()
    rng = np.random.default_rng(seed)
    a = rng.integers(0, scanner.n_crystals, n_events)
    b = (a + rng.integers(1, scanner.n_crystals, n_events)) % scanner.n_crystals
    return ListModeBatch(
        crystal_id_1=np.minimum(a, b).astype(np.int32),
        crystal_id_2=np.maximum(a, b).astype(np.int32),
        tof_bin=rng.integers(-scanner.max_tof_bin, scanner.max_tof_bin + 1, n_events).astype(np.int16),
        is_prompt=rng.random(n_events) < 0.8,
        time_ms=(np.sort(rng.integers(0, 40, n_events)) + time_offset_ms).astype(np.uint32),
        scanner="small",
    )


@pytest.mark.parametrize("name", ["signa", "mmr", "small"])
def test_scanner_information_round_trip(name: str) -> None:
    scanner = scanner_by_name(name)
    info = scanner_information(scanner)
    assert scanner_geometry_from_information(info) == scanner
    # crystal centres of the PETSIRD boxes lie at the crystal's mid-depth on our crystal axes
    centres = detection_bin_centres_mm(info)
    positions = scanner.crystal_positions_mm().astype(np.float64)
    unit_xy = positions[:, :2] / np.linalg.norm(positions[:, :2], axis=1, keepdims=True)
    expected_xy = unit_xy * (scanner.ring_radius_mm + scanner.crystal_size_mm[2] / 2.0)
    np.testing.assert_allclose(centres[:, :2], expected_xy, atol=0.02)
    np.testing.assert_allclose(centres[:, 2], positions[:, 2], atol=0.02)


def test_unknown_model_gets_a_derived_geometry() -> None:
    scanner = dataclasses.replace(mmr_like(), name="custom", n_rings=8)
    derived = scanner_geometry_from_information(scanner_information(scanner))
    assert derived.name == "custom" and derived.n_rings == 8 and derived.n_crystals_per_ring == 448
    assert derived.ring_radius_mm == pytest.approx(scanner.ring_radius_mm, abs=0.01)
    assert derived.crystal_size_mm == pytest.approx(scanner.crystal_size_mm, abs=1e-4)
    assert derived.coincidence_window_ns == pytest.approx(scanner.coincidence_window_ns, rel=1e-5)
    assert not derived.is_tof


def test_list_mode_round_trip(tmp_path: Path) -> None:
    scanner = small_test_scanner()
    batches = [_events(3000, 1), _events(2000, 2, time_offset_ms=40)]
    efficiencies = np.random.default_rng(3).uniform(0.8, 1.1, scanner.n_crystals).astype(np.float32)
    path = tmp_path / "scan.petsird"
    assert (
        write_petsird(path, scanner, batches, crystal_efficiencies=efficiencies, patient_weight_kg=70.0)
        == 5000
    )
    read_scanner, read_batches, header = read_petsird(path, events_per_batch=1000)
    assert read_scanner == scanner
    assert read_batches[-1].is_last_in_frame and all(b.n_events >= 1000 for b in read_batches[:-1])
    np.testing.assert_array_equal(crystal_efficiencies_from_information(header.scanner), efficiencies)
    assert header.exam is not None and header.exam.patient.patients_weight == pytest.approx(70.0)
    written, read = concatenate_batches(batches), concatenate_batches(read_batches)
    fields = ("time_ms", "is_prompt", "crystal_id_1", "crystal_id_2", "tof_bin")
    # within one millisecond PETSIRD stores prompts and delayeds in separate lists: compare sorted
    order_w = np.lexsort([getattr(written, f) for f in reversed(fields)])
    order_r = np.lexsort([getattr(read, f) for f in reversed(fields)])
    for field in fields:
        np.testing.assert_array_equal(getattr(read, field)[order_r], getattr(written, field)[order_w])


def test_a_petsird_input_gives_the_chain_its_acquisition_info(tmp_path: Path) -> None:
    """``run``/``send`` of a PETSIRD file: the calibration's efficiencies, the weight and the frame reach the
    reconstruction (``pet_acquisition_info``), not only the events."""
    from plugins.runtime.session import combined_inputs

    scanner = small_test_scanner()
    batches = [_events(3000, 1, time_offset_ms=5), _events(2000, 2, time_offset_ms=50)]
    efficiencies = np.random.default_rng(4).uniform(0.8, 1.1, scanner.n_crystals).astype(np.float32)
    path = tmp_path / "scan.petsird"
    write_petsird(path, scanner, batches, crystal_efficiencies=efficiencies, patient_weight_kg=82.5)
    _header, extras, items = combined_inputs([path])
    info = extras["pet_acquisition_info"]
    np.testing.assert_array_equal(info.crystal_efficiencies, efficiencies)
    assert info.patient_weight_kg == pytest.approx(82.5)
    assert info.scanner == "small" and info.injected_dose_bq == 0.0  # no dose in the file: no SUV
    first = min(int(b.time_ms[0]) for b in batches)
    last = max(int(b.time_ms[-1]) for b in batches)
    assert info.frame_start_s == pytest.approx(first / 1000.0)
    assert info.frame_duration_s == pytest.approx((last - first + 1) / 1000.0)
    assert sum(b.n_events for b in items) == 5000


def test_petsird_stores_ordered_pairs_and_tof_sign(tmp_path: Path) -> None:
    scanner = small_test_scanner()
    batch = ListModeBatch(
        crystal_id_1=np.array([5], np.int32), crystal_id_2=np.array([700], np.int32), tof_bin=np.array([3], np.int16),
        is_prompt=np.array([True]), time_ms=np.array([7], np.uint32), scanner="small",
    )  # fmt: skip
    write_petsird(tmp_path / "one.petsird", scanner, [batch])
    header, blocks = read_petsird_raw(tmp_path / "one.petsird")
    # PETSIRD: first detection bin >= second; tof value (t1 - t2)·c/2 of the first bin = -d
    np.testing.assert_array_equal(blocks[0].detection_bins, [[700, 5]])
    edges = np.asarray(header.scanner.tof_bin_edges[0][0].edges)
    centre = (edges[blocks[0].tof_idx[0]] + edges[blocks[0].tof_idx[0] + 1]) / 2
    assert centre == pytest.approx(-3 * scanner.tof_bin_width_mm(), abs=1e-3)
    assert blocks[0].start_ms == 7


def test_file_from_the_petsird_generator_is_read(tmp_path: Path) -> None:
    path = tmp_path / "generated.petsird"
    with path.open("wb") as stream:
        subprocess.run(
            [sys.executable, "-m", "petsird.helpers.generator"], stdout=stream, check=True, timeout=120
        )
    header, blocks = read_petsird_raw(path)
    assert header.scanner.model_name == "PETSIRD_TEST"
    assert len(blocks) > 0 and sum(b.tof_idx.size for b in blocks) > 0
    for module_type in range(header.scanner.scanner_geometry.number_of_module_types()):
        centres = detection_bin_centres_mm(header.scanner, module_type)
        assert np.all(np.isfinite(centres)) and np.linalg.norm(centres[:, :2], axis=1).min() > 100.0
    with pytest.raises(ValueError, match="one module type"):
        scanner_geometry_from_information(header.scanner)


def test_writer_plugin_writes_the_stream_and_passes_items_through(tmp_path: Path) -> None:
    batches = [_events(500, 4), _events(300, 5, time_offset_ms=40)]
    config = PETSIRDWriter.Config(filename="run.petsird")
    plugin = PETSIRDWriter(config, ChainContext(chain_name="test", out_dir=tmp_path))
    outputs = list(plugin.run([batches[0], "not a batch", batches[1]]))
    assert outputs[1] == "not a batch" and outputs[0] is batches[0] and outputs[2] is batches[1]
    scanner, read_batches, _ = read_petsird(tmp_path / "run.petsird")
    assert scanner == small_test_scanner() and sum(b.n_events for b in read_batches) == 800
    with pytest.raises(ValueError, match="out_dir"):
        PETSIRDWriter(config, ChainContext(chain_name="test"))
    with pytest.raises(ValueError):
        PETSIRDWriter.Config(filename="x", unknown_key=1)  # type: ignore[call-arg]


def test_fast_encoder_writes_the_same_bytes_as_the_petsird_library(tmp_path: Path) -> None:
    scanner = small_test_scanner()
    batches = [_events(700, 6), _events(1, 7, time_offset_ms=50), _events(300, 8, time_offset_ms=60)]
    write_petsird(tmp_path / "fast.petsird", scanner, batches)
    with petsird.BinaryPETSIRDWriter(str(tmp_path / "library.petsird")) as writer:
        writer.write_header(petsird_header(scanner))
        for batch in batches:
            writer.write_time_blocks(list(time_blocks_of_batch(batch, scanner)))  # one chunk per batch
    assert (tmp_path / "fast.petsird").read_bytes() == (tmp_path / "library.petsird").read_bytes()


def test_fast_reader_agrees_with_the_library_reader(tmp_path: Path) -> None:
    scanner = small_test_scanner()
    batches = [_events(900, 9), _events(1, 10, time_offset_ms=45), _events(400, 11, time_offset_ms=50)]
    write_petsird(tmp_path / "scan.petsird", scanner, batches)
    _, fast = read_petsird_raw(tmp_path / "scan.petsird")
    _, slow = read_petsird_raw(tmp_path / "scan.petsird", fast=False)
    assert len(fast) == len(slow) > 1
    for a, b in zip(fast, slow, strict=True):
        assert a.start_ms == b.start_ms
        np.testing.assert_array_equal(a.detection_bins, b.detection_bins)
        np.testing.assert_array_equal(a.tof_idx, b.tof_idx)
        np.testing.assert_array_equal(a.is_prompt, b.is_prompt)
    # a truncated file is not decoded by the fast path (the library then reports the damage)
    data = (tmp_path / "scan.petsird").read_bytes()
    (tmp_path / "cut.petsird").write_bytes(data[:-7])
    with pytest.raises(EOFError):
        read_petsird_raw(tmp_path / "cut.petsird")
