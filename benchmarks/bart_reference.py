"""BART (Berkeley Advanced Reconstruction Toolbox, Debian's ``bart``) as a reference reconstruction.

Only the benchmarks use this: it writes k-space as BART ``.cfl``/``.hdr`` files, runs ``bart ecalib`` and
``bart pics`` as subprocesses (wall-clock timed) and reads the result back.

BART's file format: ``<name>.hdr`` is text (``# Dimensions`` then the sizes of every dimension) and
``<name>.cfl`` the raw complex64 samples in column-major (Fortran) order, first dimension fastest.  BART's
dimension convention: ``[READ, PHS1, PHS2, COIL, MAPS, TE, COEFF, COEFF2, ITER, CSHIFT, TIME, ...]``
(16 dimensions).  A cine k-space of this project, ``(phases, coils, ky, kx)`` in C order, is therefore
BART's ``[kx, ky, 1, coils, 1, 1, 1, 1, 1, 1, phases]`` with the very same bytes.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from recon.cine import unfold

log = logging.getLogger(__name__)

N_BART_DIMS = 16
TIME_DIM = 10
COIL_DIM = 3


def bart_executable() -> str | None:
    """Path of the ``bart`` program, or ``None`` when it is not installed."""
    return shutil.which("bart")


def write_cfl(stem: Path, array: np.ndarray) -> None:
    """Write ``array`` (indexed in BART's dimension order) as ``stem.hdr`` + ``stem.cfl`` (complex64, column-major)."""
    if array.ndim > N_BART_DIMS:
        raise ValueError(f"BART arrays have at most {N_BART_DIMS} dimensions, got {array.ndim}")
    dims = [*array.shape, *([1] * (N_BART_DIMS - array.ndim))]
    Path(f"{stem}.hdr").write_text("# Dimensions\n" + " ".join(str(d) for d in dims) + "\n")
    np.asarray(array, dtype=np.complex64).ravel(order="F").tofile(f"{stem}.cfl")


def read_cfl(stem: Path) -> np.ndarray:
    """Read ``stem.hdr`` + ``stem.cfl`` into a complex64 array of all 16 BART dimensions (Fortran order)."""
    lines = Path(f"{stem}.hdr").read_text().splitlines()
    try:
        dims = [int(v) for v in lines[lines.index("# Dimensions") + 1].split()]
    except (ValueError, IndexError) as error:
        raise ValueError(f"{stem}.hdr: no '# Dimensions' line followed by integer sizes") from error
    dims += [1] * (N_BART_DIMS - len(dims))
    data = np.fromfile(f"{stem}.cfl", dtype=np.complex64)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{stem}.cfl holds {data.size} samples, the header says {dims}")
    return data.reshape(dims, order="F")


def cine_to_bart(kspace: np.ndarray) -> np.ndarray:
    """Cine k-space ``(phases, coils, ky, kx)`` → BART ``[kx, ky, 1, coils, 1, …, 1, phases]`` (a view)."""
    if kspace.ndim != 4:
        raise ValueError(f"expected (phases, coils, ky, kx), got shape {kspace.shape}")
    b = kspace.transpose(3, 2, 1, 0)  # (kx, ky, coils, phases)
    return b[:, :, None, :, None, None, None, None, None, None, :]


def bart_to_cine_images(image: np.ndarray) -> np.ndarray:
    """BART image ``[x, y, 1, 1, 1, …, phases]`` (one map, no coil axis) → ``(phases, y, x)``."""
    full = image.reshape([*image.shape, *([1] * (N_BART_DIMS - image.ndim))], order="F")
    others = [d for i, d in enumerate(full.shape) if i not in (0, 1, TIME_DIM)]
    if any(d != 1 for d in others):
        raise ValueError(f"expected a single-map image series, got BART dims {full.shape}")
    return full[:, :, 0, 0, 0, 0, 0, 0, 0, 0, :, 0, 0, 0, 0, 0].transpose(2, 1, 0)


def run_bart(arguments: Sequence[str], cwd: Path) -> float:
    """Run ``bart <arguments>`` in ``cwd`` (environment and thread count untouched); wall seconds."""
    executable = bart_executable()
    if executable is None:
        raise FileNotFoundError("the 'bart' program is not installed")
    start = time.perf_counter()
    done = subprocess.run([executable, *arguments], cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"bart {' '.join(arguments)} failed ({done.returncode}): {done.stderr.strip()}")
    log.debug("bart %s: %.3f s", " ".join(arguments), elapsed)
    return elapsed


@dataclass(frozen=True)
class BartSense:
    """Outcome of ``bart ecalib`` + ``bart pics`` on one cine slice.

    Attributes:
        images: ``(phases, y, x)`` complex64 SENSE images (one ESPIRiT map).
        ecalib_s: wall time of ``bart ecalib``, s.
        pics_s: wall time of ``bart pics``, s.
        io_s: wall time spent writing and reading the ``.cfl`` files, s (not part of BART's compute).
    """

    images: np.ndarray
    ecalib_s: float
    pics_s: float
    io_s: float

    def __post_init__(self) -> None:
        if self.images.ndim != 3:
            raise ValueError(f"images must be (phases, y, x), got {self.images.shape}")
        if min(self.ecalib_s, self.pics_s, self.io_s) < 0.0:
            raise ValueError("times must be non-negative")

    @property
    def compute_s(self) -> float:
        """``ecalib`` + ``pics`` wall time, s."""
        return self.ecalib_s + self.pics_s


def calibration_kspace(calibration: np.ndarray, first_line: int, n_ky: int) -> np.ndarray:
    """Zero-filled ``(1, coils, n_ky, kx)`` k-space holding the calibration block ``(coils, n_acs, kx)``
    at lines ``first_line …`` (what ``bart ecalib`` reads its calibration region from)."""
    n_coils, n_acs, n_kx = calibration.shape
    if first_line < 0 or first_line + n_acs > n_ky:
        raise ValueError(f"calibration lines {first_line}..{first_line + n_acs - 1} outside 0..{n_ky - 1}")
    out = np.zeros((1, n_coils, n_ky, n_kx), dtype=np.complex64)
    out[0, :, first_line : first_line + n_acs] = calibration
    return out


def bart_sense(
    kspace: np.ndarray, calibration: np.ndarray, regularization: float, n_iterations: int
) -> BartSense:
    """ESPIRiT maps (``bart ecalib -m1``) from ``calibration`` ``(1, coils, ky, kx)``, then
    ``bart pics -S -l2 -r λ -i n`` of every frame of ``kspace`` ``(phases, coils, ky, kx)`` jointly."""
    with tempfile.TemporaryDirectory(prefix="reconstream-bart-") as folder:
        work = Path(folder)
        start = time.perf_counter()
        write_cfl(work / "kspace", cine_to_bart(kspace))
        write_cfl(work / "calib", cine_to_bart(calibration))
        io_s = time.perf_counter() - start
        ecalib_s = run_bart(["ecalib", "-m1", "calib", "maps"], work)
        pics = ["pics", "-S", "-l2", "-r", f"{regularization:g}", "-i", str(n_iterations)]
        pics_s = run_bart([*pics, "kspace", "maps", "image"], work)
        start = time.perf_counter()
        images = bart_to_cine_images(read_cfl(work / "image")).copy()
        io_s += time.perf_counter() - start
    return BartSense(images, ecalib_s, pics_s, io_s)


def bart_cine_slice(
    kspace: torch.Tensor,
    sampled: torch.Tensor,
    calibration: torch.Tensor,
    regularization: float,
    n_iterations: int,
) -> BartSense:
    """BART SENSE of a binned cine slice: ``kspace`` ``(phases, coils, ky, kx)``, ``sampled``
    ``(phases, ky)`` and ``calibration`` ``(ky,)`` masks; ESPIRiT from the time-averaged calibration block
    (the same block the project's GRAPPA and SENSE calibrate on)."""
    first, _ = unfold.calibration_block(calibration)
    block = unfold.time_averaged_calibration(kspace, sampled, calibration).cpu().numpy()
    calib = calibration_kspace(block, first, kspace.shape[-2])
    return bart_sense(kspace.cpu().numpy(), calib, regularization, n_iterations)
