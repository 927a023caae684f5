"""TOF list-mode projector throughput (events/s per forward + back) and a clinical OSEM wall time.

Signa-like geometry (448 × 45 crystals, 390 ps, 89 ps bins), 2.78 mm voxels on the scanner's FOV
(92 × 214 × 214).  Events are drawn here analytically (uniform emission in a Ø 30 cm × 20 cm cylinder,
isotropic directions, the crystal hit by each photon, TOF bin from the true position plus Gaussian timing
error), independent of the projectors.  Reference figure (DESIGN.md): parallelproj 1.10 on 2 cores,
≈ 0.13 M events/s per forward + back; the issue targets parity, aiming for 2×.

Each benchmark stores ``events_per_s`` in ``extra_info``.  Profiles: quick = 10⁶ events (CPU and CUDA);
full adds 10⁷ events and, on CUDA, a clinical reconstruction of 4·10⁷ events, 3 iterations × 17 subsets.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from benchmarks.conftest import bench_profile, record_ratio, synchronize
from recon.tof.em_step import em_backprojection
from recon.tof.geometry import ImageGrid, ScannerGeometry, signa_like
from recon.tof.lor_model import crystal_table
from recon.tof.osem import ListModeEvents, OSEMSettings, list_mode_osem
from recon.tof.projectors import project_back, project_forward
from recon.tof.tof_kernel import TOFParameters

VOXEL_MM = 2.78


def synthetic_events(
    scanner: ScannerGeometry, n_events: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crystal_id_1, crystal_id_2, tof_bin) of ``n_events`` true coincidences from a cylinder source."""
    rng = np.random.default_rng(seed)
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    radius = scanner.detection_radius_mm
    n_ring, n_kept = scanner.n_crystals_per_ring, 0
    while n_kept < n_events:
        m = 2 * (n_events - n_kept) + 1000
        r = 150.0 * np.sqrt(rng.random(m))
        phi = rng.uniform(0, 2 * np.pi, m)
        p = np.stack([r * np.cos(phi), r * np.sin(phi), rng.uniform(-100, 100, m)], axis=1)
        u = rng.normal(size=(m, 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        a = u[:, 0] ** 2 + u[:, 1] ** 2
        b = p[:, 0] * u[:, 0] + p[:, 1] * u[:, 1]
        c = p[:, 0] ** 2 + p[:, 1] ** 2 - radius**2
        root = np.sqrt(b * b - a * c)
        hits = [p + ((-b + sign * root) / a)[:, None] * u for sign in (1.0, -1.0)]
        crystals = []
        for h in hits:
            idx = np.rint(np.arctan2(h[:, 1], h[:, 0]) / (2 * np.pi) * n_ring).astype(np.int64) % n_ring
            ring = np.rint(h[:, 2] / scanner.ring_spacing_mm + (scanner.n_rings - 1) / 2).astype(np.int64)
            crystals.append((ring, idx))
        ok = np.all([(rg >= 0) & (rg < scanner.n_rings) for rg, _ in crystals], axis=0)
        c1 = crystals[0][0] * n_ring + crystals[0][1]
        c2 = crystals[1][0] * n_ring + crystals[1][1]
        ok &= c1 != c2
        table = scanner.crystal_positions_mm().astype(np.float64)
        mid = 0.5 * (table[c1[ok]] + table[c2[ok]])
        direction = table[c2[ok]] - table[c1[ok]]
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        d = np.sum((p[ok] - mid) * direction, axis=1) + rng.normal(0, scanner.tof_sigma_mm(), mid.shape[0])
        k = scanner.max_tof_bin
        bins = np.clip(np.rint(d / scanner.tof_bin_width_mm()), -k, k).astype(np.int16)
        out.append((c1[ok].astype(np.int32), c2[ok].astype(np.int32), bins))
        n_kept += int(ok.sum())
    c1, c2, bins = (np.concatenate(x)[:n_events] for x in zip(*out, strict=True))
    return c1, c2, bins


@pytest.fixture(scope="module")
def signa_setup() -> dict:
    scanner = signa_like()
    grid = ImageGrid.for_scanner(scanner, (VOXEL_MM,) * 3)
    tof = TOFParameters.from_scanner(scanner)
    sizes = [1_000_000] if bench_profile() == "quick" else [1_000_000, 10_000_000]
    c1, c2, bins = synthetic_events(scanner, max(sizes), seed=0)
    return {"scanner": scanner, "grid": grid, "tof": tof, "c1": c1, "c2": c2, "bins": bins, "sizes": sizes}


def _inputs(setup: dict, n: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    table = crystal_table(setup["scanner"], device)
    c1 = torch.from_numpy(setup["c1"][:n]).to(device).long()
    c2 = torch.from_numpy(setup["c2"][:n]).to(device).long()
    bins = torch.from_numpy(setup["bins"][:n]).to(device)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(setup["grid"].shape_zyx, generator=g).to(device)
    return image, table[c1], table[c2], bins


@pytest.mark.parametrize("n_events", [1_000_000, 10_000_000])
@pytest.mark.parametrize("use_tof", [True, False], ids=["tof", "nontof"])
def test_forward_plus_back(
    benchmark, device: torch.device, signa_setup: dict, n_events: int, use_tof: bool
) -> None:
    if n_events not in signa_setup["sizes"]:
        pytest.skip("size of the full profile")
    image, start, end, bins = _inputs(signa_setup, n_events, device)
    tof = signa_setup["tof"] if use_tof else None
    grid = signa_setup["grid"]

    def run() -> None:
        fwd = project_forward(image, start, end, grid, tof, bins if use_tof else None)
        project_back(fwd, start, end, grid, tof, bins if use_tof else None)
        synchronize(device)

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info["events_per_s"] = n_events / benchmark.stats.stats.median
    benchmark.extra_info["grid"] = grid.shape_zyx


@pytest.mark.parametrize("use_tof", [True, False], ids=["tof", "nontof"])
def test_fused_em_step(benchmark, device: torch.device, signa_setup: dict, use_tof: bool) -> None:
    """What one OSEM pass costs per event: forward, ratio and back projection (fused on the CPU)."""
    n_events = signa_setup["sizes"][-1]
    image, start, end, bins = _inputs(signa_setup, n_events, device)
    additive = torch.full((n_events,), 1e-3, device=device)
    tof = signa_setup["tof"] if use_tof else None

    def run() -> None:
        em_backprojection(image, start, end, additive, signa_setup["grid"], tof, bins if use_tof else None)
        synchronize(device)

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info["events_per_s"] = n_events / benchmark.stats.stats.median
    if device.type == "cpu":
        record_ratio(benchmark, _gather_reference(image, n_events), GATHER_REFERENCE, rounds=3)


#: Reference kernel of the ratio budget: a random-access gather of the same image, 64 voxels per event
#: (the order of the Joseph samples an event touches), whose cost scales with events and memory latency.
GATHER_REFERENCE = "numpy gather of 64 random image voxels per event"


def _gather_reference(image: torch.Tensor, n_events: int) -> Callable[[], object]:
    flat = image.cpu().numpy().ravel()
    indices = np.random.default_rng(0).integers(0, flat.size, size=64 * n_events // 8, dtype=np.int64)

    def gather() -> object:
        return [np.take(flat, indices).sum() for _ in range(8)]

    return gather


def test_clinical_osem_cuda(benchmark, signa_setup: dict) -> None:
    """4·10⁷ events, 3 iterations × 17 subsets, TOF, on CUDA (sensitivity given: computed once per bed)."""
    if not torch.cuda.is_available() or bench_profile() != "full":
        pytest.skip("needs a CUDA GPU and RECONSTREAM_BENCH_PROFILE=full")
    device = torch.device("cuda")
    n_events = 40_000_000
    reps = -(-n_events // signa_setup["c1"].shape[0])
    events = ListModeEvents(
        torch.from_numpy(np.tile(signa_setup["c1"], reps)[:n_events]).to(device),
        torch.from_numpy(np.tile(signa_setup["c2"], reps)[:n_events]).to(device),
        torch.from_numpy(np.tile(signa_setup["bins"], reps)[:n_events]).to(device),
        torch.full((n_events,), 1e-3, device=device),
        crystal_table(signa_setup["scanner"], device),
    )
    sens = torch.ones(signa_setup["grid"].shape_zyx, device=device)
    settings = OSEMSettings(n_iterations=3, n_subsets=17, chunk_size=1 << 23, show_progress=False)

    def run() -> None:
        list_mode_osem(events, sens, signa_setup["grid"], signa_setup["tof"], settings)
        synchronize(device)

    benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info["events_per_s_per_iteration"] = 3 * n_events / benchmark.stats.stats.median
