"""Scatter estimate: single scatter simulation (SSS) scaled on the tails.

The shape of the scatter over LORs is the single scatter simulation of :mod:`recon.tof.single_scatter`,
computed from the μ-map and a first activity estimate (a scatter-free OSEM iteration, masked to the body:
the activity such a first estimate puts outside the body is scatter it could not explain, and inside the body
a scatter-inflated estimate changes the shape little and the scale not at all, since the scale is fitted).
For LOR L (crystals c₁ c₂, TOF bin b) the expected scatter counts are

    s_L,b = α · T · η_L · SSS_L,b

with T the frame duration and η_L = ε₁ε₂ the normalisation (the crystals see scattered photons with their own
efficiency); SSS_L,b is the share of TOF bin b, from the apparent positions of the scattered pairs (TOF-SSS,
Watson 2007: a pair scattered at S appears shifted by half its path difference, not where it was emitted).
The single scale α is fitted on the *tails*: LORs that miss the object's support (μ > 0) dilated by
``tail_margin_mm`` (so that they carry essentially no trues): α = (prompts on tails − randoms on tails − trues
on tails) / (model on tails), clipped at 0.  The sums over tail LORs run over all (or a sample of) the crystal
pairs, as the sensitivity does.  The tail fit absorbs what SSS does not model in absolute terms (multiple
scatter's mean, the detector's absolute efficiency for scattered photons).

Validated against the simulator's own scattered events (Monte-Carlo, single Compton scatter, event truth):
``small`` scanner, torso 170 × 120 mm, 4·10⁵ prompts: the radial profile of the scatter over LORs (5 mm bins of
LOR distance from the axis) agrees within ±7 % from the centre to 100 mm (where 99 % of the scatter lies).

Bound.  When the tails hold few counts (low-count frames, large patients whose arms, table and coils leave
few LORs outside the body), α is noise.  α is therefore bounded by what the whole frame can hold: the expected
scatter over all LORs, α · (model over all LORs), may not exceed ``max_fraction`` of the frame's prompts minus
its expected randoms (trues + scatter).  3D whole-body PET has scatter fractions of 0.3–0.5 (NEMA NU 2: Signa
PET/MR 0.44, Biograph mMR 0.38), large patients up to ≈ 0.6, the default bound.  A bounded fit is reported
(:attr:`TailFit.bounded`) so that the image can be flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from recon.tof.geometry import ImageGrid, ScannerGeometry
from recon.tof.lor_model import crystal_table, geometric_factors, pair_chunks
from recon.tof.projector_common import GridLike, KernelChoice
from recon.tof.projectors import project_forward
from recon.tof.sensitivity import lor_factors
from recon.tof.single_scatter import SingleScatter

#: Relative systematic error of the expected randoms on the tail LORs (the singles-based estimate scaled to the
#: delayeds): measured against the simulator's random prompts on the tails of Ø 96-150 mm cylinders on the
#: ``small`` scanner, −5.4 %, +1.6 %, +3.2 %, each ± 2-4 % Poisson (2026-12-05): ≤ 3 %.
RANDOMS_SYSTEMATIC = 0.03


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
        """Whether the (identifiable) tail estimate exceeded the bound and was replaced by it."""
        return (
            self.identifiable
            and self.fitted_scale is not None
            and self.max_scale is not None
            and self.fitted_scale > self.max_scale
        )

    @property
    def net_scatter_tail(self) -> float:
        """Scatter counts the tails show: prompts minus expected randoms and trues."""
        return self.n_prompts_tail - self.randoms_tail - self.trues_tail

    @property
    def scale_relative_uncertainty(self) -> float:
        """Poisson 1σ of α relative to α: √(tail prompts) / (net scatter on the tails); ``inf`` when the tails
        show no net scatter.  The expected randoms and trues on the tails are taken as exact (the randoms come from
        the frame's delayeds, hundreds of times the tail's counts)."""
        net = self.net_scatter_tail
        return max(self.n_prompts_tail, 1) ** 0.5 / net if net > 0 else float("inf")

    @property
    def identifiable(self) -> bool:
        """Whether the tails show scatter above 3 σ, σ² = their prompts (Poisson) + (``RANDOMS_SYSTEMATIC`` ·
        expected randoms)²; otherwise the fitted scale is noise, a clip at 0 or the randoms estimate's error (tails
        too small, or dominated by randoms, e.g. a large patient with arms, table and coils filling the field of
        view) and no scatter is subtracted (:func:`identified`)."""
        sigma = (max(self.n_prompts_tail, 1) + (RANDOMS_SYSTEMATIC * self.randoms_tail) ** 2) ** 0.5
        return self.net_scatter_tail > 3.0 * sigma


def identified(fit: TailFit) -> TailFit:
    """``fit``, or with scale 0 (no scatter subtracted; ``fitted_scale`` keeps the tail estimate) when it is not
    identifiable or asks for more scatter than the frame can hold (:attr:`TailFit.bounded`).

    Either way the tails hold what the model does not explain (noise, the randoms' error, scatter from activity
    outside the field of view where the μ-map does not reach), and subtracting the bound over-corrects: the
    10⁵-prompt Signa PET-MR torso (tails 94 % randoms) asked for 4× the bound and read −70 %; the 10⁶-prompt
    one (MR μ-map covering only the PET FOV of a 400 mm torso) asked for 3.3× the bound, α 234 where the small
    scanner's cylinders fit 66-78, and read −44 % at the bound (2026-12-05).  The image is flagged instead.
    """
    if fit.identifiable and not fit.bounded:
        return fit
    return replace(fit, scale=0.0, fitted_scale=fit.fitted_scale or fit.scale, scatter_fraction=0.0)


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


@dataclass(frozen=True)
class TailRegion:
    """The tail LORs: they miss the μ-map support dilated by the margin (``inner``, :func:`tail_support`) and
    pass through it dilated by margin + width (``outer``; ``None``: any LOR missing ``inner``).

    Why a band: SSS models single scatter; multiple scatter is broader, so its share of the scatter grows with
    the distance from the object.  Far from it the tails hold relatively more multiple scatter than the LORs
    through the body, and a scale fitted there over-corrects the body (on the ``small`` scanner's Ø 150 mm
    objects, whose only tails lie 15–67 mm outside them, the scatter fraction came out 35 % too high).
    """

    inner: torch.Tensor
    outer: torch.Tensor | None

    @classmethod
    def of(
        cls,
        mu_per_mm: torch.Tensor,
        voxel_size_mm: tuple[float, float, float],
        margin_mm: float,
        width_mm: float,
    ) -> TailRegion:
        inner = tail_support(mu_per_mm, voxel_size_mm, margin_mm)
        outer = tail_support(mu_per_mm, voxel_size_mm, margin_mm + width_mm) if width_mm > 0 else None
        return cls(inner, outer)

    def contains(
        self, start: torch.Tensor, end: torch.Tensor, grid: GridLike, kernel: KernelChoice | str = "auto"
    ) -> torch.Tensor:
        """True for the LORs (start, end) in the tail region."""
        tail = misses_support(self.inner, start, end, grid, kernel)
        if self.outer is not None:
            tail &= ~misses_support(self.outer, start, end, grid, kernel)
        return tail


def fit_scatter_scale(
    scanner: ScannerGeometry,
    grid: GridLike,
    activity: torch.Tensor,
    sss: SingleScatter,
    mu_per_mm: torch.Tensor,
    efficiencies: torch.Tensor | None,
    randoms_factors: np.ndarray,
    n_prompts_tail: int,
    tails: TailRegion,
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
        activity: first estimate x (z, y, x), Bq/mm³, masked to the body (its trues on the tails).
        sss: the single scatter simulation of that estimate.
        randoms_factors: per-crystal sᵢ of :func:`recon.tof.randoms.crystal_randoms_factors`.
        n_prompts_tail: prompts whose LOR lies in ``tails``.
        tails: the tail LORs.
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
        model = frame_duration_s * f.normalisation * sss.for_crystal_pairs(scanner, c1, c2).to(device)
        if n_prompts_total is not None:
            model_all += float(model.sum())
            randoms_all += float((s[c1] * s[c2]).sum())
        tail = tails.contains(table[c1], table[c2], grid, kernel)
        if not bool(tail.any()):
            continue
        c1, c2 = c1[tail], c2[tail]
        start, end = table[c1], table[c2]
        trues = project_forward(activity, start, end, grid, kernel=kernel)
        trues_t += float((f.multiplicative(frame_duration_s)[tail] * trues).sum())
        model_t += float(model[tail].sum())
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
    sss: SingleScatter,
    scanner: ScannerGeometry,
    crystal_id_1: torch.Tensor,
    crystal_id_2: torch.Tensor,
    table: torch.Tensor,
    attenuation: torch.Tensor,
    alpha: float,
    tof_bin: torch.Tensor | None,
) -> torch.Tensor:
    """sₑ/mₑ of each prompt = α·SSSₑ / (gₑ·attₑ) (the additive term's scatter part, projection units).

    ``table`` is :func:`recon.tof.lor_model.crystal_table`, ``attenuation`` the prompts' attₑ; with ``tof_bin``
    SSSₑ is the event's TOF bin's share (``sss`` computed with the reconstruction's TOF kernel), without it the
    whole LOR's.
    """
    start, end = table[crystal_id_1.long()], table[crystal_id_2.long()]
    if tof_bin is None:
        shape = sss.for_crystal_pairs(scanner, crystal_id_1, crystal_id_2)
    else:
        shape = sss.for_events(scanner, crystal_id_1, crystal_id_2, tof_bin)
    geometric = geometric_factors(scanner, start, end)
    denominator = geometric * attenuation.to(torch.float64).clamp_min(1e-6)
    return (alpha * shape.to(start.device) / denominator).to(torch.float32)


def axially_extended(grid: ImageGrid, extension_mm: float) -> tuple[ImageGrid, int]:
    """``grid`` with ``n`` = round(``extension_mm`` / Δz) more planes on each axial end, and ``n``."""
    n = max(0, round(extension_mm / grid.voxel_size_mm[0]))
    shape = (grid.shape_zyx[0] + 2 * n, grid.shape_zyx[1], grid.shape_zyx[2])
    origin = (grid.origin_mm[0] - n * grid.voxel_size_mm[0], grid.origin_mm[1], grid.origin_mm[2])
    return ImageGrid(shape, grid.voxel_size_mm, origin), n


def scatter_source(
    estimate: torch.Tensor,
    mu_per_mm: torch.Tensor,
    extended_mu_per_mm: torch.Tensor | None,
    grid: ImageGrid,
    extension_mm: float,
    end_mm: float = 10.0,
) -> tuple[torch.Tensor, torch.Tensor, ImageGrid]:
    """(activity, μ, grid) on which the scatter is simulated: the first estimate masked to the body, axially
    extended beyond the PET field of view where the μ-map shows matter.

    Activity outside the axial FOV scatters into it (a patient always continues beyond it; the Ø 96 × 96 mm
    calibration cylinder of the ``small`` scanner holds 30 % of its activity outside its 67 mm FOV, and SSS
    without it put 17 % too little scatter into the LORs through the body).  Outside the FOV the activity is
    taken as the mean of the estimate's last ``end_mm`` on that end (its edge planes alone are noisy), where
    ``extended_mu_per_mm`` (the μ-map on :func:`axially_extended` of ``grid``) has matter; without it nothing
    outside the FOV is modelled.
    """
    masked = body_masked(estimate, mu_per_mm, grid.voxel_size_mm)
    if extended_mu_per_mm is None or extension_mm <= 0:
        return masked, mu_per_mm, grid
    extended, n = axially_extended(grid, extension_mm)
    if tuple(extended_mu_per_mm.shape) != extended.shape_zyx:
        raise ValueError(
            f"extended μ-map {tuple(extended_mu_per_mm.shape)} does not match {extended.shape_zyx}"
        )
    mu_ext = extended_mu_per_mm.to(masked)
    support = tail_support(mu_ext, grid.voxel_size_mm, max(grid.voxel_size_mm))
    n_end = max(1, min(masked.shape[0], round(end_mm / grid.voxel_size_mm[0])))
    activity = torch.zeros(extended.shape_zyx, dtype=masked.dtype, device=masked.device)
    activity[n : n + masked.shape[0]] = masked
    activity[:n] = masked[:n_end].mean(dim=0) * support[:n]
    activity[n + masked.shape[0] :] = masked[-n_end:].mean(dim=0) * support[n + masked.shape[0] :]
    return activity, mu_ext, extended


def body_masked(
    activity: torch.Tensor, mu_per_mm: torch.Tensor, voxel_size_mm: tuple[float, float, float]
) -> torch.Tensor:
    """The first estimate inside the μ-map support dilated by one voxel (zero outside: no activity in air)."""
    return activity * tail_support(mu_per_mm, voxel_size_mm, max(voxel_size_mm))
