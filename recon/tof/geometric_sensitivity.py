"""The geometric sensitivity S_geo = Σ_L g_L A_Lᵀ 1 of a scanner on an image grid, computed once and cached.

S_geo (mm²·mm per s of frame, (z, y, x) float32) has no attenuation and no normalisation: it depends on the
scanner, the grid and the transaxial FOV only, so :mod:`recon.tof.sensitivity` computes it once and scales
it by the ratio R of each frame's μ-map and crystal efficiencies.

* Exhaustive (every pair in the FOV) when there are at most ``GEOMETRIC_MAX_PAIRS`` pairs (the ``small``
  scanner: 0.9·10⁶ pairs, ≈ 2 s).
* Otherwise a uniform sample of ``GEOMETRIC_MAX_PAIRS`` pairs (seed ``GEOMETRIC_SEED``), averaged over the
  symmetries that map the scanner and the grid onto themselves: the 8 of the square (rotations by 90° and
  reflections of x and y; a centred square grid with equal x/y voxels and a multiple of 4 crystals per
  ring) and the axial reflection (a grid centred in z).  S_geo is invariant under them, so the average is
  an unbiased estimate with the noise of 16× as many pairs: for the Signa-like scanner at 2.78 mm,
  2·10⁷ pairs act as 3.2·10⁸ (more than the 1.5·10⁸ pairs there are), ≈ 0.75 % per voxel.
  Cost once: ≈ 21 s on 2 idle CPU cores (one non-TOF back projection per pair; 2026-12-05, with the
  locality-ordered projector), a few times that on a loaded machine.

Cache: ``<dir>/geometric-<key>.npy`` with ``key`` a SHA-256 of the scanner, the grid, the FOV radius, the
sampling (pairs, seed) and ``CACHE_VERSION`` (raise it when the projector or g_L changes).  ``<dir>`` is
``$RECONSTREAM_CACHE_DIR/sensitivity`` or, unset, ``$XDG_CACHE_HOME/reconstream/sensitivity``
(``~/.cache/reconstream/sensitivity``); ``RECONSTREAM_CACHE_DIR=""`` turns the disk cache off.  The
process also keeps the last images in memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from recon.tof.geometry import ScannerGeometry
from recon.tof.lor_model import crystal_table, geometric_factors, pair_chunks
from recon.tof.projector_common import GridLike, KernelChoice, grid_arrays
from recon.tof.projectors import project_back

log = logging.getLogger(__name__)

GEOMETRIC_MAX_PAIRS = 20_000_000
"""Pairs of the one-time geometric image: all of them up to this many, else a symmetrised sample."""
GEOMETRIC_SEED = 20261205
"""Seed of that sample (part of the cache key)."""
CACHE_VERSION = 1
"""Part of the cache key: raise it when the projector or the geometric factor changes."""
CACHE_ENV = "RECONSTREAM_CACHE_DIR"

_MEMORY: dict[str, torch.Tensor] = {}
_MEMORY_SIZE = 4


def cache_dir() -> Path | None:
    """Where the images are cached (``None`` = no disk cache); see the module docstring."""
    root = os.environ.get(CACHE_ENV)
    if root is not None:
        return Path(root) / "sensitivity" if root else None
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "reconstream" / "sensitivity"


def cache_key(scanner: ScannerGeometry, grid: GridLike, fov_radius_mm: float) -> str:
    """SHA-256 (hex, 24 characters) of everything S_geo depends on."""
    shape, voxel, origin = grid_arrays(grid)
    described = {
        "scanner": dataclasses.asdict(scanner),
        "grid": [shape, [round(v, 9) for v in voxel], [round(o, 9) for o in origin]],
        "fov_radius_mm": round(float(fov_radius_mm), 9),
        "pairs": GEOMETRIC_MAX_PAIRS,
        "seed": GEOMETRIC_SEED,
        "version": CACHE_VERSION,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:24]


def geometric_sensitivity(
    scanner: ScannerGeometry,
    grid: GridLike,
    fov_radius_mm: float,
    kernel: KernelChoice | str = "auto",
    chunk_size: int = 1 << 20,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """S_geo (z, y, x) float32 on the CPU, from the memory or disk cache when there, else computed (on ``device``)
    and stored."""
    key = cache_key(scanner, grid, fov_radius_mm)
    if key in _MEMORY:
        return _MEMORY[key]
    folder = cache_dir()
    path = None if folder is None else folder / f"geometric-{key}.npy"
    image = _load(path, grid_arrays(grid)[0])
    if image is None:
        start = time.perf_counter()
        image = _compute(scanner, grid, fov_radius_mm, kernel, chunk_size, torch.device(device))
        log.info("geometric sensitivity of %s computed in %.1f s", scanner.name, time.perf_counter() - start)
        if path is not None:
            _store(path, image)
    while len(_MEMORY) >= _MEMORY_SIZE:
        _MEMORY.pop(next(iter(_MEMORY)))
    _MEMORY[key] = image
    return image


def _load(path: Path | None, shape: tuple[int, int, int]) -> torch.Tensor | None:
    if path is None or not path.is_file():
        return None
    try:
        array = np.load(path)
    except (OSError, ValueError) as error:
        log.warning("ignoring unreadable sensitivity cache %s: %s", path, error)
        return None
    if array.shape != shape or array.dtype != np.float32:
        log.warning("ignoring sensitivity cache %s: shape %s, expected %s", path, array.shape, shape)
        return None
    return torch.from_numpy(array)


def _store(path: Path, image: torch.Tensor) -> None:
    """Write atomically (temporary file + rename), so that concurrent processes never read half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
            np.save(handle, image.numpy())
        os.replace(handle.name, path)
    except OSError as error:
        log.warning("could not cache the geometric sensitivity at %s: %s", path, error)


def _compute(
    scanner: ScannerGeometry,
    grid: GridLike,
    fov_radius_mm: float,
    kernel: KernelChoice | str,
    chunk_size: int,
    device: torch.device,
) -> torch.Tensor:
    shape, _, _ = grid_arrays(grid)
    rng = np.random.default_rng(GEOMETRIC_SEED)
    scale, chunks = pair_chunks(scanner, fov_radius_mm, GEOMETRIC_MAX_PAIRS, chunk_size, rng)
    if scale != 1.0:
        log.info("computing the geometric sensitivity of %s once from %d sampled pairs", scanner.name,
                 sum(c[0].shape[0] for c in chunks))  # fmt: skip
    table = crystal_table(scanner, device)
    image = torch.zeros(shape, dtype=torch.float64)
    for c1_np, c2_np in chunks:
        start = table[torch.from_numpy(c1_np).to(device).long()]
        end = table[torch.from_numpy(c2_np).to(device).long()]
        g = geometric_factors(scanner, start, end).to(torch.float32)
        image += project_back(g, start, end, grid, kernel=kernel).cpu().to(torch.float64)
    image *= scale
    if scale != 1.0:
        image = symmetrised(image, scanner, grid)
    return image.to(torch.float32)


def symmetrised(image: torch.Tensor, scanner: ScannerGeometry, grid: GridLike) -> torch.Tensor:
    """Mean of ``image`` (z, y, x) over the symmetries of scanner and grid (see the module docstring)."""
    shape, voxel, origin = grid_arrays(grid)

    def centred(axis: int) -> bool:
        return abs(origin[axis] + 0.5 * (shape[axis] - 1) * voxel[axis]) <= 1e-6 * voxel[axis]

    views = [image]
    square = (
        shape[1] == shape[2] and abs(voxel[1] - voxel[2]) <= 1e-9 * voxel[1] and centred(1) and centred(2)
    )
    if square and scanner.n_crystals_per_ring % 4 == 0:
        turned = [image, image.transpose(1, 2)]
        views = [v.flip(dims) if dims else v for v in turned for dims in ((), (1,), (2,), (1, 2))]
    if centred(0):
        views = views + [v.flip(0) for v in views]
    if len(views) == 1:
        log.warning(
            "the grid is not symmetric about the scanner axis: the geometric sensitivity is not averaged"
        )
    return torch.stack(views).mean(dim=0)
