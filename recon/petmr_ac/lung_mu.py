"""Patient-specific lung attenuation coefficient from the TOF PET emission data (MLAA restricted to one scalar).

The Dixon μ-map carries one constant μ for the lung class, while real lungs range over ≈ 0.02–0.04 /cm
with inflation and density.  With TOF, the emission data determine the attenuation up to little more than a
constant (Defrise et al. 2012); restricting the unknown to the single lung coefficient c (1/cm) makes the
joint estimate well posed (Mehranian & Zaidi, "Emission-based estimation of lung attenuation coefficients for
attenuation correction in time-of-flight PET/MR", Phys Med Biol 2015):

    μ(c) = μ_rest + c · L,

with L the lung-class fraction on the PET grid (boundary-smoothed like the μ-map) and μ_rest the μ-map without
the lung class.  With att_i(c) = att_i^rest·exp(−c ℓ_i), ℓ_i = ∫L dl along LOR i (cm), t_e the expected trues of
prompt e (its TOF bin), r_e its expected randoms + scatter, and T_i the expected trues of LOR i summed over TOF
bins (all LORs of the FOV, sampled as the sensitivity is), the Poisson log-likelihood and its derivatives in c
at fixed activity x are

    LL(c) = Σ_e log(t_e(c) + r_e) − Σ_i T_i(c) + const,       t(c), T(c) ∝ exp(−c ℓ),
    g = ∂LL/∂c   = −Σ_e ℓ_e t_e/(t_e + r_e) + Σ_i ℓ_i T_i,
    h = ∂²LL/∂c² = Σ_e ℓ_e² t_e r_e/(t_e + r_e)² − Σ_i ℓ_i² T_i.

Alternating OSEM with Newton steps c − g/h converges slowly: the activity in and behind the lungs compensates a
wrong c, so the fixed-x curvature h is several times (≈ 5× on the test cylinder) the curvature of the profile
likelihood max_x LL(x, c).  By the envelope theorem the profile's derivative at c is g evaluated at the activity
x(c) reconstructed with μ(c), so the estimate solves g(x(c), c) = 0 instead: each trial c gets its own OSEM
reconstruction (``LungMuSettings.n_iterations`` from the uniform start, so that g is a function of c alone), the
first step is a Newton step with h (short but safe) and the next ones are secant steps on g, bracketed once g
changes sign (:func:`next_trial`).  g is close to linear in c, so 3–4 reconstructions suffice.  The envelope
argument holds for a converged x; with few OSEM iterations the root is biased low (see ``n_iterations``).

Only t_e/(t_e + r_e) = p_e/(p_e + b_e) enters the event sums (p_e = (A_TOF x)_e, b_e the event's additive term
of :class:`recon.tof.osem.ListModeEvents`), so they need no multiplicative factors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import torch

from recon.tof.geometry import ImageGrid, ScannerGeometry
from recon.tof.listmode import ListModeBatch, PETAcquisitionInfo
from recon.tof.lor_model import pair_chunks
from recon.tof.osem import OSEMState, list_mode_osem
from recon.tof.projectors import project_forward
from recon.tof.reconstruct import PreparedFrame, ReconstructionParameters, prepare_frame
from recon.tof.sensitivity import lor_factors

log = logging.getLogger(__name__)

MM_PER_CM = 10.0


@dataclass(frozen=True)
class LungMuSettings:
    """Parameters of the lung-coefficient estimate.

    Attributes:
        initial_lung_mu_per_cm: starting c, 1/cm (the class default).
        min_lung_mu_per_cm, max_lung_mu_per_cm: bounds of c, 1/cm (physiological range with margin).
        n_iterations: OSEM iterations of each trial reconstruction (≥ 1; the subsets are the frame's).  The
            envelope argument needs a converged activity: on the PET-MR torso (200 k prompts, 8 subsets) 2, 4 and 8
            iterations gave 0.0280, 0.0299 and 0.0307 /cm for lungs of mean μ 0.0310 /cm.
        max_evaluations: reconstructions (one per trial c) at most (≥ 2).
        tolerance_per_cm: stop when a step changes c by less than this, 1/cm (> 0).
    """

    initial_lung_mu_per_cm: float = 0.018
    min_lung_mu_per_cm: float = 0.005
    max_lung_mu_per_cm: float = 0.06
    n_iterations: int = 4
    max_evaluations: int = 5
    tolerance_per_cm: float = 3e-4

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_lung_mu_per_cm < self.max_lung_mu_per_cm <= 0.5:
            raise ValueError("need 0 ≤ min_lung_mu_per_cm < max_lung_mu_per_cm ≤ 0.5 /cm")
        if not self.min_lung_mu_per_cm <= self.initial_lung_mu_per_cm <= self.max_lung_mu_per_cm:
            raise ValueError("initial_lung_mu_per_cm must lie within the bounds")
        if self.n_iterations < 1 or self.max_evaluations < 2 or self.tolerance_per_cm <= 0:
            raise ValueError("need n_iterations ≥ 1, max_evaluations ≥ 2 and tolerance_per_cm > 0")


@dataclass(frozen=True)
class LikelihoodTerms:
    """What the scalar likelihood needs, at the current c (all float64 numpy arrays).

    Attributes:
        event_lung_cm: (n_events,) ℓ_e, cm.
        event_trues: (n_events,) p_e = (A_TOF x)_e, projection units.
        event_additive: (n_events,) b_e = (randoms + scatter)_e / m_e, same units as ``event_trues``.
        lor_lung_cm: (n_lors,) ℓ_i of the (sampled) LORs, cm.
        lor_trues: (n_lors,) T_i, expected trues of each sampled LOR (counts, all TOF bins).
        lor_scale: (all LORs)/(sampled LORs), turning sums over the sample into sums over all LORs.
    """

    event_lung_cm: np.ndarray
    event_trues: np.ndarray
    event_additive: np.ndarray
    lor_lung_cm: np.ndarray
    lor_trues: np.ndarray
    lor_scale: float

    def log_likelihood_change(self, delta_per_cm: float) -> float:
        """LL(c + δ) − LL(c) up to a δ-independent constant: Σ_e log(p e^{−δℓ} + b) − Σ_i T_i e^{−δℓ_i}."""
        p, b, le = self.event_trues, self.event_additive, self.event_lung_cm
        events = float(np.sum(np.log(p * np.exp(-delta_per_cm * le) + b)))
        lors = self.lor_scale * float(np.sum(self.lor_trues * np.exp(-delta_per_cm * self.lor_lung_cm)))
        return events - lors

    def derivatives(self) -> tuple[float, float]:
        """(g, h): first and second derivative of LL with respect to c, per cm and per cm²."""
        p, b, le = self.event_trues, self.event_additive, self.event_lung_cm
        total = p + b
        held = total > 0  # an event with neither trues nor randoms expected carries no information on c
        trues_fraction = np.divide(p, total, out=np.zeros_like(total), where=held)
        li, ti = self.lor_lung_cm, self.lor_trues
        g = -float(np.sum(le * trues_fraction)) + self.lor_scale * float(np.sum(li * ti))
        h = float(np.sum(le**2 * trues_fraction * (1.0 - trues_fraction))) - self.lor_scale * float(
            np.sum(li**2 * ti)
        )
        return g, h


@dataclass(frozen=True)
class LungMuEstimate:
    """Outcome of :func:`estimate_lung_mu`.

    Attributes:
        lung_mu_per_cm: the estimated c, 1/cm.
        trials_per_cm: every c reconstructed, in order (the initial value first).
        gradients: profile gradient g at each trial, per cm.
        state: the OSEM state of the last trial.
    """

    lung_mu_per_cm: float
    trials_per_cm: tuple[float, ...]
    gradients: tuple[float, ...]
    state: OSEMState


def next_trial(
    trials_per_cm: list[float], gradients: list[float], curvature: float, settings: LungMuSettings
) -> float:
    """The next c: a secant step on the profile gradient once two trials exist, else a Newton step with the
    fixed-activity curvature ``curvature`` (per cm², which overstates the profile curvature, so that first step
    is short but safe).  A step outside the bracket of a sign change of g bisects the bracket instead; a
    non-decreasing secant or a non-negative curvature moves to the bound g points to; all within the bounds."""
    c, g = trials_per_cm[-1], gradients[-1]
    lo, hi = settings.min_lung_mu_per_cm, settings.max_lung_mu_per_cm
    below = [t for t, d in zip(trials_per_cm, gradients, strict=True) if d > 0]  # LL increases: root above
    above = [t for t, d in zip(trials_per_cm, gradients, strict=True) if d < 0]
    lo_bracket, hi_bracket = max(below, default=lo), min(above, default=hi)
    slope = curvature
    if len(trials_per_cm) >= 2 and trials_per_cm[-1] != trials_per_cm[-2]:
        slope = (g - gradients[-2]) / (c - trials_per_cm[-2])
    candidate = c - g / slope if slope < 0 else (hi if g > 0 else lo)
    if below and above and not lo_bracket < candidate < hi_bracket:
        candidate = 0.5 * (lo_bracket + hi_bracket)
    return float(np.clip(candidate, lo, hi))


def likelihood_terms(
    prepared: PreparedFrame,
    image: torch.Tensor,
    lung_fraction: torch.Tensor,
    mu_per_cm: torch.Tensor,
    scanner: ScannerGeometry,
    grid: ImageGrid,
    efficiencies: torch.Tensor | None,
    frame_duration_s: float,
    params: ReconstructionParameters,
) -> LikelihoodTerms:
    """Event and all-LOR terms of the likelihood for activity ``image`` (Bq/mm³) and μ-map ``mu_per_cm``.

    ``lung_fraction`` (z, y, x) is L; the LOR sample is that of the sensitivity (same seed and count)."""
    events, step = prepared.events, params.chunk_size
    table = events.crystal_table
    device = image.device
    lung = lung_fraction.to(device=device, dtype=torch.float32)
    ev_lung, ev_trues = [], []
    for lo in range(0, events.n_events, step):
        start = table[events.crystal_id_1[lo : lo + step].long()]
        end = table[events.crystal_id_2[lo : lo + step].long()]
        bins = events.tof_bin[lo : lo + step] if prepared.tof is not None else None
        ev_lung.append(project_forward(lung, start, end, grid, kernel=params.kernel).double() / MM_PER_CM)
        ev_trues.append(
            project_forward(image, start, end, grid, prepared.tof, bins, kernel=params.kernel).double()
        )
    rng = np.random.default_rng(params.seed)
    fov_mm = params.fov_radius_fraction * scanner.ring_radius_mm
    scale, chunks = pair_chunks(scanner, fov_mm, params.max_sensitivity_pairs, step, rng)
    mu_per_mm = mu_per_cm.to(device=device, dtype=torch.float32) / MM_PER_CM
    lor_lung, lor_trues = [], []
    for c1_np, c2_np in chunks:
        c1, c2 = torch.from_numpy(c1_np).to(device), torch.from_numpy(c2_np).to(device)
        start, end = table[c1.long()], table[c2.long()]
        factors = lor_factors(scanner, grid, c1, c2, mu_per_mm, efficiencies, params.kernel)
        projection = project_forward(image, start, end, grid, kernel=params.kernel).double()
        lor_trues.append(factors.multiplicative(frame_duration_s) * projection)
        lor_lung.append(project_forward(lung, start, end, grid, kernel=params.kernel).double() / MM_PER_CM)
    return LikelihoodTerms(
        event_lung_cm=torch.cat(ev_lung).cpu().numpy(),
        event_trues=torch.cat(ev_trues).cpu().numpy(),
        event_additive=events.additive.double().cpu().numpy(),
        lor_lung_cm=torch.cat(lor_lung).cpu().numpy(),
        lor_trues=torch.cat(lor_trues).cpu().numpy(),
        lor_scale=float(scale),
    )


def estimate_lung_mu(
    batch: ListModeBatch,
    info: PETAcquisitionInfo,
    scanner: ScannerGeometry,
    grid: ImageGrid,
    mu_rest_per_cm: torch.Tensor,
    lung_fraction: torch.Tensor,
    params: ReconstructionParameters,
    settings: LungMuSettings | None = None,
    device: torch.device | str = "cpu",
) -> LungMuEstimate:
    """Estimate the lung coefficient c of μ = μ_rest + c·L from one frame (see the module docstring).

    Args:
        batch, info, scanner, grid, params, device: as for :func:`recon.tof.reconstruct.reconstruct_frame`
            (``params.use_tof`` should be True: without TOF the coefficient is poorly determined).
        mu_rest_per_cm: (z, y, x) μ-map without the lung class, 1/cm.
        lung_fraction: (z, y, x) L in [0, 1], the boundary-smoothed lung class on the same grid.
    """
    settings = settings or LungMuSettings()
    if tuple(mu_rest_per_cm.shape) != grid.shape_zyx or tuple(lung_fraction.shape) != grid.shape_zyx:
        raise ValueError(
            f"mu_rest_per_cm {tuple(mu_rest_per_cm.shape)} and lung_fraction {tuple(lung_fraction.shape)} "
            f"must have the grid shape {grid.shape_zyx}"
        )
    eff = (
        None
        if info.crystal_efficiencies is None
        else torch.from_numpy(info.crystal_efficiencies).to(torch.device(device))
    )
    subsets = params.subsets_for(int(batch.is_prompt.sum()), grid.n_voxels)  # fewer at low counts
    osem = params.osem_settings(settings.n_iterations, subsets)
    trials = [settings.initial_lung_mu_per_cm]
    gradients: list[float] = []
    while True:
        c = trials[-1]
        mu = mu_rest_per_cm.to(torch.float32) + c * lung_fraction.to(torch.float32)
        prepared = prepare_frame(batch, info, scanner, grid, mu, params, device)
        label = f"lung μ trial {len(trials)} ({c:.4f} /cm)"  # progress on a terminal: trials take minutes
        state = list_mode_osem(
            prepared.events, prepared.sensitivity, grid, prepared.tof, replace(osem, progress_label=label)
        )
        terms = likelihood_terms(
            prepared, state.image, lung_fraction, mu, scanner, grid, eff, info.frame_duration_s, params
        )
        g, h = terms.derivatives()
        gradients.append(g)
        following = next_trial(trials, gradients, h, settings)
        log.info("lung μ trial %.5f /cm: g %.4g, h %.4g → next %.5f /cm", c, g, h, following)
        if abs(following - c) < settings.tolerance_per_cm or len(trials) == settings.max_evaluations:
            return LungMuEstimate(following, tuple(trials), tuple(gradients), state)
        trials.append(following)
