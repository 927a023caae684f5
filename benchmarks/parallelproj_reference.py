"""parallelproj's C/OpenMP and CUDA list-mode Joseph projectors through ctypes, as a side-by-side reference.

Only the benchmarks use this.  The library is built from parallelproj's source by
``scripts/build_parallelproj.py`` into the user cache (or named by ``RECONSTREAM_PARALLELPROJ_LIB`` /
``RECONSTREAM_PARALLELPROJ_CUDA_LIB``); parallelproj 1.10 has no PyPI wheel with it.

Calling convention (parallelproj 1.10 ``parallelproj_c.h``): float32 arrays, image axes exactly as passed
(this project passes (z, y, x) with LOR points reordered to (z, y, x) too), ``img_origin`` = centre of
voxel [0, 0, 0], TOF bin 0 centred on the LOR midpoint and positive toward the end point (the convention
of :mod:`recon.tof.tof_kernel`), one σ and zero centre offset for all LORs, ``int16`` bins.  Its TOF
kernel differs from this project's by definition (a constant truncation normalisation, no ±∞ edge bins),
so TOF projections agree to ≈ 0.1 %, non-TOF ones to float rounding.  Threads: OpenMP reads
``OMP_NUM_THREADS`` when the library is loaded; :func:`set_threads` sets it afterwards.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_REF = "v1.10.2"
LIB_ENV = "RECONSTREAM_PARALLELPROJ_LIB"
CUDA_LIB_ENV = "RECONSTREAM_PARALLELPROJ_CUDA_LIB"

_F = np.ctypeslib.ndpointer(dtype=np.float32, flags="C_CONTIGUOUS")
_I = np.ctypeslib.ndpointer(dtype=np.int32, flags="C_CONTIGUOUS")
_S = np.ctypeslib.ndpointer(dtype=np.int16, flags="C_CONTIGUOUS")
_LL, _FL, _UC = ctypes.c_longlong, ctypes.c_float, ctypes.c_ubyte


def _default_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "reconstream" / f"parallelproj-{DEFAULT_REF}"


def library_path(cuda: bool = False) -> Path | None:
    """The library to load: the environment variable's, else the default build folder's; ``None`` if absent."""
    name = os.environ.get(CUDA_LIB_ENV if cuda else LIB_ENV)
    candidates = (
        [Path(name)]
        if name
        else sorted(_default_dir().rglob(f"libparallelproj_{'cuda' if cuda else 'c'}.so"))
    )
    return next((p for p in candidates if p.is_file()), None)


def missing_reason(cuda: bool = False) -> str:
    """Why the library cannot be used (for a pytest skip)."""
    env = CUDA_LIB_ENV if cuda else LIB_ENV
    flag = " --cuda" if cuda else ""
    return (
        f"parallelproj's {'CUDA' if cuda else 'C/OpenMP'} library not found: build it with "
        f"`scripts/build_parallelproj.py --git-dir <parallelproj clone>/.git{flag}` (into {_default_dir()}) "
        f"or set {env}"
    )


@dataclass(frozen=True)
class Geometry:
    """Image and TOF description in parallelproj's terms (float32 (z, y, x) arrays, mm)."""

    img_origin: np.ndarray
    voxsize: np.ndarray
    img_dim: np.ndarray
    tofbin_width: float
    sigma_tof: np.ndarray
    tofcenter_offset: np.ndarray
    n_sigmas: float


def geometry(
    shape_zyx, voxel_size_mm, origin_mm, sigma_mm: float, bin_width_mm: float, n_sigmas: float
) -> Geometry:  # type: ignore[no-untyped-def]
    return Geometry(
        np.asarray(origin_mm, dtype=np.float32),
        np.asarray(voxel_size_mm, dtype=np.float32),
        np.asarray(shape_zyx, dtype=np.int32),
        float(bin_width_mm),
        np.asarray([sigma_mm], dtype=np.float32),
        np.zeros(1, dtype=np.float32),
        float(n_sigmas),
    )


def lor_points_zyx(points_xyz_mm: np.ndarray) -> np.ndarray:
    """(n, 3) scanner (x, y, z) mm → contiguous float32 (z, y, x), the image axis order passed to parallelproj."""
    return np.ascontiguousarray(np.asarray(points_xyz_mm, dtype=np.float32)[:, ::-1])


class Projector:
    """The four list-mode projectors of one library (C/OpenMP or CUDA; same signatures)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lib = ctypes.CDLL(str(path))
        common = [_F, _F, _F, _F, _F, _F, _LL, _I]
        tof = [_FL, _F, _F, _FL, _S, _UC, _UC]
        for name in ("joseph3d_fwd", "joseph3d_back"):
            getattr(self.lib, name).argtypes = common
            getattr(self.lib, name).restype = None
        for name in ("joseph3d_fwd_tof_lm", "joseph3d_back_tof_lm"):
            getattr(self.lib, name).argtypes = common + tof
            getattr(self.lib, name).restype = None

    def forward(
        self, image: np.ndarray, start: np.ndarray, end: np.ndarray, g: Geometry, bins: np.ndarray | None
    ) -> np.ndarray:
        """Projections (n,) float32 of the float32 (z, y, x) ``image``; TOF when ``bins`` (int16) is given."""
        out = np.zeros(start.shape[0], dtype=np.float32)
        img = np.ascontiguousarray(image, dtype=np.float32).reshape(-1)
        args = (start, end, img, g.img_origin, g.voxsize, out, start.shape[0], g.img_dim)
        if bins is None:
            self.lib.joseph3d_fwd(*args)
        else:
            self.lib.joseph3d_fwd_tof_lm(
                *args, g.tofbin_width, g.sigma_tof, g.tofcenter_offset, g.n_sigmas, bins, 0, 0
            )
        return out

    def back(
        self, values: np.ndarray, start: np.ndarray, end: np.ndarray, g: Geometry, bins: np.ndarray | None
    ) -> np.ndarray:
        """Back projection (z, y, x) float32 of ``values`` (n,)."""
        image = np.zeros(tuple(int(n) for n in g.img_dim), dtype=np.float32)
        vals = np.ascontiguousarray(values, dtype=np.float32)
        args = (start, end, image.reshape(-1), g.img_origin, g.voxsize, vals, start.shape[0], g.img_dim)
        if bins is None:
            self.lib.joseph3d_back(*args)
        else:
            self.lib.joseph3d_back_tof_lm(
                *args, g.tofbin_width, g.sigma_tof, g.tofcenter_offset, g.n_sigmas, bins, 0, 0
            )
        return image


def set_threads(n_threads: int) -> None:
    """Set the OpenMP thread count of the already loaded runtime (libgomp's ``omp_set_num_threads``)."""
    try:
        gomp = ctypes.CDLL("libgomp.so.1")
    except OSError:
        os.environ["OMP_NUM_THREADS"] = str(n_threads)
        return
    gomp.omp_set_num_threads(ctypes.c_int(n_threads))


class CudaProjector:
    """parallelproj's CUDA list-mode projectors (``libparallelproj_cuda.so``, 1.10 signatures).

    They take host arrays for the LORs, values and projections (copied to the GPU inside every call, which
    the timings therefore include) and an image already on every device (``copy_float_array_to_all_devices``).
    """

    THREADS_PER_BLOCK = 64

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lib = ctypes.CDLL(str(path))
        pp = ctypes.POINTER(ctypes.c_void_p)
        common = [_F, _F, pp, _F, _F, _F, _LL, _I]
        tof = [_FL, _F, _F, _FL, _S, _UC, _UC]
        for name in ("joseph3d_fwd_cuda", "joseph3d_back_cuda"):
            getattr(self.lib, name).argtypes = [*common, ctypes.c_int]
        for name in ("joseph3d_fwd_tof_lm_cuda", "joseph3d_back_tof_lm_cuda"):
            getattr(self.lib, name).argtypes = [*common, *tof, ctypes.c_int]
        self.lib.copy_float_array_to_all_devices.argtypes = [_F, _LL]
        self.lib.copy_float_array_to_all_devices.restype = pp
        self.lib.free_float_array_on_all_devices.argtypes = [pp]
        self.lib.sum_float_arrays_on_first_device.argtypes = [pp, _LL]
        self.lib.get_float_array_from_device.argtypes = [pp, _LL, ctypes.c_int, _F]

    def to_devices(self, image: np.ndarray):  # type: ignore[no-untyped-def]
        """Device copies of a float32 image (free with :meth:`free`)."""
        flat = np.ascontiguousarray(image, dtype=np.float32).reshape(-1)
        return self.lib.copy_float_array_to_all_devices(flat, flat.size)

    def free(self, d_image) -> None:  # type: ignore[no-untyped-def]
        self.lib.free_float_array_on_all_devices(d_image)

    def forward(
        self, d_image, start: np.ndarray, end: np.ndarray, g: Geometry, bins: np.ndarray | None
    ) -> np.ndarray:  # type: ignore[no-untyped-def]
        out = np.zeros(start.shape[0], dtype=np.float32)
        args = (start, end, d_image, g.img_origin, g.voxsize, out, start.shape[0], g.img_dim)
        if bins is None:
            self.lib.joseph3d_fwd_cuda(*args, self.THREADS_PER_BLOCK)
        else:
            self.lib.joseph3d_fwd_tof_lm_cuda(
                *args,
                g.tofbin_width,
                g.sigma_tof,
                g.tofcenter_offset,
                g.n_sigmas,
                bins,
                0,
                0,
                self.THREADS_PER_BLOCK,
            )
        return out

    def back(
        self, values: np.ndarray, start: np.ndarray, end: np.ndarray, g: Geometry, bins: np.ndarray | None
    ) -> np.ndarray:
        """Back projection, summed over the devices and copied to the host, (z, y, x) float32."""
        shape = tuple(int(n) for n in g.img_dim)
        image = np.zeros(shape, dtype=np.float32)
        d_image = self.to_devices(image)
        try:
            vals = np.ascontiguousarray(values, dtype=np.float32)
            args = (start, end, d_image, g.img_origin, g.voxsize, vals, start.shape[0], g.img_dim)
            if bins is None:
                self.lib.joseph3d_back_cuda(*args, self.THREADS_PER_BLOCK)
            else:
                self.lib.joseph3d_back_tof_lm_cuda(
                    *args,
                    g.tofbin_width,
                    g.sigma_tof,
                    g.tofcenter_offset,
                    g.n_sigmas,
                    bins,
                    0,
                    0,
                    self.THREADS_PER_BLOCK,
                )
            self.lib.sum_float_arrays_on_first_device(d_image, image.size)
            self.lib.get_float_array_from_device(d_image, image.size, 0, image.reshape(-1))
        finally:
            self.free(d_image)
        return image
