"""Coil sensitivity maps from the calibration (ACS) region.

* :func:`lowres_coil_maps`: windowed low-resolution coil images normalised by their root-sum-of-squares.
  Very fast; good as combination weights, too blurred at the object edge for SENSE unfolding.
* :func:`espirit_maps`: ESPIRiT (Uecker et al., MRM 2014), one set of maps: the calibration matrix's
  signal subspace is turned into a per-pixel ``coils × coils`` operator whose eigenvector of eigenvalue
  ≈ 1 is the coil map.  The per-pixel operator is built as the FFT of the subspace projector's
  correlation (``coils² `` FFTs, no per-kernel images) and its dominant eigenvector is found by batched
  power iteration.  Maps are normalised to Σ_c|C_c|² = 1 inside the support and zero outside.
"""

from __future__ import annotations

import torch

from recon.common.fft import ifftc


def _zero_pad_centre(kspace: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Place ``(..., a, b)`` in the centre of a zero ``(..., *shape)`` array (centres at n // 2)."""
    out = torch.zeros((*kspace.shape[:-2], *shape), dtype=kspace.dtype, device=kspace.device)
    a, b = kspace.shape[-2:]
    y0, x0 = shape[0] // 2 - a // 2, shape[1] // 2 - b // 2
    out[..., y0 : y0 + a, x0 : x0 + b] = kspace
    return out


def crop_centre(kspace: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """The central ``shape`` of the last two axes (centres at n // 2)."""
    a, b = kspace.shape[-2:]
    y0, x0 = a // 2 - shape[0] // 2, b // 2 - shape[1] // 2
    return kspace[..., y0 : y0 + shape[0], x0 : x0 + shape[1]]


def lowres_coil_maps(
    calibration: torch.Tensor, image_shape: tuple[int, int], eps_fraction: float = 1e-3
) -> torch.Tensor:
    """Hann-windowed calibration k-space ``(coils, n_ky, n_kx)`` → maps ``(coils, *image_shape)``, Σ|C|² = 1."""
    n_ky, n_kx = calibration.shape[-2:]
    wy = torch.hann_window(n_ky + 2, periodic=False, dtype=torch.float64, device=calibration.device)[1:-1]
    wx = torch.hann_window(n_kx + 2, periodic=False, dtype=torch.float64, device=calibration.device)[1:-1]
    window = (wy[:, None] * wx[None, :]).to(calibration.real.dtype)
    images = ifftc(_zero_pad_centre(calibration * window, image_shape))
    rss = torch.linalg.vector_norm(images, dim=-3, keepdim=True)
    floor = eps_fraction * float(rss.max())
    return images / rss.clamp_min(floor if floor > 0 else 1.0)


def _calibration_matrix(calibration: torch.Tensor, kernel: int) -> torch.Tensor:
    """Rows = all ``kernel × kernel`` patches of ``(coils, n_ky, n_kx)``, flattened as (coils, ky, kx)."""
    patches = calibration.unfold(-2, kernel, 1).unfold(-2, kernel, 1)  # (coils, py, px, k, k)
    return patches.permute(1, 2, 0, 3, 4).reshape(-1, calibration.shape[0] * kernel * kernel)


def _image_domain_operator(
    basis: torch.Tensor, n_coils: int, kernel: int, image_shape: tuple[int, int]
) -> torch.Tensor:
    """Per-pixel operator H(r) = (1/K²) Σ_k g_k(r) g_k(r)ᴴ as ``(y, x, coils, coils)`` from the subspace basis."""
    projector = (basis @ basis.conj().T).reshape(n_coils, kernel, kernel, n_coils, kernel, kernel)
    size = 2 * kernel - 1
    corr = torch.zeros((n_coils, n_coils, size, size), dtype=basis.dtype, device=basis.device)
    for ty in range(kernel):
        for tx in range(kernel):
            # h_{c,c'}(t − t') += P[(c, t), (c', t')]  for t' = (ty, tx)
            corr[:, :, kernel - 1 - ty : 2 * kernel - 1 - ty, kernel - 1 - tx : 2 * kernel - 1 - tx] += (
                projector[:, :, :, :, ty, tx].permute(0, 3, 1, 2)
            )
    ny, nx = image_shape
    grid = torch.zeros((n_coils, n_coils, ny, nx), dtype=basis.dtype, device=basis.device)
    dy = torch.arange(-(kernel - 1), kernel, device=basis.device) % ny
    dx = torch.arange(-(kernel - 1), kernel, device=basis.device) % nx
    grid[:, :, dy[:, None], dx[None, :]] = corr
    operator = torch.fft.ifft2(grid) * (ny * nx / (kernel * kernel))
    operator = torch.fft.fftshift(operator, dim=(-2, -1))
    return operator.permute(2, 3, 0, 1)


def _dominant_eigenvectors(
    operator: torch.Tensor, n_iterations: int, start: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched power iteration on ``(..., n, n)`` Hermitian PSD matrices → (eigenvalues ``(...)``, vectors ``(..., n)``)."""
    v = operator.sum(dim=-1) if start is None else start  # nonzero start in the signal subspace
    v = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(1e-30)
    for _ in range(n_iterations):
        w = (operator @ v.unsqueeze(-1)).squeeze(-1)
        v = w / torch.linalg.vector_norm(w, dim=-1, keepdim=True).clamp_min(1e-30)
    eigenvalue = torch.einsum("...i,...ij,...j->...", v.conj(), operator, v).real
    return eigenvalue, v


def espirit_maps(
    calibration: torch.Tensor,
    image_shape: tuple[int, int],
    kernel_size: int = 6,
    subspace_threshold: float = 0.02,
    eigenvalue_crop: float = 0.8,
    n_power_iterations: int = 8,
) -> torch.Tensor:
    """ESPIRiT maps ``(coils, *image_shape)`` from calibration k-space ``(coils, n_ky, n_kx)``.

    Args:
        calibration: fully sampled central k-space (time-averaged ACS lines, central columns).
        image_shape: ``(ny, nx)`` of the reconstruction grid.
        kernel_size: calibration kernel width (k-space samples, square).
        subspace_threshold: singular values above this fraction of the largest span the signal subspace.
        eigenvalue_crop: pixels whose dominant eigenvalue is below this get zero maps (outside the support).
        n_power_iterations: power iterations per pixel, started from the low-resolution coil images
            (already close to the dominant eigenvector, so a few iterations converge).
    """
    n_coils = calibration.shape[0]
    matrix = _calibration_matrix(calibration.to(torch.complex64), kernel_size)
    gram = (matrix.conj().T @ matrix).to(torch.complex128)
    eigenvalues, vectors = torch.linalg.eigh(0.5 * (gram + gram.conj().T))
    singular = eigenvalues.clamp_min(0).sqrt()
    keep = singular >= subspace_threshold * singular.max()
    basis = vectors[:, keep].conj().to(torch.complex64)  # patches lie in span(conj(V)) for A = U S Vᴴ
    operator = _image_domain_operator(basis, n_coils, kernel_size, image_shape)
    start = lowres_coil_maps(calibration, image_shape).to(operator.dtype).permute(1, 2, 0)
    eigenvalue, maps = _dominant_eigenvectors(operator, n_power_iterations, start + 1e-6)
    reference = maps[..., :1]
    maps = maps * (reference.conj() / reference.abs().clamp_min(1e-30))
    maps = torch.where((eigenvalue >= eigenvalue_crop)[..., None], maps, torch.zeros_like(maps))
    return maps.permute(2, 0, 1).to(calibration.dtype).contiguous()


def time_averaged_kspace(kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of ``(phases, coils, ky, kx)`` over the phases that sampled each point (mask broadcastable).

    With sampling that changes from frame to frame the average fills far more of k-space than one frame:
    the usual calibration source for coil maps in accelerated cine.
    """
    weights = mask.to(kspace.real.dtype).expand_as(kspace)
    count = weights.sum(dim=0)
    return (kspace * weights).sum(dim=0) / count.clamp_min(1)
