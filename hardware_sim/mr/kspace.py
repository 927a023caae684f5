"""k-space synthesis of one slice from a grid twice as fine as the recon grid.

The fine grid has spacing (Δx/2, Δy/2) of the recon pixel and covers the whole oversampled readout
FOV (2·FOV_x) and twice the phase FOV (2·FOV_y), so nothing folds that would not fold on a scanner:
a k-space sample is the exact DFT ``Σ_r m(r)·C(r)·exp(-2πi k·r)`` of the painted fine image at the
scanner's k positions ``kx = (s - n_os/2)/FOV_os``, ``ky = (j - n_pe/2)/FOV_y`` (a partial-volume
anti-aliased phantom sampled at the fine points), scaled by ``(δxδy / ΔxΔy) / √(n_os·n_pe)`` so that a
centred orthonormal inverse FFT returns the magnetisation on the recon grid.

The slice is split into a static part (everything outside a box enclosing the heart and, for flow, the
vessels: its k-space is computed once by a 2D FFT) and the box, which is re-painted at every motion
sample; only the ky lines acquired around that time are computed there (a partial DFT along ky, an FFT
along the readout).  This is not the recon's forward operator: different grid, different extent,
explicit DFT, continuous-time motion.
"""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt
import pyfftw
import scipy.fft

from hardware_sim.mr import anatomy
from hardware_sim.mr.anatomy import HeartParameters
from hardware_sim.mr.coils import CoilArray
from hardware_sim.mr.geometry import SliceGeometry
from hardware_sim.mr.scene import FlowRates, GridScene, SignalModel
from recon.common.blas_threads import single_thread_blas

Complex = npt.NDArray[np.complex64]
_BOX_MARGIN_MM = 6.0


class SliceSynthesizer:
    """Noise-free k-space lines of one slice at arbitrary cardiac states."""

    def __init__(
        self,
        geometry: SliceGeometry,
        slice_index: int,
        n_readout: int,
        n_phase_encodes: int,
        model: SignalModel,
        heart: HeartParameters,
        coils: CoilArray,
    ) -> None:
        self.n_os, self.n_pe, self.n_readout = 2 * n_readout, n_phase_encodes, n_readout
        dx, dy = geometry.fov_mm[0] / n_readout, geometry.fov_mm[1] / n_phase_encodes
        self.fine_shape = (4 * n_phase_encodes, 2 * self.n_os)
        self.fine_spacing_mm = (dy / 2.0, dx / 2.0)
        nfy, nfx = self.fine_shape
        points = geometry.points(nfy, nfx, dy / 2.0, dx / 2.0)
        u = ((np.arange(nfx) - nfx // 2) * dx / 2.0).astype(np.float32)
        v = ((np.arange(nfy) - nfy // 2) * dy / 2.0).astype(np.float32)
        uu, vv = np.broadcast_to(u[None, :], (nfy, nfx)), np.broadcast_to(v[:, None], (nfy, nfx))
        edge = min(dx, dy) / 2.0
        self.scale = np.float32(0.25 / np.sqrt(self.n_os * n_phase_encodes))
        self.n_contrasts = model.n_contrasts
        s = np.arange(self.n_os) - self.n_os // 2
        self.x_index = np.mod(s, nfx)
        self.x_sign = np.where(s % 2 == 0, 1.0, -1.0).astype(np.float32)
        self.x_weight = (self.x_sign * self.scale).astype(np.float32)
        self.box = _dynamic_box(points, model.protocol == "flow", heart, stride=4)
        full = GridScene(model, points, (uu, vv), slice_index, geometry.slice_dir, heart, edge)
        static = full.static_image()
        sens = coils.sensitivities(points)
        y0, y1, x0, x1 = self.box
        static[:, y0:y1, x0:x1] = 0.0
        self.k_static = np.stack([self._fft_lines(static[c][None] * sens) for c in range(self.n_contrasts)])
        self.k_static_plain = np.stack([self._fft_lines(static[c][None])[0] for c in range(self.n_contrasts)])
        self.has_box = y1 > y0 and x1 > x0
        self.sens_box = np.ascontiguousarray(sens[:, y0:y1, x0:x1])
        self.coil_y_basis, self.coil_x_factors = _separable_coils(self.sens_box)
        self._fft_plans: dict[tuple[int, ...], tuple[pyfftw.FFTW, Complex, Complex]] = {}
        self._fft_lock = threading.Lock()
        box_points = tuple(np.ascontiguousarray(p[y0:y1, x0:x1]) for p in points)
        box_uv = (np.ascontiguousarray(uu[y0:y1, x0:x1]), np.ascontiguousarray(vv[y0:y1, x0:x1]))
        self.box_scene = GridScene(model, box_points, box_uv, slice_index, geometry.slice_dir, heart, edge)  # type: ignore[arg-type]
        ky = (np.arange(n_phase_encodes) - n_phase_encodes // 2) / geometry.fov_mm[1]
        y_box = (np.arange(y0, y1) - nfy // 2) * dy / 2.0
        self.ey = np.exp(-2j * np.pi * ky[:, None] * y_box[None, :]).astype(np.complex64)

    def _fft_lines(self, image: Complex) -> Complex:
        """Exact DFT of fine images ``(n, nfy, nfx)`` at the scanner's k grid → ``(n, n_pe, n_os)``."""
        nfy, _ = self.fine_shape
        along_x = scipy.fft.fft(image, axis=-1, workers=1)[..., self.x_index]  # keep the n_os readout bins
        spectrum = scipy.fft.fft(along_x, axis=-2, workers=1, overwrite_x=True)
        rows = np.mod(2 * (np.arange(self.n_pe) - self.n_pe // 2), nfy)
        return (spectrum[:, rows] * self.x_weight).astype(np.complex64)

    def box_lines(self, image_box: Complex, ky: npt.NDArray[np.int64], with_coils: bool = True) -> Complex:
        """k-space of the box image at lines ``ky`` → ``(n_contrasts, n_coils or 1, len(ky), n_os)``."""
        if not self.has_box:
            n_coils = self.sens_box.shape[0] if with_coils else 1
            return np.zeros((self.n_contrasts, n_coils, ky.size, self.n_os), np.complex64)
        with single_thread_blas():  # tiny products; and one thread keeps the lines bit-reproducible
            partial = self._box_partial(image_box, ky, with_coils)
        return self._row_fft(partial)

    def _box_partial(self, image_box: Complex, ky: npt.NDArray[np.int64], with_coils: bool) -> Complex:
        """ky-DFT and coil weighting of the box rows → ``(n_contrasts, n_coils or 1, len(ky), Wb)``."""
        n_contrasts, n_y, n_x = image_box.shape
        if not with_coils:
            partial = np.matmul(self.ey[ky], image_box)[:, None]  # (contrast, 1, L, x)
        else:
            # coil maps over the box as Σ_r B_r(y)·A_r(coil, x): contract ky with each B_r (one product)
            ey_r = (self.ey[ky][:, None, :] * self.coil_y_basis[None]).reshape(-1, n_y)
            g = np.matmul(ey_r, image_box).reshape(n_contrasts, ky.size, -1, n_x)  # (n, L, R, x)
            mixed = np.matmul(g.transpose(0, 3, 1, 2), self.coil_x_factors)  # (n, x, L, coil)
            partial = mixed.transpose(0, 3, 2, 1)  # (n, coil, L, x)
        return partial

    def _row_fft(self, partial: Complex) -> Complex:
        """Readout DFT of box rows ``(..., Wb)`` placed in the fine grid → ``(..., n_os)`` (FFTW, cached plans)."""
        shape = (*partial.shape[:-1], self.fine_shape[1])
        with self._fft_lock:
            if shape not in self._fft_plans:
                buf_in = pyfftw.empty_aligned(shape, dtype="complex64")
                buf_out = pyfftw.empty_aligned(shape, dtype="complex64")
                plan = pyfftw.FFTW(buf_in, buf_out, axes=(-1,), flags=("FFTW_ESTIMATE",), threads=1)
                self._fft_plans[shape] = (plan, buf_in, buf_out)
            plan, buf_in, buf_out = self._fft_plans[shape]
            buf_in[...] = 0.0
            buf_in[..., self.box[2] : self.box[3]] = partial
            plan.execute()
            return buf_out[..., self.x_index] * self.x_weight

    def box_image(self, contraction: float, flows: FlowRates | None) -> Complex:
        """The painted box at a cardiac state, ``(n_contrasts, Hb, Wb)``."""
        return self.box_scene.image(contraction, flows)

    def full_kspace(self, contraction: float, flows: FlowRates | None, with_coils: bool = True) -> Complex:
        """All lines at one frozen state: ``(n_contrasts, n_coils or 1, n_pe, n_os)``."""
        ky = np.arange(self.n_pe)
        static = self.k_static if with_coils else self.k_static_plain[:, None]
        return static + self.box_lines(self.box_image(contraction, flows), ky, with_coils)

    def truth_image(self, contraction: float, flows: FlowRates | None) -> Complex:
        """Noise-free, coil-free image on the recon grid ``(n_contrasts, n_pe, n_readout)``: the centred
        orthonormal inverse FFT of the fully sampled k-space with the readout oversampling removed."""
        k = self.full_kspace(contraction, flows, with_coils=False)[:, 0]
        image = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
        start = self.n_os // 2 - self.n_readout // 2
        return image[..., start : start + self.n_readout].astype(np.complex64)


def _dynamic_box(
    points: anatomy.Points, with_vessels: bool, heart: HeartParameters, stride: int
) -> tuple[int, int, int, int]:
    """Fine-grid index box ``(y0, y1, x0, x1)`` enclosing everything that moves or flows."""
    coarse = tuple(p[::stride, ::stride] for p in points)
    heart_pts = anatomy.to_heart_frame(coarse)  # type: ignore[arg-type]
    moving = np.zeros(coarse[0].shape, bool)
    for c in np.linspace(0.0, 1.4, 8):
        for _, distance in anatomy.heart_structures(anatomy.heart_geometry(heart, float(c))):
            moving |= distance(heart_pts) < _BOX_MARGIN_MM
    if with_vessels:
        for _, distance in anatomy.vessel_structures():
            moving |= distance(coarse) < _BOX_MARGIN_MM  # type: ignore[arg-type]
    if not moving.any():
        return (0, 0, 0, 0)
    rows, cols = np.nonzero(moving.any(axis=1))[0], np.nonzero(moving.any(axis=0))[0]
    nfy, nfx = points[0].shape
    y0, y1 = max(0, (rows[0] - 1) * stride), min(nfy, (rows[-1] + 2) * stride)
    x0, x1 = max(0, (cols[0] - 1) * stride), min(nfx, (cols[-1] + 2) * stride)
    return (int(y0), int(y1), int(x0), int(x1))


def _separable_coils(sens_box: Complex, tolerance: float = 1e-5) -> tuple[Complex, Complex]:
    """Coil maps over the box as ``C[c, y, x] = Σ_r B[r, y]·A[x, r, c]`` (truncated SVD, relative
    Frobenius error below ``tolerance``): returns ``B`` (R, Hb) and ``A`` (Wb, R, coils)."""
    n_coils, n_y, n_x = sens_box.shape
    if n_y == 0 or n_x == 0:
        return np.zeros((1, n_y), np.complex64), np.zeros((n_x, 1, n_coils), np.complex64)
    matrix = sens_box.transpose(1, 0, 2).reshape(n_y, n_coils * n_x).astype(np.complex128)
    with single_thread_blas():  # bit-reproducible factors, whatever other threads do
        u, s, vh = np.linalg.svd(matrix, full_matrices=False)
    tail = np.sqrt(np.cumsum((s**2)[::-1])[::-1] / np.sum(s**2))
    rank = int(np.argmax(np.append(tail, 0.0) < tolerance))
    basis = u[:, :rank].T.astype(np.complex64)
    factors = (s[:rank, None] * vh[:rank]).reshape(rank, n_coils, n_x).transpose(2, 0, 1)
    return basis, np.ascontiguousarray(factors.astype(np.complex64))
