"""OSEM building blocks: fused EM step, OSEM state/resume, randoms, sensitivity sampling, filters, quantitation.

Tolerances fixed before running: fused vs separate EM step 1e-10 (float64); randoms fractions sum to 1 to
1e-12; fan-sum fit recovers singles to 1 % (noise-free delayeds of 10⁶ counts); sampled sensitivity within
5 % (median voxel) of the full enumeration; resumed OSEM equals an uninterrupted run to 1e-6; SUV and decay
factors to 1e-12 against closed forms.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from recon.tof.em_step import em_backprojection
from recon.tof.filters import gaussian_filter_fwhm
from recon.tof.geometry import ImageGrid, small_test_scanner
from recon.tof.listmode import PETAcquisitionInfo
from recon.tof.lor_model import crystal_table, geometric_factors, n_pairs, pair_chunks
from recon.tof.osem import ListModeEvents, OSEMSettings, OSEMState, list_mode_osem
from recon.tof.projectors import project_back, project_forward
from recon.tof.quantitation import activity_bq_per_ml, frame_average_to_start_factor, suv_body_weight
from recon.tof.randoms import (
    fan_sums,
    singles_from_delayeds,
    tof_bin_randoms_fraction,
    total_over_fov_pairs,
)
from recon.tof.reconstruct import ReconstructionParameters, reconstruct_frame
from recon.tof.sensitivity import sensitivity_image
from tests.recon.tof.tof_helpers import SMALL_GRID, SMALL_TOF, point_pair_events, random_ring_lors


@pytest.mark.parametrize("kernel", ["torch", "numba"])
@pytest.mark.parametrize("use_tof", [False, True], ids=["nontof", "tof"])
def test_em_step_equals_forward_ratio_back(kernel: str, use_tof: bool) -> None:
    start, end, bins = random_ring_lors(200, seed=4)
    tof = SMALL_TOF if use_tof else None
    b = bins if use_tof else None
    g = torch.Generator().manual_seed(3)
    image = torch.rand(SMALL_GRID.shape_zyx, generator=g, dtype=torch.float64)
    additive = torch.rand(200, generator=g, dtype=torch.float64)
    back, fwd = em_backprojection(image, start, end, additive, SMALL_GRID, tof, b, kernel=kernel)
    ref_fwd = project_forward(image, start, end, SMALL_GRID, tof, b, kernel="torch")
    ratio = 1.0 / (ref_fwd + additive)
    ref_back = project_back(ratio, start, end, SMALL_GRID, tof, b, kernel="torch")
    torch.testing.assert_close(fwd, ref_fwd, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(back, ref_back, rtol=1e-10, atol=1e-10 * float(ref_back.abs().max()))


def _osem_problem() -> tuple[ListModeEvents, torch.Tensor]:
    start, end, bins = random_ring_lors(3000, seed=9)
    table = torch.cat([start, end])
    c1 = torch.arange(3000, dtype=torch.int32)
    c2 = c1 + 3000
    events = ListModeEvents(c1, c2, bins, torch.full((3000,), 0.01), table)
    sens = project_back(torch.ones(3000), start, end, SMALL_GRID, kernel="numba") + 1.0
    return events, sens


def test_osem_resume_equals_uninterrupted_run(tmp_path) -> None:
    events, sens = _osem_problem()
    settings = OSEMSettings(n_iterations=2, n_subsets=3, chunk_size=700, kernel="numba", show_progress=False)
    straight = list_mode_osem(events, sens, SMALL_GRID, SMALL_TOF, settings)
    part = list_mode_osem(events, sens, SMALL_GRID, SMALL_TOF, settings, n_subset_updates=4)
    part.save(tmp_path / "state.pt")
    resumed = list_mode_osem(
        events, sens, SMALL_GRID, SMALL_TOF, settings, state=OSEMState.load(tmp_path / "state.pt")
    )
    assert part.n_subset_updates_done == 4 and resumed.n_subset_updates_done == 6
    torch.testing.assert_close(resumed.image, straight.image, rtol=1e-6, atol=1e-9)
    assert float(straight.image.min()) >= 0.0
    assert len(straight.history) == 2


def test_osem_chunk_size_does_not_change_the_result() -> None:
    events, sens = _osem_problem()
    a = list_mode_osem(
        events,
        sens,
        SMALL_GRID,
        None,
        OSEMSettings(1, 2, chunk_size=100, kernel="numba", show_progress=False),
    )
    b = list_mode_osem(
        events,
        sens,
        SMALL_GRID,
        None,
        OSEMSettings(1, 2, chunk_size=5000, kernel="numba", show_progress=False),
    )
    torch.testing.assert_close(a.image, b.image, rtol=1e-5, atol=1e-8)


def test_randoms_tof_fractions_sum_to_one() -> None:
    scanner = small_test_scanner()
    k = scanner.max_tof_bin
    fractions = tof_bin_randoms_fraction(scanner, np.arange(-k, k + 1))
    assert abs(fractions.sum() - 1.0) < 1e-12
    inner = scanner.tof_bin_width_ps / (scanner.coincidence_window_ns * 1000.0)
    assert fractions[k] == pytest.approx(inner, rel=1e-12)


def test_fan_sum_fit_recovers_singles() -> None:
    scanner = small_test_scanner()
    fov = 0.95 * scanner.ring_radius_mm
    rng = np.random.default_rng(0)
    s_true = rng.uniform(0.5, 1.5, scanner.n_crystals)
    s_true *= math.sqrt(1e6 / total_over_fov_pairs(scanner, s_true, fov))
    counts = s_true * fan_sums(
        scanner, s_true, fov
    )  # noise-free delayed counts per crystal (each counted once per end)
    d1 = np.repeat(np.arange(scanner.n_crystals), np.round(counts).astype(np.int64))
    d2 = np.full_like(d1, 0)[:0]
    s_fit = singles_from_delayeds(scanner, d1, d2, fov, n_iterations=60)
    np.testing.assert_allclose(s_fit, s_true, rtol=0.01)


def test_sampled_sensitivity_matches_full_enumeration() -> None:
    scanner = small_test_scanner()
    grid = ImageGrid.centred((6, 24, 24), (8.0, 8.0, 8.0))
    fov = 0.95 * scanner.ring_radius_mm
    full = sensitivity_image(
        scanner, grid, 1.0, None, None, fov, None, np.random.default_rng(0), kernel="numba"
    )
    sampled = sensitivity_image(
        scanner, grid, 1.0, None, None, fov, 200_000, np.random.default_rng(1), kernel="numba"
    )
    inside = full > 0.2 * full.max()
    rel = ((sampled - full).abs() / full)[inside]
    assert float(rel.median()) < 0.05
    assert abs(float(sampled.sum() / full.sum()) - 1.0) < 0.01
    scale, chunks = pair_chunks(scanner, fov, None, 10**9, np.random.default_rng(0))
    assert scale == 1.0 and sum(c[0].shape[0] for c in chunks) == n_pairs(scanner, fov)


def test_geometric_factor_closed_form_for_a_diameter() -> None:
    scanner = small_test_scanner()
    table = crystal_table(scanner)
    g = geometric_factors(scanner, table[:1], table[64:65])  # crystal 0 and its opposite: γ = 1, D = 2R
    d = 2.0 * scanner.detection_radius_mm
    a = scanner.crystal_size_mm[0] * scanner.crystal_size_mm[1]
    eps = 1.0 - math.exp(-0.087 * scanner.crystal_size_mm[2])
    assert float(g[0]) == pytest.approx(a * a * eps * eps / (2 * math.pi * d * d), rel=1e-5)


def test_gaussian_filter_keeps_sum_and_has_the_requested_fwhm() -> None:
    image = torch.zeros((41, 41, 41), dtype=torch.float64)
    image[20, 20, 20] = 1.0
    out = gaussian_filter_fwhm(image, (2.0, 2.0, 2.0), 8.0)
    assert float(out.sum()) == pytest.approx(1.0, rel=1e-9)
    profile = out[20, 20].numpy()
    x = (np.arange(41) - 20) * 2.0
    sigma = math.sqrt(float((profile * x**2).sum() / profile.sum()))
    assert sigma * 2.0 * math.sqrt(2.0 * math.log(2.0)) == pytest.approx(8.0, rel=0.01)


def test_decay_and_suv_closed_forms() -> None:
    info = PETAcquisitionInfo("small", 0.0, 600.0, "F-18", 6586.2, 3.7e8, -3600.0, 70.0)
    lam = math.log(2) / 6586.2
    factor = frame_average_to_start_factor(6586.2, 600.0)
    assert factor == pytest.approx(lam * 600.0 / (1 - math.exp(-lam * 600.0)), rel=1e-12)
    conc = activity_bq_per_ml(
        torch.tensor([5.0], dtype=torch.float64), info
    )  # 5 Bq/mm³ averaged over the frame
    assert float(conc[0]) == pytest.approx(5000.0 * factor, rel=1e-12)
    suv = suv_body_weight(conc, info)
    dose_at_start = 3.7e8 * 2.0 ** (-3600.0 / 6586.2)
    assert float(suv[0]) == pytest.approx(float(conc[0]) * 70_000.0 / dose_at_start, rel=1e-12)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_full_reconstruction_on_cuda_matches_cpu() -> None:
    """Sensitivity, randoms, scatter fit and OSEM on the GPU give the CPU's image (float32 sums, 1e-3)."""
    scanner = small_test_scanner()
    batch = point_pair_events(scanner, 30_000, seed=2, centre_xyz_mm=(10.0, -5.0, 0.0), radius_mm=25.0)
    info = PETAcquisitionInfo("small", 0.0, 10.0, "F-18", 6586.2, 3.0e8, -1800.0, 70.0)
    grid = ImageGrid.centred((12, 40, 40), (5.0, 5.0, 5.0))
    mu = torch.zeros(grid.shape_zyx)
    mu[3:9, 10:30, 10:30] = 0.096
    params = ReconstructionParameters(
        n_iterations=2, n_subsets=3, max_sensitivity_pairs=300_000, chunk_size=7_000
    )
    cpu = reconstruct_frame(batch, info, scanner, grid, mu, replace(params, kernel="numba"), "cpu")
    gpu = reconstruct_frame(batch, info, scanner, grid, mu, replace(params, kernel="cuda"), "cuda")
    ref = cpu.activity_bq_per_ml
    assert float(ref.max()) > 0
    assert float((gpu.activity_bq_per_ml.cpu() - ref).abs().max()) <= 1e-3 * float(ref.max())


def test_scatter_tail_fit_says_when_the_tails_show_no_scatter() -> None:
    from recon.tof.scatter import TailFit

    # a large patient: 1000 tail prompts, 990 of them expected randoms: the scale is noise
    assert not TailFit(0.0, 1000, 990.0, 5.0, 100.0).identifiable
    # 10 000 tail prompts of which 4 900 scatter: 49 σ
    fit = TailFit(0.6, 10_000, 5000.0, 100.0, 8000.0)
    assert fit.identifiable and fit.net_scatter_tail == 4900.0


def test_scatter_scale_uncertainty_is_the_spread_of_repeated_tail_fits() -> None:
    from recon.tof.cross_calibration import scatter_scale_term
    from recon.tof.scatter import TailFit

    # tails expecting 5 000 randoms, 100 trues and 4 900 scatter counts (model 8 000 before scaling)
    rng = np.random.default_rng(3)
    prompts = rng.poisson(10_000.0, 20_000)
    alphas = (prompts - 5000.0 - 100.0) / 8000.0
    spread = float(alphas.std() / alphas.mean())
    fit = TailFit(0.6125, 10_000, 5000.0, 100.0, 8000.0)
    assert fit.scale_relative_uncertainty == pytest.approx(spread, rel=0.03)
    assert TailFit(0.0, 1000, 990.0, 20.0, 100.0).scale_relative_uncertainty == math.inf
    # subtracting SF/(1 − SF) of the trues as scatter: a 4 % error of α is 1 % of the trues at SF 0.2
    assert scatter_scale_term(0.2, 0.04) == pytest.approx(0.01)
    assert scatter_scale_term(0.0, math.inf) == 0.0


def test_a50_voi_mean_closed_forms() -> None:
    from recon.tof.quantitation import a50_voi_mean

    z, y, x = np.meshgrid(*(np.arange(-15.0, 16.0),) * 3, indexing="ij")
    r = np.sqrt(x**2 + y**2 + z**2)
    sphere = np.where(r <= 6.0, 40.0, 10.0)
    near = r <= 6.0 + 8.0
    # a sharp sphere: the A50 VOI is the sphere itself, its mean the sphere's value
    assert a50_voi_mean(sphere, near, 10.0) == 40.0
    # a cone v = 40 − 30 r / 14 over background 10: the VOI is the ball r ≤ 7 (v ≥ 25), where the mean of r
    # is ¾ · 7, so the VOI mean is 40 − 30 · 5.25 / 14 = 28.75 (voxelised: within 1 %)
    ramp = np.clip(40.0 - 30.0 * r / 14.0, 10.0, None)
    assert a50_voi_mean(ramp, near, 10.0) == pytest.approx(28.75, rel=0.01)
    # the threshold adapts to the background: a higher background leaves fewer voxels in the VOI
    assert a50_voi_mean(ramp, near, 20.0) > a50_voi_mean(ramp, near, 10.0)
    with pytest.raises(ValueError, match="non-empty mask"):
        a50_voi_mean(sphere, np.zeros_like(near), 10.0)
