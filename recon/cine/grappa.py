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
    noise_variance: float | None = None,
) -> GrappaKernel:
    """Fit the kernel on fully sampled calibration k-space ``(coils, n_ky, n_kx)``.

    Tikhonov weight λ of ``min ‖S w − t‖² + λ‖w‖²``: without ``noise_variance``, relative to the mean
    squared singular value of the source matrix, λ = regularization · trace(SᴴS) / n_unknowns; with
    ``noise_variance`` σ² (per k-space sample of the data the kernel will be applied to), in noise units,
    λ = regularization · n_rows · σ² (regularization = 1 is the ridge that noise of variance σ² in the
    source samples would add to SᴴS).  ``n_blocks`` is reduced automatically when the calibration region
    is too short for the kernel.
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
    if noise_variance is None:
        lam = regularization * float(gram.diagonal().real.sum()) / gram.shape[0]
    else:
        lam = regularization * src.shape[0] * noise_variance
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


def estimate_lines(
    kspace: torch.Tensor, kernel: GrappaKernel, first_sampled_line: int, lines: torch.Tensor
) -> torch.Tensor:
    """GRAPPA estimates of coil k-space at the ky ``lines`` ``(n_lines,)`` → ``(..., coils, n_lines, kx)``.

    Sources are the regular lines ``first_sampled_line + m·R`` of the zero-filled ``kspace
    (..., coils, ky, kx)``, wrapped circularly in ky and kx: exactly the lines the image-domain weights
    of :func:`grappa_image_weights` fill implicitly.  Lines of the regular pattern itself are returned unchanged.
    """
    ny = kspace.shape[-2]
    r, n_taps, half = kernel.acceleration, kernel.n_kx_taps, kernel.n_kx_taps // 2
    nc, nb = kernel.n_coils, len(kernel.source_offsets)
    lines = lines.to(kspace.device)
    offset = (lines - first_sampled_line) % r  # (n_lines,) target offset o; 0 = an acquired line
    shifts = torch.tensor(kernel.source_offsets, device=kspace.device)
    source_rows = (lines[:, None] - offset[:, None] + shifts[None, :]) % ny  # (n_lines, blocks)
    padded = torch.cat([kspace[..., -half:], kspace, kspace[..., :half]], dim=-1) if half else kspace
    taps = padded[..., source_rows, :].unfold(-1, n_taps, 1)  # (..., coils, n_lines, blocks, kx, taps)
    w = kernel.weights.to(kspace.dtype).reshape(nc, nb, n_taps, nc, r - 1)
    estimates = torch.einsum("...cnbxt,cbtjo->...jnox", taps, w)  # (..., coils_out, n_lines, R − 1, kx)
    picked = (offset - 1).clamp_min(0)
    index = picked.view(-1, 1, 1).expand(-1, 1, kspace.shape[-1])
    out = estimates.gather(-2, index.expand(*estimates.shape[:-2], 1, -1)).squeeze(-2)
    acquired = (offset == 0).view(-1, 1)
    return torch.where(acquired, kspace[..., lines, :], out)


def line_ifft_matrix(n_ky: int, lines: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(n_ky, n_lines)`` matrix B with ``ifftc`` along ky of data held only on ``lines`` equal to B @ data."""
    unit = torch.zeros((len(lines), n_ky), dtype=dtype, device=lines.device)
    unit[torch.arange(len(lines), device=lines.device), lines] = 1
    return ifftc(unit, dims=(-1,)).T.contiguous()


def hybrid_kernel(kernel: GrappaKernel, n_kx: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The kernel with its k0 taps turned into per-column factors after an inverse FFT along kx.

    Returns ``(coils_in, blocks, R − 1, coils_out, n_kx)``: a circular kx convolution with taps t
    (source k0 = target k0 + t − half) is, in the hybrid (ky, x) domain, a product with
    ``Σ_t w_t · exp(−2πi (t − half)·x / n_kx)`` (x centred at n_kx // 2).
    """
    r, nc, nb, n_taps = kernel.acceleration, kernel.n_coils, len(kernel.source_offsets), kernel.n_kx_taps
    w = kernel.weights.reshape(nc, nb, n_taps, nc, r - 1).to(dtype or kernel.weights.dtype)
    real = torch.float64 if w.dtype == torch.complex128 else torch.float32
    x = torch.arange(n_kx, device=w.device, dtype=real) - n_kx // 2
    t = torch.arange(n_taps, device=w.device, dtype=real) - n_taps // 2
    phase = torch.exp(-2j * torch.pi * t[:, None] * x[None, :] / n_kx).to(w.dtype)  # (taps, x)
    return torch.einsum("cbtjo,tx->cbojx", w, phase)


def calibration_consistency(
    kspace: torch.Tensor,
    sampled: torch.Tensor,
    kernel: GrappaKernel,
    first_sampled_line: int,
    combination: torch.Tensor,
) -> torch.Tensor:
    """Combined-image correction that puts the acquired non-regular lines (the calibration lines) back.

    Image-domain GRAPPA sees only the regular lines; the measured calibration lines of every frame replace
    the kernel's estimates by adding ``Σ_c w_c · IFFT(M_extra · (k_c − k̂_c))`` to the unmixed image
    (linear, so identical to explicit k-space data consistency followed by the same combination).  All of
    it runs in the hybrid (ky, x) domain on the few lines involved: a 1-D inverse FFT along kx of the
    extra lines and of their source lines, the kernel as per-column factors (:func:`hybrid_kernel`), and a
    ``(ny × n_lines)`` matrix along ky; far cheaper than another full inverse FFT per coil.

    Args:
        kspace: ``(phases, coils, ky, kx)`` binned k-space, zero where not sampled.
        sampled: ``(phases, ky)`` bool lines acquired per frame.
        kernel: the calibrated kernel; ``first_sampled_line``: offset of the regular pattern.
        combination: ``(coils, ny, nx)`` combination weights (as folded into the unmixing weights).

    Returns:
        ``(phases, ny, nx)`` complex correction (zeros when no line beyond the regular pattern was acquired).
    """
    ny, nx = kspace.shape[-2:]
    r, device = kernel.acceleration, kspace.device
    rows = torch.arange(ny, device=sampled.device)
    extra_lines = sampled & ((rows - first_sampled_line) % r != 0)[None, :]  # (phases, ky)
    lines = torch.nonzero(extra_lines.any(dim=0)).flatten().to(device)
    if lines.numel() == 0:
        return torch.zeros((kspace.shape[0], ny, nx), dtype=kspace.dtype, device=device)
    offset = (lines - first_sampled_line) % r  # (n_lines,) target offsets 1..R−1
    shifts = torch.tensor(kernel.source_offsets, device=device)
    source_rows = (lines[:, None] - offset[:, None] + shifts[None, :]) % ny  # (n_lines, blocks)
    needed, inverse = torch.unique(source_rows, return_inverse=True)
    sources = ifftc(kspace[..., needed, :], dims=(-1,))[
        ..., inverse, :
    ]  # (phases, coils, n_lines, blocks, x)
    factors = hybrid_kernel(kernel, nx, kspace.dtype)[
        :, :, offset - 1
    ]  # (coils, blocks, n_lines, coils_out, x)
    estimate = torch.einsum("pcnbx,cbnjx->pjnx", sources, factors)
    held = extra_lines[:, lines.to(sampled.device)].to(device=device, dtype=kspace.real.dtype)[
        :, None, :, None
    ]
    difference = held * (ifftc(kspace[..., lines, :], dims=(-1,)) - estimate)  # (phases, coils, n_lines, x)
    matrix = line_ifft_matrix(ny, lines, kspace.dtype)
    coil_images = torch.einsum("yn,pcnx->pcyx", matrix, difference)
    return (combination.to(kspace.dtype) * coil_images).sum(dim=-3)
