"""TOF and non-TOF list-mode projectors: adjointness, kernel agreement, TOF kernel physics.

Tolerances fixed before running: float64 adjointness 1e-10 (relative to ‖Ax‖‖y‖), float32 adjointness
1e-5; kernel agreement with the torch reference: max |a - b| ≤ 1e-5·max|b| in float32 (a sum of ≈ 100
products rounded to float32), 1e-12 in float64; TOF bins summing to non-TOF 1e-10 in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import erf

from recon.tof.geometry import ImageGrid
from recon.tof.projectors import ListModeProjector, project_back, project_forward, resolve_kernel
from recon.tof.tof_kernel import TOFParameters, tof_bin_weights
from tests.helpers.operator_checks import assert_adjoint
from tests.recon.tof.tof_helpers import SMALL_GRID, SMALL_TOF, random_ring_lors, steep_axial_lors

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
KERNELS = ["torch", "numba", pytest.param("cuda", marks=[CUDA, pytest.mark.cuda])]


def _device(kernel: str) -> torch.device:
    return torch.device("cuda" if kernel == "cuda" else "cpu")


def _lors(n_events: int = 300, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    start, end, bins = random_ring_lors(n_events, seed)
    s2, e2 = steep_axial_lors(40, seed + 1)
    b2 = torch.zeros(40, dtype=torch.int16)
    return torch.cat([start, s2]), torch.cat([end, e2]), torch.cat([bins, b2])


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("use_tof", [False, True], ids=["nontof", "tof"])
@pytest.mark.parametrize(
    ("dtype", "rtol"), [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["f64", "f32"]
)
def test_adjoint(kernel: str, use_tof: bool, dtype: torch.dtype, rtol: float) -> None:
    start, end, bins = _lors()
    tof = SMALL_TOF if use_tof else None
    op = ListModeProjector(start, end, SMALL_GRID, tof, bins if use_tof else None, kernel=kernel).to(
        _device(kernel)
    )
    dev = _device(kernel)
    assert_adjoint(
        lambda x: op(x.to(dev)).cpu(),
        lambda y: op.adjoint(y.to(dev)).cpu(),
        SMALL_GRID.shape_zyx,
        (start.shape[0],),
        seed=7,
        dtype=dtype,
        rtol=rtol,
        real=True,
    )


@pytest.mark.parametrize("kernel", ["numba", pytest.param("cuda", marks=[CUDA, pytest.mark.cuda])])
@pytest.mark.parametrize("use_tof", [False, True], ids=["nontof", "tof"])
@pytest.mark.parametrize(
    ("dtype", "rtol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)], ids=["f64", "f32"]
)
def test_kernels_match_torch_reference(kernel: str, use_tof: bool, dtype: torch.dtype, rtol: float) -> None:
    start, end, bins = _lors()
    tof = SMALL_TOF if use_tof else None
    b = bins if use_tof else None
    g = torch.Generator().manual_seed(11)
    image = torch.rand(SMALL_GRID.shape_zyx, generator=g, dtype=dtype)
    values = torch.rand(start.shape[0], generator=g, dtype=dtype)
    dev = _device(kernel)
    ref_fwd = project_forward(image, start, end, SMALL_GRID, tof, b, kernel="torch")
    ref_back = project_back(values, start, end, SMALL_GRID, tof, b, kernel="torch")
    fwd = project_forward(image.to(dev), start, end, SMALL_GRID, tof, b, kernel=kernel).cpu()
    back = project_back(values.to(dev), start, end, SMALL_GRID, tof, b, kernel=kernel).cpu()
    assert float(ref_fwd.abs().max()) > 0 and float(ref_back.abs().max()) > 0
    assert float((fwd - ref_fwd).abs().max()) <= rtol * float(ref_fwd.abs().max())
    assert float((back - ref_back).abs().max()) <= rtol * float(ref_back.abs().max())


@pytest.mark.parametrize("kernel", KERNELS)
def test_tof_bins_sum_to_non_tof_projection(kernel: str) -> None:
    start, end, _ = _lors(120, seed=5)
    dev = _device(kernel)
    image = torch.rand(SMALL_GRID.shape_zyx, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    non_tof = project_forward(image.to(dev), start, end, SMALL_GRID, kernel=kernel).cpu()
    total = torch.zeros_like(non_tof)
    k = SMALL_TOF.max_bin
    for b in range(-k, k + 1):
        bins = torch.full((start.shape[0],), b, dtype=torch.int16)
        total += project_forward(image.to(dev), start, end, SMALL_GRID, SMALL_TOF, bins, kernel=kernel).cpu()
    assert float(non_tof.abs().max()) > 0
    torch.testing.assert_close(total, non_tof, rtol=1e-10, atol=1e-10 * float(non_tof.abs().max()))


def test_tof_weights_sum_to_one_everywhere() -> None:
    s = torch.linspace(-120.0, 120.0, 2001, dtype=torch.float64)
    k = SMALL_TOF.max_bin
    total = sum(tof_bin_weights(s, torch.tensor(b), SMALL_TOF) for b in range(-k, k + 1))
    torch.testing.assert_close(total, torch.ones_like(s), rtol=0, atol=1e-12)


def _erf_profile(x0_mm: float, tof: TOFParameters) -> np.ndarray:
    """Closed form, written independently: Gaussian N(x0, σ) integrated over each bin, edge bins open,
    bins with centre further than 3σ + Δ/2 dropped, renormalised."""
    k, delta, sigma = tof.max_bin, tof.bin_width_mm, tof.sigma_mm
    centres = np.arange(-k, k + 1) * delta
    lower = np.where(np.arange(-k, k + 1) == -k, -np.inf, centres - delta / 2)
    upper = np.where(np.arange(-k, k + 1) == k, np.inf, centres + delta / 2)
    p = 0.5 * (erf((upper - x0_mm) / (math.sqrt(2) * sigma)) - erf((lower - x0_mm) / (math.sqrt(2) * sigma)))
    p[np.abs(centres - x0_mm) > 3 * sigma + delta / 2] = 0.0
    return p / p.sum()


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("x_index", [10, 14, 19])
def test_point_source_tof_profile_matches_erf_formula(kernel: str, x_index: int) -> None:
    grid = ImageGrid.centred((5, 9, 41), (2.0, 2.0, 2.0))
    tof = TOFParameters(sigma_mm=8.0, bin_width_mm=3.0, n_tof_bins=41)
    image = torch.zeros(grid.shape_zyx, dtype=torch.float64)
    image[2, 4, x_index] = 1.0
    x0 = float(grid.axis_centres_mm(2)[x_index])
    k = tof.max_bin
    n = 2 * k + 1
    start = torch.tensor([[-100.0, 0.0, 0.0]] * n)
    end = torch.tensor([[100.0, 0.0, 0.0]] * n)
    bins = torch.arange(-k, k + 1, dtype=torch.int16)
    dev = _device(kernel)
    profile = project_forward(image.to(dev), start, end, grid, tof, bins, kernel=kernel).cpu().numpy()
    expected = 2.0 * _erf_profile(x0, tof)  # the point is sampled once, with a step of one voxel (2 mm)
    np.testing.assert_allclose(profile, expected, rtol=1e-9, atol=1e-12)
    centres = bins.numpy() * tof.bin_width_mm
    mean = (profile * centres).sum() / profile.sum()
    var = (profile * (centres - mean) ** 2).sum() / profile.sum()
    assert abs(mean - x0) < 0.05 * tof.bin_width_mm
    assert abs(math.sqrt(var) - math.sqrt(tof.sigma_mm**2 + tof.bin_width_mm**2 / 12)) < 0.03 * tof.sigma_mm


def test_line_integral_of_uniform_slab_is_chord_length() -> None:
    """Non-TOF projection of a uniform image = intersection length of the LOR with the image box (mm)."""
    grid = ImageGrid.centred((4, 20, 20), (2.5, 2.0, 2.0))
    image = torch.ones(grid.shape_zyx, dtype=torch.float64)
    start = torch.tensor([[-80.0, -3.3, 1.1], [-70.0, 80.0, -0.4]])
    end = torch.tensor([[80.0, 5.1, -1.2], [70.0, -80.0, 0.9]])
    proj = project_forward(image, start, end, grid, kernel="numba")
    # the sweep covers the span between the first and the last voxel-centre planes of the dominant axis (x: 19·2 mm)
    for i in range(2):
        d = (end[i] - start[i]).double()
        dominant = float(d[0].abs()) if abs(float(d[0])) >= abs(float(d[1])) else float(d[1].abs())
        expected = 19 * 2.0 * float(d.norm()) / dominant + 2.0 * float(d.norm()) / dominant
        assert float(proj[i]) == pytest.approx(expected, rel=1e-9)


def test_dispatch_checks_inputs() -> None:
    start, end, _bins = _lors(10)
    image = torch.zeros(SMALL_GRID.shape_zyx)
    with pytest.raises(ValueError, match="unknown projector kernel"):
        project_forward(image, start, end, SMALL_GRID, kernel="opencl")
    with pytest.raises(ValueError, match="needs tof_bin"):
        project_forward(image, start, end, SMALL_GRID, SMALL_TOF, None)
    with pytest.raises(ValueError, match="shape"):
        project_forward(image[1:], start, end, SMALL_GRID)
    assert resolve_kernel("auto", torch.device("cpu")) == "numba"
    assert resolve_kernel("auto", torch.device("cuda")) == "cuda"
    with pytest.raises(ValueError, match="cuda kernel needs CUDA"):
        resolve_kernel("cuda", torch.device("cpu"))


@pytest.mark.parametrize("use_tof", [False, True], ids=["nontof", "tof"])
def test_locality_order_is_a_grouping_permutation(use_tof: bool) -> None:
    """The numba kernels visit events in locality order: a permutation, grouped by dominant axis and image
    block, that changes no projected value (float64: same operations per event, so bit-identical forward;
    back differs by summation order only, 1e-12)."""
    from recon.tof.projector_numba import LOCALITY_BLOCK_VOXELS, locality_order
    from recon.tof.projectors import numba_geometry

    start, end, bins = _lors(2000, seed=11)
    tof = SMALL_TOF if use_tof else None
    geometry = numba_geometry(SMALL_GRID, tof)
    starts, ends = start.double().numpy(), end.double().numpy()
    order = locality_order(starts, ends, bins.numpy().astype(np.int32), geometry)
    assert np.array_equal(np.sort(order), np.arange(len(order)))
    # the key the order sorts by, recomputed here: dominant axis, then the block of the (TOF) centre
    d = ends - starts
    tof_shift = bins.numpy() * SMALL_TOF.bin_width_mm / np.linalg.norm(d, axis=1)
    fraction = 0.5 + (tof_shift if use_tof else np.zeros(len(d)))
    centre_zyx = (starts + np.clip(fraction, 0.0, 1.0)[:, None] * d)[:, ::-1]
    shape = np.asarray(SMALL_GRID.shape_zyx)
    n_blocks = -(-shape // LOCALITY_BLOCK_VOXELS)
    block = np.floor(
        (centre_zyx - SMALL_GRID.origin_mm) / (np.asarray(SMALL_GRID.voxel_size_mm) * LOCALITY_BLOCK_VOXELS)
    )
    block = np.clip(block, 0, n_blocks - 1).astype(np.int64)
    ad = np.abs(d)
    axis = np.where((ad[:, 2] >= ad[:, 1]) & (ad[:, 2] >= ad[:, 0]), 0, np.where(ad[:, 1] >= ad[:, 0], 1, 2))
    key = ((axis * n_blocks[0] + block[:, 0]) * n_blocks[1] + block[:, 1]) * n_blocks[2] + block[:, 2]
    assert np.all(np.diff(key[order]) >= 0)
    assert len(np.unique(key)) >= 10  # the test events spread over blocks and axes
    image = torch.rand(SMALL_GRID.shape_zyx, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    tof_bin = bins if use_tof else None
    forward = project_forward(image, start, end, SMALL_GRID, tof, tof_bin, kernel="numba")
    shuffled = torch.from_numpy(np.random.default_rng(5).permutation(len(order)))
    forward_shuffled = project_forward(
        image, start[shuffled], end[shuffled], SMALL_GRID, tof, None if tof_bin is None else tof_bin[shuffled],
        kernel="numba",
    )  # fmt: skip
    assert torch.equal(forward_shuffled, forward[shuffled])
    values = torch.rand(len(order), dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    back = project_back(values, start, end, SMALL_GRID, tof, tof_bin, kernel="numba")
    back_shuffled = project_back(
        values[shuffled], start[shuffled], end[shuffled], SMALL_GRID, tof,
        None if tof_bin is None else tof_bin[shuffled], kernel="numba",
    )  # fmt: skip
    assert torch.allclose(back_shuffled, back, rtol=0, atol=1e-12 * float(back.abs().max()))
