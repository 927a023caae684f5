"""Reconstruct one frame of list-mode data: corrections, sensitivity, OSEM, post-filter, quantitation.

Only what a scanner provides is used: the prompts and delayeds, the acquisition info (frame timing, dose,
weight, crystal efficiencies of a calibration scan, singles rates) and a μ-map on the image grid (from
MR-based attenuation correction or, in tests, the phantom's μ-map).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from recon.tof.filters import gaussian_filter_fwhm
from recon.tof.geometry import ImageGrid, ScannerGeometry
from recon.tof.listmode import ListModeBatch, PETAcquisitionInfo
from recon.tof.lor_model import crystal_table
from recon.tof.osem import ListModeEvents, OSEMSettings, OSEMState, list_mode_osem
from recon.tof.quantitation import activity_bq_per_ml, suv_body_weight
from recon.tof.randoms import crystal_randoms_factors, tof_bin_randoms_fraction
from recon.tof.scatter import (
    TailFit,
    TailRegion,
    body_masked,
    fit_scatter_scale,
    identified,
    scatter_over_multiplicative,
    scatter_source,
)
from recon.tof.sensitivity import lor_factors, sensitivity_image
from recon.tof.single_scatter import single_scatter
from recon.tof.tof_kernel import TOFParameters

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconstructionParameters:
    """Everything a physicist tunes for one frame (validated by the plugin's config model).

    Attributes:
        n_iterations, n_subsets: OSEM iterations and subsets per iteration.
        use_tof: use the TOF information (False = non-TOF reconstruction of the same data).
        post_filter_fwhm_mm: isotropic Gaussian post-filter, mm (0 = none).
        chunk_size: events (or LORs) per kernel call.
        kernel: projector kernel ``auto | torch | numba | cuda``.
        fov_radius_fraction: transaxial FOV radius as a fraction of the ring radius (LORs kept by the scanner).
        max_sensitivity_pairs: crystal pairs sampled for the sensitivity's attenuation/normalisation ratio and the
            scatter tail sums (all pairs when there are fewer; see :mod:`recon.tof.sensitivity`).
        scatter: estimate scatter (single scatter simulation scaled on the tails; needs a μ-map).
        scatter_tail_margin_mm, scatter_tail_width_mm: the tails are the LORs that miss the μ-map support dilated
            by the margin and pass through it dilated by margin + width (mm; width 0: every LOR beyond the margin);
            see :class:`recon.tof.scatter.TailRegion`.
        scatter_initial_iterations: OSEM iterations of each estimate the scatter is simulated from.
        scatter_passes: scatter estimates, each from an image corrected with the previous one (the first from a
            scatter-free image, which holds the scatter as activity: its SSS over-estimated the scatter fraction
            of a Ø 150 mm cylinder by a further 10 %).
        scatter_axial_extension_mm: how far beyond each end of the axial FOV the scatter simulation reaches
            (where the μ-map does), mm (see :func:`recon.tof.scatter.scatter_source`).
        scatter_max_fraction: bound on the tail-fitted scatter: at most this fraction (0..1) of the frame's
            prompts minus randoms (see :mod:`recon.tof.scatter`).
        min_subset_prompts_per_voxel: fewer subsets than ``n_subsets`` when a subset would hold fewer prompts
            than this × the image voxels (0 = never), with as many more iterations (same subset updates).
            A list-mode subset update multiplies every voxel by its back projection of that subset's events,
            so a voxel that none of them passes is zeroed for good: at 10⁵ prompts, 17 subsets and 2.78 mm
            voxels (4.2 M) the image collapsed to 6 MBq of ≈ 45.
        calibration_factor: scanner cross-calibration factor applied to the activity.
        seed: seed of the LOR sampling.
    """

    n_iterations: int = 3
    n_subsets: int = 17
    use_tof: bool = True
    post_filter_fwhm_mm: float = 0.0
    chunk_size: int = 1 << 20
    kernel: str = "auto"
    fov_radius_fraction: float = 0.95
    max_sensitivity_pairs: int = 1_000_000
    scatter: bool = True
    scatter_tail_margin_mm: float = 8.0
    scatter_tail_width_mm: float = 20.0
    scatter_initial_iterations: int = 1
    scatter_passes: int = 2
    scatter_max_fraction: float = 0.6
    scatter_axial_extension_mm: float = 100.0
    min_subset_prompts_per_voxel: float = 0.05
    calibration_factor: float = 1.0
    seed: int = 0

    def subsets_for(self, n_prompts: int, n_voxels: int) -> int:
        """The subsets used for ``n_prompts`` on ``n_voxels``: ``n_subsets``, fewer at low counts (see above)."""
        if self.min_subset_prompts_per_voxel <= 0:
            return self.n_subsets
        fitting = int(n_prompts / (self.min_subset_prompts_per_voxel * max(n_voxels, 1)))
        return max(1, min(self.n_subsets, fitting))

    def osem_settings(self, n_iterations: int | None = None, n_subsets: int | None = None) -> OSEMSettings:
        """OSEM settings; with ``n_subsets`` below ``self.n_subsets`` the iterations grow so that the number
        of subset updates (the convergence, and the work: each update reads 1/n of the events) stays the same."""
        iterations = n_iterations or self.n_iterations
        subsets = n_subsets or self.n_subsets
        if subsets < self.n_subsets:
            iterations = math.ceil(iterations * self.n_subsets / subsets)
        return OSEMSettings(
            n_iterations=iterations,
            n_subsets=subsets,
            chunk_size=self.chunk_size,
            kernel=self.kernel,
        )


@dataclass(frozen=True)
class ReconstructionResult:
    """A reconstructed frame.

    Attributes:
        activity_bq_per_ml: (z, y, x) float32 activity concentration at the frame start, Bq/ml (post-filtered).
        suv: (z, y, x) float32 SUV(bw), or ``None`` when the dose is unknown.
        state: the OSEM state (unfiltered image in Bq/mm³), to resume.
        tail_fit: the scatter tail fit, or ``None`` without scatter estimation.
        n_prompts, n_delayeds: event counts of the frame.
        n_subsets: OSEM subsets used (``ReconstructionParameters.subsets_for``; 0 = not recorded).
        sensitivity_s: wall time of the sensitivity image, s (a cached geometric part is read, not computed).
    """

    activity_bq_per_ml: torch.Tensor
    suv: torch.Tensor | None
    state: OSEMState
    tail_fit: TailFit | None
    n_prompts: int
    n_delayeds: int
    n_subsets: int = 0
    sensitivity_s: float = 0.0


def _prompt_terms(
    scanner: ScannerGeometry,
    grid: ImageGrid,
    c1: torch.Tensor,
    c2: torch.Tensor,
    bins: torch.Tensor,
    mu: torch.Tensor | None,
    eff: torch.Tensor | None,
    s: np.ndarray,
    duration_s: float,
    params: ReconstructionParameters,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(attenuation, randoms/m) of every prompt, computed chunk by chunk."""
    att, additive = [], []
    s_t = torch.from_numpy(s).to(c1.device)
    for lo in range(0, c1.numel(), params.chunk_size):
        a, b, tb = (
            c1[lo : lo + params.chunk_size],
            c2[lo : lo + params.chunk_size],
            bins[lo : lo + params.chunk_size],
        )
        f = lor_factors(scanner, grid, a, b, mu, eff, params.kernel)
        fraction = (
            tof_bin_randoms_fraction(scanner, tb.cpu().numpy()) if params.use_tof else np.ones(a.numel())
        )
        randoms = s_t[a.long()] * s_t[b.long()] * torch.from_numpy(fraction).to(s_t)
        att.append(f.attenuation.to(torch.float32))  # float32: bounded memory for 10⁸ events
        additive.append((randoms / f.multiplicative(duration_s).clamp_min(1e-30)).to(torch.float32))
    return torch.cat(att), torch.cat(additive)


@dataclass(frozen=True)
class PreparedFrame:
    """A frame ready for OSEM: events with their additive terms, the sensitivity and the TOF kernel.

    Attributes:
        events: prompts with bₑ = (randoms + scatter)ₑ/mₑ.
        sensitivity: S (z, y, x) float32.
        tof: the TOF kernel, ``None`` for a non-TOF reconstruction.
        tail_fit: the scatter tail fit, or ``None``.
        n_prompts, n_delayeds: event counts.
        sensitivity_s: wall time of :func:`recon.tof.sensitivity.sensitivity_image`, s.
    """

    events: ListModeEvents
    sensitivity: torch.Tensor
    tof: TOFParameters | None
    tail_fit: TailFit | None
    n_prompts: int
    n_delayeds: int
    sensitivity_s: float = 0.0


def _scatter_terms(
    scanner: ScannerGeometry,
    grid: ImageGrid,
    events: ListModeEvents,
    sens: torch.Tensor,
    tof: TOFParameters | None,
    mu: torch.Tensor,
    eff: torch.Tensor | None,
    s: np.ndarray,
    att: torch.Tensor,
    duration: float,
    params: ReconstructionParameters,
    rng: np.random.Generator,
    extended_mu: torch.Tensor | None,
) -> tuple[torch.Tensor, TailFit]:
    """sₑ/mₑ of every prompt from a first OSEM estimate and the tail fit (``extended_mu``: 1/mm, see
    :func:`recon.tof.scatter.scatter_source`)."""
    fov_mm = params.fov_radius_fraction * scanner.ring_radius_mm
    subsets = params.subsets_for(int(events.crystal_id_1.numel()), grid.n_voxels)
    tails = TailRegion.of(mu, grid.voxel_size_mm, params.scatter_tail_margin_mm, params.scatter_tail_width_mm)
    table, c1, c2, bins, step = (
        events.crystal_table,
        events.crystal_id_1,
        events.crystal_id_2,
        events.tof_bin,
        params.chunk_size,
    )
    n_tail = sum(
        int(
            tails.contains(
                table[c1[lo : lo + step].long()], table[c2[lo : lo + step].long()], grid, params.kernel
            ).sum()
        )
        for lo in range(0, c1.numel(), step)
    )
    scatter = torch.zeros_like(events.additive)
    tail_fit = None
    for scatter_pass in range(params.scatter_passes):
        with_scatter = replace(events, additive=events.additive + scatter)
        first = list_mode_osem(
            with_scatter, sens, grid, tof, params.osem_settings(params.scatter_initial_iterations, subsets)
        )
        source, source_mu, source_grid = scatter_source(
            first.image, mu, extended_mu, grid, params.scatter_axial_extension_mm
        )
        sss = single_scatter(scanner, source_grid, source_mu, source, tof)
        tail_fit = fit_scatter_scale(
            scanner,
            grid,
            body_masked(first.image, mu, grid.voxel_size_mm),
            sss,
            mu,
            eff,
            s,
            n_tail,
            tails,
            duration,
            fov_mm,
            params.max_sensitivity_pairs,
            rng,
            params.kernel,
            params.chunk_size,
            n_prompts_total=int(c1.numel()),
            max_fraction=params.scatter_max_fraction,
        )
        tail_fit = identified(tail_fit)
        log.info("scatter pass %d, tail fit: %s", scatter_pass + 1, tail_fit)
        if tail_fit.scale <= 0.0:  # nothing subtracted: a further pass would start from the same image
            scatter = torch.zeros_like(events.additive)
            break
        scatter = torch.cat(
            [
                scatter_over_multiplicative(
                    sss,
                    scanner,
                    c1[lo : lo + step],
                    c2[lo : lo + step],
                    table,
                    att[lo : lo + step],
                    tail_fit.scale,
                    None if tof is None else bins[lo : lo + step],
                )
                for lo in range(0, c1.numel(), step)
            ]
        )
    assert tail_fit is not None
    return scatter, tail_fit


def prepare_frame(
    batch: ListModeBatch,
    info: PETAcquisitionInfo,
    scanner: ScannerGeometry,
    grid: ImageGrid,
    mu_per_cm: torch.Tensor | None,
    params: ReconstructionParameters,
    device: torch.device | str = "cpu",
    scatter_mu_per_cm: torch.Tensor | None = None,
) -> PreparedFrame:
    """Corrections and sensitivity of the frame in ``batch`` (prompts and delayeds of one frame).

    ``scatter_mu_per_cm``: the μ-map (1/cm) on :func:`recon.tof.scatter.axially_extended` of ``grid`` by
    ``params.scatter_axial_extension_mm``, when the μ-map reaches beyond the PET field of view (the scatter of
    the activity there is then modelled); ``None``: scatter from inside the field of view only.
    """
    device = torch.device(device)
    rng = np.random.default_rng(params.seed)
    fov_mm = params.fov_radius_fraction * scanner.ring_radius_mm
    tof = TOFParameters.from_scanner(scanner) if params.use_tof else None
    prompt = batch.is_prompt
    if not prompt.any():
        raise ValueError(f"frame {batch.frame_index} has no prompt events to reconstruct")
    c1 = torch.from_numpy(batch.crystal_id_1[prompt]).to(device)
    c2 = torch.from_numpy(batch.crystal_id_2[prompt]).to(device)
    bins = torch.from_numpy(batch.tof_bin[prompt]).to(device)
    mu = None if mu_per_cm is None else (mu_per_cm.to(device=device, dtype=torch.float32) / 10.0)
    eff = (
        None if info.crystal_efficiencies is None else torch.from_numpy(info.crystal_efficiencies).to(device)
    )
    s = crystal_randoms_factors(
        scanner,
        fov_mm,
        batch.n_delayeds,
        batch.crystal_id_1[~prompt],
        batch.crystal_id_2[~prompt],
        info.singles_rate_per_crystal_cps,
        info.frame_duration_s,
    )
    duration = info.frame_duration_s
    sensitivity_start = time.perf_counter()
    sens = sensitivity_image(
        scanner,
        grid,
        duration,
        mu,
        eff,
        fov_mm,
        params.max_sensitivity_pairs,
        rng,
        params.chunk_size,
        params.kernel,
        device,
    )
    sensitivity_s = time.perf_counter() - sensitivity_start
    att, additive = _prompt_terms(scanner, grid, c1, c2, bins, mu, eff, s, duration, params)
    events = ListModeEvents(c1, c2, bins, additive.to(torch.float32), crystal_table(scanner, device))
    tail_fit = None
    if params.scatter and mu is not None:
        extended = None
        if scatter_mu_per_cm is not None:
            extended = scatter_mu_per_cm.to(device=device, dtype=torch.float32) / 10.0
        scatter, tail_fit = _scatter_terms(
            scanner, grid, events, sens, tof, mu, eff, s, att, duration, params, rng, extended
        )
        events = replace(events, additive=(additive + scatter.to(additive)).to(torch.float32))
    return PreparedFrame(events, sens, tof, tail_fit, int(prompt.sum()), batch.n_delayeds, sensitivity_s)


def finish_image(
    state: OSEMState, grid: ImageGrid, info: PETAcquisitionInfo, params: ReconstructionParameters
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Post-filter and quantify an OSEM image: (Bq/ml at the frame start, SUV or ``None``)."""
    filtered = gaussian_filter_fwhm(state.image, grid.voxel_size_mm, params.post_filter_fwhm_mm)
    concentration = activity_bq_per_ml(filtered, info, params.calibration_factor)
    suv = suv_body_weight(concentration, info) if info.injected_dose_bq > 0 else None
    return concentration, suv


def reconstruct_frame(
    batch: ListModeBatch,
    info: PETAcquisitionInfo,
    scanner: ScannerGeometry,
    grid: ImageGrid,
    mu_per_cm: torch.Tensor | None,
    params: ReconstructionParameters,
    device: torch.device | str = "cpu",
    scatter_mu_per_cm: torch.Tensor | None = None,
) -> ReconstructionResult:
    """Reconstruct the frame held in ``batch``: :func:`prepare_frame`, OSEM, :func:`finish_image`."""
    prepared = prepare_frame(batch, info, scanner, grid, mu_per_cm, params, device, scatter_mu_per_cm)
    subsets = params.subsets_for(prepared.n_prompts, grid.n_voxels)
    if subsets < params.n_subsets:
        log.info("%d prompts on %d voxels: %d OSEM subsets instead of %d", prepared.n_prompts, grid.n_voxels,
                 subsets, params.n_subsets)  # fmt: skip
    settings = params.osem_settings(n_subsets=subsets)
    state = list_mode_osem(prepared.events, prepared.sensitivity, grid, prepared.tof, settings)
    concentration, suv = finish_image(state, grid, info, params)
    return ReconstructionResult(
        concentration, suv, state, prepared.tail_fit, prepared.n_prompts, prepared.n_delayeds, subsets,
        prepared.sensitivity_s,
    )  # fmt: skip
