"""Ground truth of a PET simulation: expected randoms from singles and the truth file (HDF5).

The truth file is written next to the data and is never opened by a reconstruction chain.  Layout:

- ``/phantom``: datasets ``activity_bq_per_ml``, ``mu_per_cm`` (float32) and ``labels`` (uint8), all
  ``(z, y, x)``; attributes ``name``, ``label_names`` (JSON), ``shape_zyx``, ``voxel_size_mm``,
  ``origin_mm`` (z, y, x of voxel [0,0,0] centre, scanner/LPS mm), ``weight_kg``.
- ``/crystals``: ``true_efficiencies`` (float32), ``singles_per_crystal`` (int64),
  ``singles_rate_cps`` and ``uncorrelated_singles_rate_cps`` (float64, singles whose partner photon was
  not detected).
- ``/counts``: attributes ``n_decays``, ``n_trues``, ``n_scatters``, ``n_randoms``, ``n_delayeds``,
  ``duration_s``, ``expected_randoms_rate_cps`` (window · Σ S'_i S'_j over recorded crystal pairs, with
  the uncorrelated singles rates S').
- ``/events`` (when recorded): ``event_type`` (int8, 0 true, 1 scatter, 2 random, 3 delayed) and
  ``annihilation_mm`` (float32 ``(n, 3)``), aligned with the list-mode events.
- root attributes: ``scanner`` (JSON of the ScannerGeometry), ``config`` (JSON of the simulation config).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hardware_sim.pet.phantoms import PETPhantom
from hardware_sim.pet.simulator import PETListModeSimulator
from recon.tof.geometry import ScannerGeometry


def accepted_index_differences(scanner: ScannerGeometry, fov_radius_mm: float) -> np.ndarray:
    """Boolean ``(n_crystals_per_ring,)``: True for in-ring index differences whose LOR passes within
    ``fov_radius_mm`` of the axis (the simulator's crystal-pair acceptance)."""
    n = scanner.n_crystals_per_ring
    half_angle = np.pi * np.arange(n) / n
    return np.abs(np.cos(half_angle)) <= fov_radius_mm / scanner.detection_radius_mm


def expected_randoms_rate_cps(
    scanner: ScannerGeometry,
    singles_rate_cps: np.ndarray,
    fov_radius_mm: float,
    window_ns: float | None = None,
) -> float:
    """``2τ · Σ_{i<j} S_i S_j`` over the recorded crystal pairs (2τ = coincidence window), counts/s."""
    window_s = (window_ns if window_ns is not None else scanner.coincidence_window_ns) * 1e-9
    per_index = singles_rate_cps.reshape(scanner.n_rings, scanner.n_crystals_per_ring).sum(axis=0)
    spectrum = np.fft.rfft(per_index)
    correlation = np.fft.irfft(np.conj(spectrum) * spectrum, n=per_index.shape[0])  # Σ_k s_k s_{k+Δ}
    accepted = accepted_index_differences(scanner, fov_radius_mm)
    return float(window_s * 0.5 * np.sum(correlation[accepted]))


def _json(value: Any) -> str:
    return json.dumps(value, default=lambda v: v.tolist() if isinstance(v, np.ndarray) else str(v))


def _write_phantom(group: h5py.Group, phantom: PETPhantom) -> None:
    for name in ("activity_bq_per_ml", "mu_per_cm", "labels"):
        group.create_dataset(name, data=getattr(phantom, name), compression="gzip", compression_opts=1)
    group.attrs["name"] = phantom.name
    group.attrs["label_names"] = json.dumps(list(phantom.label_names))
    group.attrs["shape_zyx"] = phantom.grid.shape_zyx
    group.attrs["voxel_size_mm"] = phantom.grid.voxel_size_mm
    group.attrs["origin_mm"] = phantom.grid.origin_mm
    group.attrs["weight_kg"] = phantom.weight_kg


def write_truth_file(path: str | Path, simulator: PETListModeSimulator) -> None:
    """Write the ground truth of a finished simulation to an HDF5 file at ``path``."""
    tally, scanner = simulator.tally, simulator.scanner
    fov = simulator.config.transaxial_fov_radius_mm or 0.95 * scanner.ring_radius_mm
    with h5py.File(path, "w") as file:
        file.attrs["scanner"] = _json(dataclasses.asdict(scanner))
        file.attrs["config"] = _json(dataclasses.asdict(simulator.config))
        _write_phantom(file.create_group("phantom"), simulator.phantom)
        crystals = file.create_group("crystals")
        crystals.create_dataset("true_efficiencies", data=simulator.true_efficiencies)
        crystals.create_dataset("singles_per_crystal", data=tally.singles_per_crystal)
        crystals.create_dataset("singles_rate_cps", data=tally.singles_rate_cps())
        crystals.create_dataset("uncorrelated_singles_rate_cps", data=tally.uncorrelated_singles_rate_cps())
        counts = file.create_group("counts")
        for name in ("n_decays", "n_trues", "n_scatters", "n_randoms", "n_delayeds", "duration_s"):
            counts.attrs[name] = getattr(tally, name)
        uncorrelated = tally.uncorrelated_singles_rate_cps()
        counts.attrs["expected_randoms_rate_cps"] = expected_randoms_rate_cps(scanner, uncorrelated, fov)
        if simulator.config.record_event_truth:
            event_type, annihilation = tally.events.concatenated()
            events = file.create_group("events")
            events.create_dataset("event_type", data=event_type)
            events.create_dataset("annihilation_mm", data=annihilation)


def read_truth_file_counts(path: str | Path) -> dict[str, float]:
    """The ``/counts`` attributes of a truth file."""
    with h5py.File(path, "r") as file:
        return {key: float(value) for key, value in file["counts"].attrs.items()}
