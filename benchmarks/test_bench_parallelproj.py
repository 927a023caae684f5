"""Side by side with parallelproj: the same TOF / non-TOF list-mode projections in one process, same events.

Events: those of :mod:`benchmarks.test_bench_tof` (Signa-like, 2.78 mm voxels, 10⁶ events, seed 0); image: a
seeded uniform random image on the whole grid.  Both sides run with 2 threads (numba and OpenMP) on the CPU;
the rounds alternate (parallelproj in ``pedantic``'s untimed setup before each timed round of ours), so a
change of machine load hits both.  Recorded in ``extra_info``: events/s of forward, back and forward + back
for both, their ratio (ours ÷ parallelproj, > 1 = ours faster) and the agreement of the forward projections
(Pearson correlation, relative difference of the sums).  Ours sorts the events by image block
(:func:`recon.tof.projector_numba.locality_order`) inside each call, and that cost is in its time;
parallelproj gets them in acquisition order, as a user would hand them over.  As a fairness probe, the
CPU test also times parallelproj on the events already in our order (``..._in_our_order``: its kernels
find their voxels in cache too).  The kernels differ by definition at the image
border (parallelproj clips each LOR to the image box) and, for TOF, in the kernel's normalisation
(constant vs this project's per-sample renormalisation, no ±∞ edge bins), so agreement is ≈ 1e-3, not float
rounding.

Skipped, with the reason, when parallelproj's library is not built (``scripts/build_parallelproj.py``); the
CUDA variant also needs a GPU and ``libparallelproj_cuda.so`` (its timings include parallelproj's copies of
the LORs between host and device, which ours does not need: its events already live on the GPU).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numba
import numpy as np
import pytest
import torch

from benchmarks import parallelproj_reference as ppr
from benchmarks.conftest import synchronize
from benchmarks.test_bench_tof import VOXEL_MM, synthetic_events
from recon.tof.geometry import ImageGrid, signa_like
from recon.tof.projector_numba import locality_order
from recon.tof.projectors import numba_geometry, project_back, project_forward
from recon.tof.tof_kernel import TOFParameters

N_EVENTS = 1_000_000
N_THREADS = 2
ROUNDS = 3


@pytest.fixture(scope="module")
def events() -> dict:
    scanner = signa_like()
    grid = ImageGrid.for_scanner(scanner, (VOXEL_MM,) * 3)
    tof = TOFParameters.from_scanner(scanner)
    assert tof is not None
    c1, c2, bins = synthetic_events(scanner, N_EVENTS, seed=0)
    table = scanner.crystal_positions_mm()
    image = torch.rand(grid.shape_zyx, generator=torch.Generator().manual_seed(0))
    return {"grid": grid, "tof": tof, "start": table[c1], "end": table[c2], "bins": bins, "image": image}


def _timed(fn: Callable[[], object], into: list[float]) -> object:
    start = time.perf_counter()
    out = fn()
    into.append(time.perf_counter() - start)
    return out


def _record(
    benchmark, ours: dict[str, list[float]], theirs: dict[str, list[float]], ours_fwd, theirs_fwd
) -> None:  # type: ignore[no-untyped-def]
    info = benchmark.extra_info
    for part in ("fwd", "back"):
        info[f"ours_{part}_events_per_s"] = N_EVENTS / statistics.median(ours[part])
        info[f"parallelproj_{part}_events_per_s"] = N_EVENTS / statistics.median(theirs[part])
    both_ours = statistics.median([a + b for a, b in zip(ours["fwd"], ours["back"], strict=True)])
    both_theirs = statistics.median([a + b for a, b in zip(theirs["fwd"], theirs["back"], strict=True)])
    info["ours_fwd_back_events_per_s"] = N_EVENTS / both_ours
    info["parallelproj_fwd_back_events_per_s"] = N_EVENTS / both_theirs
    info["ratio_fwd_back"] = both_theirs / both_ours
    info["ratio_fwd"] = statistics.median(theirs["fwd"]) / statistics.median(ours["fwd"])
    info["ratio_back"] = statistics.median(theirs["back"]) / statistics.median(ours["back"])
    a, b = np.asarray(ours_fwd, dtype=np.float64), np.asarray(theirs_fwd, dtype=np.float64)
    info["forward_correlation"] = float(np.corrcoef(a, b)[0, 1])
    info["forward_relative_sum"] = float(a.sum() / b.sum() - 1.0)
    info["n_events"] = N_EVENTS
    info["threads"] = N_THREADS


@pytest.mark.skipif(ppr.library_path() is None, reason=ppr.missing_reason())
@pytest.mark.parametrize("use_tof", [True, False], ids=["tof", "nontof"])
def test_side_by_side_cpu(benchmark, events: dict, use_tof: bool) -> None:
    path = ppr.library_path()
    assert path is not None
    theirs_lib = ppr.Projector(path)
    ppr.set_threads(N_THREADS)
    threads_before = numba.get_num_threads()
    numba.set_num_threads(min(N_THREADS, numba.config.NUMBA_NUM_THREADS))
    grid, tof = events["grid"], events["tof"]
    geometry = ppr.geometry(
        grid.shape_zyx, grid.voxel_size_mm, grid.origin_mm, tof.sigma_mm, tof.bin_width_mm, tof.n_sigmas
    )
    start_zyx, end_zyx = ppr.lor_points_zyx(events["start"]), ppr.lor_points_zyx(events["end"])
    bins16 = events["bins"].astype(np.int16) if use_tof else None
    image_np = events["image"].numpy()
    start, end = torch.from_numpy(events["start"]), torch.from_numpy(events["end"])
    bins = torch.from_numpy(events["bins"]) if use_tof else None
    tof_ours = tof if use_tof else None
    ours: dict[str, list[float]] = {"fwd": [], "back": []}
    theirs: dict[str, list[float]] = {"fwd": [], "back": []}
    kept: dict[str, object] = {}

    def theirs_round() -> None:
        p = _timed(lambda: theirs_lib.forward(image_np, start_zyx, end_zyx, geometry, bins16), theirs["fwd"])
        kept["theirs"] = p
        _timed(lambda: theirs_lib.back(p, start_zyx, end_zyx, geometry, bins16), theirs["back"])  # type: ignore[arg-type]

    def ours_round() -> None:
        p = _timed(lambda: project_forward(events["image"], start, end, grid, tof_ours, bins), ours["fwd"])
        kept["ours"] = p
        _timed(lambda: project_back(p, start, end, grid, tof_ours, bins), ours["back"])  # type: ignore[arg-type]

    try:
        theirs_round()  # warm-up of both (numba's first call loads its cache)
        ours_round()
        for timings in (*ours.values(), *theirs.values()):
            timings.clear()
        benchmark.pedantic(ours_round, setup=theirs_round, rounds=ROUNDS, iterations=1)
        # fairness probe: parallelproj on the same events in our locality order (its kernels gain from it too)
        order = locality_order(
            events["start"].astype(np.float64), events["end"].astype(np.float64),
            events["bins"].astype(np.int32), numba_geometry(grid, tof_ours),
        )  # fmt: skip
        sorted_start, sorted_end = start_zyx[order], end_zyx[order]
        sorted_bins = None if bins16 is None else bins16[order]
        probe: list[float] = []
        for _ in range(ROUNDS):
            start_s = time.perf_counter()
            p = theirs_lib.forward(image_np, sorted_start, sorted_end, geometry, sorted_bins)
            theirs_lib.back(p, sorted_start, sorted_end, geometry, sorted_bins)
            probe.append(time.perf_counter() - start_s)
    finally:
        numba.set_num_threads(threads_before)
    _record(benchmark, ours, theirs, kept["ours"].numpy(), kept["theirs"])  # type: ignore[union-attr]
    info = benchmark.extra_info
    info["parallelproj_in_our_order_fwd_back_events_per_s"] = N_EVENTS / statistics.median(probe)
    info["ratio_fwd_back_to_parallelproj_in_our_order"] = (
        info["ours_fwd_back_events_per_s"] / info["parallelproj_in_our_order_fwd_back_events_per_s"]
    )


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.skipif(ppr.library_path(cuda=True) is None, reason=ppr.missing_reason(cuda=True))
@pytest.mark.parametrize("use_tof", [True, False], ids=["tof", "nontof"])
def test_side_by_side_cuda(benchmark, events: dict, use_tof: bool) -> None:
    path = ppr.library_path(cuda=True)
    assert path is not None
    theirs_lib = ppr.CudaProjector(path)
    device = torch.device("cuda")
    grid, tof = events["grid"], events["tof"]
    geometry = ppr.geometry(
        grid.shape_zyx, grid.voxel_size_mm, grid.origin_mm, tof.sigma_mm, tof.bin_width_mm, tof.n_sigmas
    )
    start_zyx, end_zyx = ppr.lor_points_zyx(events["start"]), ppr.lor_points_zyx(events["end"])
    bins16 = events["bins"].astype(np.int16) if use_tof else None
    d_image = theirs_lib.to_devices(events["image"].numpy())
    image = events["image"].to(device)
    start, end = torch.from_numpy(events["start"]).to(device), torch.from_numpy(events["end"]).to(device)
    bins = torch.from_numpy(events["bins"]).to(device) if use_tof else None
    tof_ours = tof if use_tof else None
    ours: dict[str, list[float]] = {"fwd": [], "back": []}
    theirs: dict[str, list[float]] = {"fwd": [], "back": []}
    kept: dict[str, object] = {}

    def theirs_round() -> None:
        p = _timed(lambda: theirs_lib.forward(d_image, start_zyx, end_zyx, geometry, bins16), theirs["fwd"])
        kept["theirs"] = p
        _timed(lambda: theirs_lib.back(p, start_zyx, end_zyx, geometry, bins16), theirs["back"])  # type: ignore[arg-type]

    def synced(fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            out = fn()
            synchronize(device)
            return out

        return run

    def ours_round() -> None:
        p = _timed(synced(lambda: project_forward(image, start, end, grid, tof_ours, bins)), ours["fwd"])
        kept["ours"] = p
        _timed(synced(lambda: project_back(p, start, end, grid, tof_ours, bins)), ours["back"])  # type: ignore[arg-type]

    try:
        theirs_round()
        ours_round()
        for timings in (*ours.values(), *theirs.values()):
            timings.clear()
        benchmark.pedantic(ours_round, setup=theirs_round, rounds=ROUNDS, iterations=1)
    finally:
        theirs_lib.free(d_image)
    _record(benchmark, ours, theirs, kept["ours"].cpu().numpy(), kept["theirs"])  # type: ignore[union-attr]
