"""GRAPPA with image-domain unmixing weights (calibrate once per slice, then one weighted sum per frame).

Kernel geometry for acceleration R: a missing line at ``y0 + o`` (o = 1..R−1) is estimated from the
acquired lines ``y0 + s_b`` (``s_b = R·(b − (n_blocks − 1)//2)``) and ``n_kx_taps`` neighbouring k0
samples in every coil.  The kernel is fitted to the calibration region by Tikhonov-regularised least
squares.  Written as one k-space convolution ``K_j = Σ_c G_jc ⊛ S_c`` (identity tap for acquired lines)
it acts on zero-filled regularly undersampled k-space, so in the image domain it is a per-pixel
``coils × coils`` matrix ``√N · IFFT(G)``; folding a coil-combination weight in gives one unmixing
weight per coil and pixel: each frame then costs one inverse FFT per coil plus a weighted coil sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recon.common.fft import ifftc


@dataclass(frozen=True)
class GrappaKernel:
    """A calibrated GRAPPA kernel.

    Attributes:
        weights: ``(coils · n_blocks · n_kx_taps, coils · (R − 1))`` complex; rows ordered (coil, block, tap),
            columns (target coil, target offset − 1).
        acceleration: R (≥ 2).
        source_offsets: ``(n_blocks,)`` ky offsets of the source lines from the line ``y0``, multiples of R.
        n_kx_taps: odd number of k0 taps.
        n_coils: number of (input = output) coils.
    """

    weights: torch.Tensor
    acceleration: int
    source_offsets: tuple[int, ...]
    n_kx_taps: int
    n_coils: int

    def __post_init__(self) -> None:
        n_rows = self.n_coils * len(self.source_offsets) * self.n_kx_taps
        if self.acceleration < 2 or self.n_kx_taps % 2 == 0:
            raise ValueError("GRAPPA needs acceleration ≥ 2 and an odd number of k0 taps")
        if tuple(self.weights.shape) != (n_rows, self.n_coils * (self.acceleration - 1)):
            raise ValueError(f"weights shape {tuple(self.weights.shape)} does not match the kernel geometry")


def source_offsets(acceleration: int, n_blocks: int) -> tuple[int, ...]:
    """ky offsets of the source lines relative to ``y0``: R·(b − (n_blocks − 1)//2)."""
    return tuple(acceleration * (b - (n_blocks - 1) // 2) for b in range(n_blocks))


def calibrate_grappa(
    calibration: torch.Tensor,
    acceleration: int,
    n_blocks: int = 4,
    n_kx_taps: int = 5,
    regularization: float = 1e-3,
) -> GrappaKernel:
    """Fit the kernel on fully sampled calibration k-space ``(coils, n_ky, n_kx)``.

    ``regularization`` is relative: λ = regularization · trace(SᴴS) / n_unknowns.  ``n_blocks`` is
    reduced automatically when the calibration region is too short for the kernel.
    """
    n_coils, n_ky, n_kx = calibration.shape
    while n_blocks > 1 and (n_blocks - 1) * acceleration + acceleration > n_ky - 1:
        n_blocks -= 1
    offsets = source_offsets(acceleration, n_blocks)
    y_first = -min(offsets)
    y_last = n_ky - 1 - max(max(offsets), acceleration - 1)
    if y_last < y_first or n_kx < n_kx_taps:
        raise ValueError(f"calibration region {n_ky}×{n_kx} too small for R={acceleration}, {n_kx_taps} taps")
    half = n_kx_taps // 2
    y0 = torch.arange(y_first, y_last + 1, device=calibration.device)
    taps = calibration.unfold(-1, n_kx_taps, 1)  # (coils, n_ky, n_xpos, taps)
    rows = y0[:, None] + torch.tensor(offsets, device=calibration.device)[None, :]
    src = taps[:, rows].permute(1, 3, 0, 2, 4).reshape(-1, n_coils * n_blocks * n_kx_taps)
    targets_y = y0[:, None] + torch.arange(1, acceleration, device=calibration.device)[None, :]
    tgt = (
        calibration[:, targets_y, half : n_kx - half]
        .permute(1, 3, 0, 2)
        .reshape(-1, n_coils * (acceleration - 1))
    )
    gram = (src.conj().T @ src).to(torch.complex128)  # small system: solve in double precision
    lam = regularization * float(gram.diagonal().real.sum()) / gram.shape[0]
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    weights = torch.linalg.solve(gram + lam * eye, (src.conj().T @ tgt).to(torch.complex128)).to(src.dtype)
    return GrappaKernel(weights, acceleration, offsets, n_kx_taps, n_coils)


def kernel_grid(
    kernel: GrappaKernel, image_shape: tuple[int, int], dtype: torch.dtype | None = None
) -> torch.Tensor:
    """The convolution kernel G ``(coils_out, coils_in, ny, nx)`` on the k-space grid (tap (0, 0) at the centre)."""
    ny, nx = image_shape
    r, nc, half = kernel.acceleration, kernel.n_coils, kernel.n_kx_taps // 2
    w = kernel.weights.reshape(nc, len(kernel.source_offsets), kernel.n_kx_taps, nc, r - 1)
    grid = torch.zeros((nc, nc, ny, nx), dtype=dtype or w.dtype, device=w.device)
    cy, cx = ny // 2, nx // 2
    idx = torch.arange(nc, device=w.device)
    grid[idx, idx, cy, cx] = 1
    for o in range(1, r):
        for b, s in enumerate(kernel.source_offsets):
            for t in range(kernel.n_kx_taps):
                grid[:, :, cy + o - s, cx - (t - half)] = w[:, b, t, :, o - 1].T.to(grid.dtype)
    return grid


def grappa_image_weights(kernel: GrappaKernel, image_shape: tuple[int, int]) -> torch.Tensor:
    """Image-domain GRAPPA matrix ``(coils_out, coils_in, ny, nx)``: coil images = Σ_in W · IFFT(zero-filled).

    ``W = √N · IFFT_c(G)`` evaluated directly as a separable sum over the kernel's few taps (the kernel
    is sparse: (R − 1)·n_blocks·n_kx_taps entries plus the identity), cheaper than coils² FFTs.
    """
    ny, nx = image_shape
    r, nc, half = kernel.acceleration, kernel.n_coils, kernel.n_kx_taps // 2
    w = kernel.weights.reshape(nc, len(kernel.source_offsets), kernel.n_kx_taps, nc, r - 1)
    dys = sorted({o - s for o in range(1, r) for s in kernel.source_offsets} | {0})
    taps = torch.zeros((nc, nc, len(dys), kernel.n_kx_taps), dtype=w.dtype, device=w.device)
    eye = torch.eye(nc, dtype=w.dtype, device=w.device)
    taps[:, :, dys.index(0), half] = eye
    for o in range(1, r):
        for b, s in enumerate(kernel.source_offsets):
            taps[:, :, dys.index(o - s), :] = (
                w[:, b, :, :, o - 1].permute(2, 0, 1).flip(-1)
            )  # dx = −(t − half)
    real = torch.float64 if w.dtype == torch.complex128 else torch.float32
    y = torch.arange(ny, device=w.device, dtype=real) - ny // 2
    x = torch.arange(nx, device=w.device, dtype=real) - nx // 2
    dy = torch.tensor(dys, device=w.device, dtype=real)
    dx = torch.arange(-half, half + 1, device=w.device, dtype=real)
    ey = torch.exp(2j * torch.pi * dy[:, None] * y[None, :] / ny).to(w.dtype)  # (a, y)
    ex = torch.exp(2j * torch.pi * dx[:, None] * x[None, :] / nx).to(w.dtype)  # (b, x)
    return torch.einsum("jcax,ay->jcyx", torch.einsum("jcab,bx->jcax", taps, ex), ey)


def grappa_image_weights_fft(kernel: GrappaKernel, image_shape: tuple[int, int]) -> torch.Tensor:
    """Reference for :func:`grappa_image_weights`: ``√N · IFFT_c`` of the kernel on the full grid."""
    grid = kernel_grid(kernel, image_shape)
    return ifftc(grid) * (image_shape[0] * image_shape[1]) ** 0.5


def unmixing_weights(image_weights: torch.Tensor, combination: torch.Tensor) -> torch.Tensor:
    """Fold combination weights ``(coils_out, ny, nx)`` into GRAPPA image weights → ``(coils_in, ny, nx)``."""
    return (combination.to(image_weights.dtype)[:, None] * image_weights).sum(dim=0)


def apply_unmixing(kspace: torch.Tensor, unmixing: torch.Tensor) -> torch.Tensor:
    """Zero-filled k-space ``(..., coils, ky, kx)`` → combined images ``(..., ny, nx)``: Σ_c u_c · IFFT(k_c)."""
    return (unmixing * ifftc(kspace)).sum(dim=-3)


def shifted_unmixing(unmixing: torch.Tensor) -> torch.Tensor:
    """Unmixing weights for :func:`apply_unmixing_fast` (even sizes): the centring shifts folded in.

    For even N, ``ifftc(k) = fftshift(ifft(ifftshift(k)))`` and ``ifft(ifftshift(k))`` equals
    ``(−1)^(y+x)·ifft(k)``; so Σ u·ifftc(k) = fftshift(Σ u'·ifft(k)) with u' = ifftshift(u)·(−1)^(y+x).
    """
    ny, nx = unmixing.shape[-2:]
    if ny % 2 or nx % 2:
        raise ValueError(f"the shift-free unmixing needs even sizes, got {ny}×{nx}")
    sign = (
        torch.arange(ny, device=unmixing.device)[:, None] + torch.arange(nx, device=unmixing.device)[None, :]
    ) % 2
    checker = (1 - 2 * sign).to(unmixing.real.dtype)
    return torch.fft.ifftshift(unmixing, dim=(-2, -1)) * checker


def apply_unmixing_fast(kspace: torch.Tensor, shifted: torch.Tensor) -> torch.Tensor:
    """Same as :func:`apply_unmixing` with weights from :func:`shifted_unmixing`: per frame one plain
    inverse FFT per coil, a weighted coil sum and one shift of the combined image."""
    coil_images = torch.fft.ifft2(kspace, norm="ortho")
    return torch.fft.fftshift((shifted * coil_images).sum(dim=-3), dim=(-2, -1))


def apply_image_weights(kspace: torch.Tensor, image_weights: torch.Tensor) -> torch.Tensor:
    """Zero-filled k-space ``(..., coils, ky, kx)`` → unaliased coil images ``(..., coils_out, ny, nx)``."""
    return torch.einsum("jcyx,...cyx->...jyx", image_weights, ifftc(kspace))


def grappa_kspace(kspace: torch.Tensor, kernel: GrappaKernel, first_sampled_line: int) -> torch.Tensor:
    """Fill the missing lines of ``(..., coils, ky, kx)`` explicitly in k-space (reference implementation).

    Acquired lines are ``first_sampled_line + m·R``; sources beyond the k-space edge count as zero.
    """
    ny, nx = kspace.shape[-2:]
    r, half = kernel.acceleration, kernel.n_kx_taps // 2
    nc, nb = kernel.n_coils, len(kernel.source_offsets)
    padded = torch.nn.functional.pad(kspace, (half, half))
    taps = padded.unfold(-1, kernel.n_kx_taps, 1)  # (..., coils, ky, nx, taps)
    out = kspace.clone()
    w = kernel.weights.to(kspace.dtype)
    for y in range(ny):
        o = (y - first_sampled_line) % r
        if o == 0:
            continue
        src = torch.zeros(
            (*kspace.shape[:-3], nc, nb, nx, kernel.n_kx_taps), dtype=kspace.dtype, device=kspace.device
        )
        for b, s in enumerate(kernel.source_offsets):
            if 0 <= y - o + s < ny:
                src[..., :, b, :, :] = taps[..., :, y - o + s, :, :]
        flat = src.movedim(-2, -4).reshape(*kspace.shape[:-3], nx, nc * nb * kernel.n_kx_taps)
        est = (flat @ w).reshape(*kspace.shape[:-3], nx, nc, r - 1)[..., o - 1]
        out[..., :, y, :] = est.movedim(-1, -2)
    return out


def regular_sampling(sampled: torch.Tensor, acceleration: int) -> tuple[int, torch.Tensor]:
    """The offset ``a`` of the regular pattern (most sampled lines ≡ a mod R) and its ``(n_ky,)`` line mask."""
    lines = torch.nonzero(sampled).flatten()
    counts = torch.bincount(lines % acceleration, minlength=acceleration)
    offset = int(torch.argmax(counts))
    regular = torch.zeros_like(sampled)
    regular[offset::acceleration] = sampled[offset::acceleration]
    return offset, regular


def coil_compression_matrix(calibration: torch.Tensor, n_virtual_coils: int) -> torch.Tensor:
    """SVD coil compression ``(n_virtual, coils)`` from calibration data ``(coils, ...)`` (orthonormal rows)."""
    flat = calibration.reshape(calibration.shape[0], -1)
    u, _, _ = torch.linalg.svd(flat, full_matrices=False)
    return u[:, :n_virtual_coils].conj().T.contiguous()
