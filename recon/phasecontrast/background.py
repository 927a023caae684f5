"""Background (eddy-current) velocity offset: low-order polynomial fitted to static tissue, then subtracted.

Eddy currents and gradient imperfections add a slowly varying, time-invariant phase offset to the
velocity map.  It is estimated on static tissue (see :func:`recon.phasecontrast.masks.static_tissue_mask`)
by a least-squares fit of a 2-D polynomial in the in-plane coordinates and subtracted everywhere
(Walker et al. 1993; Lankhaar et al. 2005).  Coordinates are normalised to [−1, 1] over the image so
the fit is well conditioned for any matrix size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from scipy import ndimage

from recon.common.linop import LinearOperator


def polynomial_exponents(order: int) -> tuple[tuple[int, int], ...]:
    """Exponents ``(p_y, p_x)`` of all monomials ``y^p_y · x^p_x`` with ``p_y + p_x ≤ order``."""
    if not 0 <= order <= 8:
        raise ValueError(f"polynomial order must be in 0..8, got {order}")
    return tuple((total - px, px) for total in range(order + 1) for px in range(total + 1))


class PolynomialBasis(LinearOperator):
    """Coefficients ``(n_terms,)`` → map ``(ny, nx)``: ``Σ_k c_k · y^a_k · x^b_k`` on normalised coordinates.

    The adjoint maps an image to its inner products with the basis functions.  The basis tensor
    ``(n_terms, ny, nx)`` is a buffer, so ``.to(device)`` moves it.
    """

    basis: torch.Tensor

    def __init__(
        self,
        order: int,
        shape_yx: tuple[int, int],
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        ny, nx = shape_yx
        yy = torch.linspace(-1.0, 1.0, ny, dtype=dtype, device=device).reshape(-1, 1)
        xx = torch.linspace(-1.0, 1.0, nx, dtype=dtype, device=device).reshape(1, -1)
        self.exponents = polynomial_exponents(order)
        basis = torch.stack([(yy**py) * (xx**px) for py, px in self.exponents])
        self.register_buffer("basis", basis)

    @property
    def n_terms(self) -> int:
        return len(self.exponents)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("k,kyx->yx", x, self.basis.to(x.dtype))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return torch.einsum("yx,kyx->k", y, self.basis.to(y.dtype))


@dataclass(frozen=True)
class BackgroundFit:
    """Result of :func:`fit_background`.

    Attributes:
        offset_cm_per_s: ``(y, x)`` real, the fitted background velocity (cm/s) on the full grid.
        coefficients: ``(n_terms,)`` float64 coefficients (cm/s) of the global polynomial on normalised
            coordinates (for the local fit: those of its global part).
        order: polynomial order (of the global part for the local fit).
        n_static_pixels: number of pixels the fit used.
        residual_rms_cm_per_s: root-mean-square of (mean velocity − fit) over the static pixels (cm/s).
    """

    offset_cm_per_s: torch.Tensor
    coefficients: torch.Tensor
    order: int
    n_static_pixels: int
    residual_rms_cm_per_s: float

    def __post_init__(self) -> None:
        if self.offset_cm_per_s.ndim != 2 or self.coefficients.ndim != 1:
            raise ValueError("offset must be (y, x) and coefficients 1-D")
        if self.n_static_pixels < self.coefficients.shape[0]:
            raise ValueError("fewer static pixels than polynomial terms")


def fit_background(
    velocity_cm_per_s: torch.Tensor,
    static_mask: torch.Tensor,
    order: int = 2,
    weights: torch.Tensor | None = None,
) -> BackgroundFit:
    """Fit a polynomial of ``order`` to the temporal mean velocity over ``static_mask``.

    Args:
        velocity_cm_per_s: ``(phases, y, x)`` or ``(y, x)`` real velocity maps (cm/s).
        static_mask: ``(y, x)`` boolean static-tissue pixels.
        order: polynomial order (0 = constant, 1 = plane, 2 = quadratic …).
        weights: optional ``(y, x)`` non-negative weights (e.g. magnitude², the inverse phase-noise variance).
    """
    mean_v = velocity_cm_per_s.mean(dim=0) if velocity_cm_per_s.ndim == 3 else velocity_cm_per_s
    if mean_v.ndim != 2 or static_mask.shape != mean_v.shape:
        raise ValueError(
            f"velocity {tuple(velocity_cm_per_s.shape)} and mask {tuple(static_mask.shape)} do not match"
        )
    basis = PolynomialBasis(order, (mean_v.shape[0], mean_v.shape[1]), device=mean_v.device)
    n_static = int(static_mask.sum())
    if n_static < 4 * basis.n_terms:
        raise ValueError(
            f"only {n_static} static pixels for {basis.n_terms} polynomial terms; need ≥ {4 * basis.n_terms}"
        )
    design = basis.basis[:, static_mask].T  # (n_static, n_terms)
    target = mean_v[static_mask].to(torch.float64)
    w = torch.ones_like(target) if weights is None else weights[static_mask].to(torch.float64).clamp_min(0.0)
    sqrt_w = w.sqrt().unsqueeze(-1)
    coefficients = torch.linalg.lstsq(design * sqrt_w, (target * sqrt_w[:, 0]).unsqueeze(-1)).solution[:, 0]
    offset = basis(coefficients)
    residual = target - offset[static_mask]
    return BackgroundFit(
        offset_cm_per_s=offset.to(mean_v.dtype),
        coefficients=coefficients,
        order=order,
        n_static_pixels=n_static,
        residual_rms_cm_per_s=float(residual.pow(2).mean().sqrt()),
    )


def fit_background_robust(
    velocity_cm_per_s: torch.Tensor,
    static_mask: torch.Tensor,
    order: int = 2,
    weights: torch.Tensor | None = None,
    n_iterations: int = 3,
    outlier_sigmas: float = 3.0,
) -> BackgroundFit:
    """:func:`fit_background` with iterative outlier rejection: after each fit, static pixels whose mean
    velocity departs from the fit by more than ``outlier_sigmas`` robust standard deviations (1.4826 ×
    median absolute deviation of the residuals) are dropped and the fit is repeated.

    "Static" pixels picked by low temporal variation still include some that are not: ghosts of the
    pulsatile vessels along the phase-encoding direction, tissue aliased from outside the field of view
    (it carries the background phase of where it really is) and slowly moving tissue.  They are few but
    far off, and a least-squares polynomial follows them.
    """
    if n_iterations < 0 or not outlier_sigmas > 0:
        raise ValueError("n_iterations must be ≥ 0 and outlier_sigmas positive")
    mean_v = velocity_cm_per_s.mean(dim=0) if velocity_cm_per_s.ndim == 3 else velocity_cm_per_s
    kept = static_mask
    for _ in range(n_iterations):
        fit = fit_background(velocity_cm_per_s, kept, order=order, weights=weights)
        residual = mean_v - fit.offset_cm_per_s
        on_kept = residual[kept]
        sigma = 1.4826 * float((on_kept - on_kept.median()).abs().median())
        trimmed = kept & (residual.abs() <= outlier_sigmas * sigma)
        if int(trimmed.sum()) < 4 * len(polynomial_exponents(order)) or bool((trimmed == kept).all()):
            break
        kept = trimmed
    return fit_background(velocity_cm_per_s, kept, order=order, weights=weights)


def subtract_background(velocity_cm_per_s: torch.Tensor, fit: BackgroundFit) -> torch.Tensor:
    """Velocity maps ``(..., y, x)`` with the fitted offset removed from every frame."""
    return velocity_cm_per_s - fit.offset_cm_per_s.to(velocity_cm_per_s.dtype)


def distance_pixels(region: torch.Tensor) -> torch.Tensor:
    """Euclidean distance (pixels) of every pixel of a ``(y, x)`` grid to the nearest pixel of ``region``."""
    inside = region.detach().cpu().numpy().astype(bool)
    if not inside.any():
        raise ValueError("region is empty")
    distance = ndimage.distance_transform_edt(~inside)
    return torch.from_numpy(distance).to(device=region.device, dtype=torch.float64)


def local_offset_near(
    velocity_cm_per_s: torch.Tensor,
    static_mask: torch.Tensor,
    distance_to_vessel_pixels: torch.Tensor,
    order: int,
    sigma_pixels: float,
) -> torch.Tensor | None:
    """Background offset ``(y, x)`` fitted around one vessel: the static pixels weighted by a Gaussian of
    their distance to it (``distance_to_vessel_pixels`` ``(y, x)``, see :func:`distance_pixels`; standard
    deviation ``sigma_pixels``).

    A thorax-wide polynomial is a compromise over the whole slice, and where the vessel lies between
    lung (no signal) and the moving heart its value at the vessel rests on distant tissue; the weighted
    fit answers at the vessel from the tissue around it (the "local background region" of clinical flow
    analysis, made smooth).  Returns ``None`` when the weighted data are too few for ``order``
    (effective number of pixels ``(Σw)² / Σw²`` below four per polynomial term).
    """
    if not sigma_pixels > 0:
        raise ValueError(f"sigma_pixels must be positive, got {sigma_pixels}")
    weights = torch.exp(-0.5 * (distance_to_vessel_pixels / sigma_pixels) ** 2)
    w = weights[static_mask]
    n_effective = float(w.sum() ** 2 / (w.pow(2).sum() + 1e-300))
    if n_effective < 4 * len(polynomial_exponents(order)):
        return None
    return fit_background_robust(velocity_cm_per_s, static_mask, order=order, weights=weights).offset_cm_per_s


def blend_near_regions(
    global_offset: torch.Tensor,
    local_offsets: list[tuple[torch.Tensor, torch.Tensor]],
    radius_pixels: float,
) -> torch.Tensor:
    """``global_offset`` ``(y, x)`` with each ``(distance to its region in pixels, local offset)`` taking
    over near its region: the local offset inside the region (distance 0), blended linearly into the
    global one over ``radius_pixels`` around it (where blends overlap they share by weight).  Both maps are
    smooth, so the result is continuous."""
    if not radius_pixels > 0:
        raise ValueError(f"radius_pixels must be positive, got {radius_pixels}")
    total = torch.zeros_like(global_offset, dtype=torch.float64)
    weight_sum = torch.zeros_like(total)
    for distance, local in local_offsets:
        w = (1.0 - distance / radius_pixels).clamp(0.0, 1.0)
        total += w * local.to(torch.float64)
        weight_sum += w
    rest = (1.0 - weight_sum).clamp_min(0.0)
    blended = (total + rest * global_offset.to(torch.float64)) / (weight_sum + rest).clamp_min(1e-12)
    return blended.to(global_offset.dtype)
