"""Scatter estimate by a tail-fitted smooth model.

Scattered coincidences are spread smoothly over LOR space, roughly like the emission blurred by a wide
kernel and without the attenuation of the trues.  The model for LOR L (TOF bin b) is

    s_L = α · T·g_L·η_L · (A_L G x)        (TOF: the TOF projection, so a bin gets its share)

with G a Gaussian blur of ``blur_fwhm_mm`` and x a first activity estimate.  The single scale α is fitted
on the *tails*: LORs that miss the object's support (μ > 0) dilated by ``tail_margin_mm`` (so that they
carry essentially no trues, even from the resolution blur of the first estimate): α = (prompts on tails -
randoms on tails - trues on tails) / (model on tails), clipped at 0.  The sums over tail LORs run over all (or a sample of) the crystal pairs,
as the sensitivity does.

Bound.  When the tails hold few counts (low-count frames, large patients whose arms, table and coils leave
few LORs outside the body), α is noise: 100 000 prompts of a torso gave α = 8.6, a scatter estimate above the
prompts themselves and an empty image.  α is therefore bounded by what the whole frame can hold: the expected
scatter over all LORs, α · (model over all LORs), may not exceed ``max_fraction`` of the frame's prompts minus
its expected randoms (trues + scatter).  3D whole-body PET has scatter fractions of 0.3–0.5 (NEMA NU 2: Signa
PET/MR 0.44, Biograph mMR 0.38), large patients up to ≈ 0.6, the default bound.  A bounded fit is reported
(:attr:`TailFit.bounded`) so that the image can be flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from recon.tof.filters import gaussian_filter_fwhm
from recon.tof.geometry import ScannerGeometry
from recon.tof.lor_model import crystal_table, pair_chunks
from recon.tof.projector_common import GridLike, KernelChoice
from recon.tof.projectors import project_forward
from recon.tof.sensitivity import lor_factors
from recon.tof.tof_kernel import TOFParameters

ATTENUATION_EXPONENT = 0.8
"""The scatter model carries att_L to this power (0 = unattenuated, 1 = attenuated like the trues).  Scattered
pairs travel partly through the object, so the truth lies in between; 0.8 was chosen once on a Monte-Carlo
calibration cylinder (Ø 160 mm, ``small`` scanner: flattest radial profile matching the scatter-free scan)
and is validated on a different phantom by the NEMA-like tests."""


@dataclass(frozen=True)
class TailFit:
    """Result of the tail fit (counts over the frame, all LORs of the FOV).

    Attributes:
        scale: α applied (dimensionless, ≥ 0): the tail estimate, bounded by ``max_scale``.
        n_prompts_tail: prompts on tail LORs.
        randoms_tail, trues_tail, model_tail: expected randoms, trues and unscaled scatter model on tail LORs.
        fitted_scale: the tail estimate before the bound (``None`` when no bound was evaluated).
        max_scale: the bound on α from the frame's largest plausible scatter fraction (``None``: none).
        scatter_fraction: expected scatter / (prompts − randoms) of the whole frame with the applied α
            (``None`` when not evaluated).
    """

    scale: float
    n_prompts_tail: int
    randoms_tail: float
    trues_tail: float
    model_tail: float
    fitted_scale: float | None = None
    max_scale: float | None = None
    scatter_fraction: float | None = None

    @property
    def bounded(self) -> bool:
        """Whether the tail estimate exceeded the bound and was replaced by it."""
        return self.fitted_scale is not None and self.fitted_scale > self.scale

    @property
    def net_scatter_tail(self) -> float:
        """Scatter counts the tails show: prompts minus expected randoms and trues."""
        return self.n_prompts_tail - self.randoms_tail - self.trues_tail

    @property
    def identifiable(self) -> bool:
        """Whether the tails show scatter above 3 Poisson σ of their prompts; otherwise the fitted scale is noise
        or a clip at 0 (tails too small, or dominated by randoms, e.g. a large patient with arms and coils
        filling the field of view) and the scatter correction is not to be trusted."""
        return self.net_scatter_tail > 3.0 * max(self.n_prompts_tail, 1) ** 0.5


def tail_support(
    mu_per_mm: torch.Tensor, voxel_size_mm: tuple[float, float, float], margin_mm: float
) -> torch.Tensor:
    """Indicator (float32, 1 inside) of the μ-map support dilated by ``margin_mm`` (a max-filter per axis)."""
    mask = (mu_per_mm > 0).to(torch.float32)[None, None]
    for axis, voxel in enumerate(voxel_size_mm):
        radius = round(margin_mm / voxel)
        if radius < 1:
            continue
        size = [1, 1, 1]
        size[axis] = 2 * radius + 1
        pad = [0, 0, 0]
        pad[axis] = radius
        mask = torch.nn.functional.max_pool3d(mask, tuple(size), stride=1, padding=tuple(pad))
    return mask[0, 0]


def misses_support(
    support: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    grid: GridLike,
    kernel: KernelChoice | str = "auto",
) -> torch.Tensor:
    """True for LORs whose path through the (dilated) support is below 0.1 mm."""
    return project_forward(support, start, end, grid, kernel=kernel) < 0.1


def fit_scatter_scale(
    scanner: ScannerGeometry,
    grid: GridLike,
    activity: torch.Tensor,
    blurred: torch.Tensor,
    mu_per_mm: torch.Tensor,
    efficiencies: torch.Tensor | None,
    randoms_factors: np.ndarray,
    n_prompts_tail: int,
    support: torch.Tensor,
    frame_duration_s: float,
    fov_radius_mm: float,
    max_pairs: int | None,
    rng: np.random.Generator,
    kernel: KernelChoice | str = "auto",
    chunk_size: int = 1 << 20,
    n_prompts_total: int | None = None,
    max_fraction: float = 0.6,
) -> TailFit:
    """α of the scatter model from the tails, bounded (see the module docstring).

    Args:
        activity: first estimate x (z, y, x), Bq/mm³; ``blurred`` = G x.
        randoms_factors: per-crystal sᵢ of :func:`recon.tof.randoms.crystal_randoms_factors`.
        n_prompts_tail: prompts whose LOR misses ``support`` (:func:`misses_support`).
        support: :func:`tail_support` of the μ-map.
        n_prompts_total: prompts of the frame; with it α is bounded by ``max_fraction`` (0..1) of the frame's
            prompts minus expected randoms, and the frame's scatter fraction is reported.
    """
    device = activity.device
    scale, chunks = pair_chunks(scanner, fov_radius_mm, max_pairs, chunk_size, rng)
    table = crystal_table(scanner, device)
    randoms_t = trues_t = model_t = model_all = randoms_all = 0.0
    s = torch.from_numpy(randoms_factors).to(device)
    for c1_np, c2_np in chunks:
        c1 = torch.from_numpy(c1_np).to(device).long()
        c2 = torch.from_numpy(c2_np).to(device).long()
        f = lor_factors(scanner, grid, c1, c2, mu_per_mm, efficiencies, kernel)
        if n_prompts_total is not None:
            base_all = frame_duration_s * f.geometric_mm2 * f.normalisation
            model_all += float(
                (
                    base_all
                    * f.attenuation**ATTENUATION_EXPONENT
                    * project_forward(blurred, table[c1], table[c2], grid, kernel=kernel)
                ).sum()
            )
            randoms_all += float((s[c1] * s[c2]).sum())
        tail = misses_support(support, table[c1], table[c2], grid, kernel)
        if not bool(tail.any()):
            continue
        c1, c2 = c1[tail], c2[tail]
        start, end = table[c1], table[c2]
        base = frame_duration_s * f.geometric_mm2[tail] * f.normalisation[tail]
        trues_t += float(
            (base * f.attenuation[tail] * project_forward(activity, start, end, grid, kernel=kernel)).sum()
        )
        model_t += float(
            (
                base
                * f.attenuation[tail] ** ATTENUATION_EXPONENT
                * project_forward(blurred, start, end, grid, kernel=kernel)
            ).sum()
        )
        randoms_t += float((s[c1] * s[c2]).sum())
    n_tail = n_prompts_tail
    randoms_t, trues_t, model_t = randoms_t * scale, trues_t * scale, model_t * scale
    alpha = max(0.0, (n_tail - randoms_t - trues_t) / model_t) if model_t > 0 else 0.0
    if n_prompts_total is None:
        return TailFit(alpha, n_tail, randoms_t, trues_t, model_t)
    return bounded_fit(
        TailFit(alpha, n_tail, randoms_t, trues_t, model_t),
        n_prompts_total,
        randoms_all * scale,
        model_all * scale,
        max_fraction,
    )


def bounded_fit(
    fit: TailFit, n_prompts: int, randoms_all: float, model_all: float, max_fraction: float
) -> TailFit:
    """``fit`` with α bounded so that α · ``model_all`` ≤ ``max_fraction`` · (``n_prompts`` − ``randoms_all``),
    and the frame's scatter fraction with the applied α (see the module docstring)."""
    if not 0.0 < max_fraction < 1.0:
        raise ValueError(f"max_fraction must be in (0, 1), got {max_fraction}")
    net = max(n_prompts - randoms_all, 0.0)
    max_scale = max_fraction * net / model_all if model_all > 0 else 0.0
    alpha = min(fit.scale, max_scale)
    fraction = alpha * model_all / net if net > 0 else 0.0
    return replace(fit, scale=alpha, fitted_scale=fit.scale, max_scale=max_scale, scatter_fraction=fraction)


def scatter_over_multiplicative(
    blurred: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    grid: GridLike,
    attenuation: torch.Tensor,
    alpha: float,
    tof: TOFParameters | None,
    tof_bin: torch.Tensor | None,
    kernel: KernelChoice | str = "auto",
) -> torch.Tensor:
    """sₑ/mₑ of each prompt = α·(A_TOF G x)ₑ / attₑ (the additive term's scatter part, projection units)."""
    proj = project_forward(
        blurred, start, end, grid, tof, tof_bin if tof is not None else None, kernel=kernel
    )
    return (
        alpha
        * proj.to(torch.float32)
        * (attenuation.to(torch.float32).clamp_min(1e-6) ** (ATTENUATION_EXPONENT - 1.0))
    )


def blurred_estimate(
    activity: torch.Tensor, voxel_size_mm: tuple[float, float, float], fwhm_mm: float
) -> torch.Tensor:
    """G x: the first estimate blurred by a wide Gaussian (the shape of the scatter source)."""
    return gaussian_filter_fwhm(activity, voxel_size_mm, fwhm_mm)
