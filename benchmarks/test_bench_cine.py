"""Cine reconstruction latency per slice on the clinical size, CPU and CUDA.

192 × 156 recon matrix (the raw 2× readout oversampling is removed upstream, per readout), 16 coils,
25 phases, R = 2 with 24 calibration lines and R = 4; retrospective segmented acquisition (8 views per
segment, TR 3 ms, RR 1 s).  Latency = from the slice's last readout (all its readouts accumulated) to
its last image: transfer to the device, binning, calibration, unfolding, combination and display scaling.
``ratio`` = latency / one inverse FFT of every coil and frame of the slice (the linear-unmixing floor),
measured in the same run.  ``nrmse`` is against the synthetic truth (phantom × coil RSS at the phase
centres).

``test_bart_reference`` (only where Debian's ``bart`` exists) works on one slice of ``hardware_sim.mr``
(same clinical size; R = 2, and R = 4 in the ``full`` profile): the ``cine`` chain's own stages whiten,
remove oversampling, accumulate and bin it; then, in one run, the ``cine`` (GRAPPA) and ``cine-sense``
(CG-SENSE, 30 iterations) chains go from the accumulated slice to its images (binning included), the
``cine-cs`` chain with temporal TV and with L + S (timed once each), and
``bart ecalib -m1`` (time-averaged calibration block) + ``bart pics -S -l2 -r 0.01 -i 30`` (all frames
jointly, not ``-L``; BART's default thread count) run on the binned k-space written as ``.cfl``.  Stored:
``grappa_s``, ``sense_s``, ``cs_s``, ``lowrank_s``, ``bart_s`` (ecalib + pics wall time, file I/O excluded), their ratios and each
method's nRMSE against the simulator's truth (|truth| × coil RSS, body mask).
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache, partial
from typing import Any

import ismrmrd
import numpy as np
import pytest
import torch

from benchmarks.bart_reference import bart_cine_slice, bart_executable
from benchmarks.conftest import bench_profile, record_ratio, synchronize
from plugins.mr.cine_items import CineSliceBinned, CineSliceRaw
from plugins.runtime.chain import ChainSpec, load_chain
from plugins.runtime.pipeline import run_chain
from plugins.runtime.plugin import ChainContext
from recon.cine import combine, unfold
from recon.cine.binning import bin_lines, build_beat_table
from recon.common.fft import ifftc
from tests.plugins.mr.cine_sim_cases import _copy, simulated
from tests.recon.cine import synthetic

SHAPE, N_COILS, N_PHASES, N_ACS, VIEWS, TR_S, RR_S, N_STATES = (156, 192), 16, 25, 24, 8, 3e-3, 1.0, 50


@cache
def _states() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """K-space of ``N_STATES`` cardiac states, truth at the phase centres and the true coil RSS."""
    fine = (2 * SHAPE[0], 2 * SHAPE[1])
    maps = synthetic.coil_maps(N_COILS, fine, torch.complex128)
    k = torch.stack(
        [synthetic.coil_kspace(synthetic.phantom(fine, s / N_STATES), maps, SHAPE) for s in range(N_STATES)]
    )
    truth = torch.stack(
        [
            synthetic.fine_to_coarse(synthetic.phantom(fine, (p + 0.5) / N_PHASES), SHAPE)
            for p in range(N_PHASES)
        ]
    )
    rss = torch.linalg.vector_norm(synthetic.coil_maps(N_COILS, SHAPE), dim=0)
    return k, truth.abs(), rss


@cache
def raw_slice(acceleration: int) -> dict[str, torch.Tensor]:
    """Readouts of one slice in acquisition order, with line indices, times and R-waves."""
    states, _, _ = _states()
    ny, c = SHAPE[0], SHAPE[0] // 2
    imaging = set(range(c % acceleration, ny, acceleration))
    acs = set(range(c - N_ACS // 2, c + N_ACS // 2))
    order = sorted(imaging | acs)
    g = torch.Generator().manual_seed(acceleration)
    lines, ky, times = [], [], []
    n_tr = int(RR_S / TR_S)
    for beat, start in enumerate(range(0, len(order), VIEWS)):
        segment = order[start : start + VIEWS]
        for i in range(n_tr):
            line = segment[i % len(segment)]
            lines.append(states[int(i / n_tr * N_STATES), :, line, :])
            ky.append(line)
            times.append(beat * RR_S + i * TR_S)
    data = torch.stack(lines)
    noise = torch.complex(torch.randn(data.shape, generator=g), torch.randn(data.shape, generator=g))
    n_beats = math.ceil(len(order) / VIEWS)
    imaging_mask = torch.zeros(ny, dtype=torch.bool)
    imaging_mask[sorted(imaging)] = True
    calibration = torch.zeros(ny, dtype=torch.bool)
    calibration[sorted(acs)] = True
    return {
        "lines": data + 0.01 / math.sqrt(2) * noise.to(data.dtype),
        "ky": torch.tensor(ky),
        "times": torch.tensor(times, dtype=torch.float64),
        "r_waves": torch.arange(n_beats + 1, dtype=torch.float64) * RR_S,
        "imaging": imaging_mask,
        "calibration": calibration,
    }


def reconstruct_slice(
    raw: dict[str, torch.Tensor], method: str, acceleration: int, device: torch.device
) -> torch.Tensor:
    """From accumulated readouts to display-scaled magnitude frames ``(phases, y, x)`` (int32)."""
    beats = build_beat_table(raw["r_waves"], 20.0)
    binned = bin_lines(raw["lines"].to(device), raw["ky"], raw["times"], beats, N_PHASES, SHAPE[0])
    calib = unfold.time_averaged_calibration(binned.kspace, binned.sampled, raw["calibration"])
    if method == "grappa":
        images = unfold.grappa_unfold(
            binned.kspace, raw["imaging"], calib, acceleration, sampled=binned.sampled
        )
    else:
        maps = unfold.espirit_from_calibration(calib, SHAPE, 6, 0.02, 0.8)
        if method == "sense":
            images = unfold.sense_unfold(binned.kspace, binned.sampled, maps, 15, 4.0)
        elif method == "lowrank":
            images = unfold.low_rank_sparse_unfold(binned.kspace, binned.sampled, maps, 0.01, 0.003, 20)
        else:
            images = unfold.cs_unfold(binned.kspace, binned.sampled, maps, 0.01, 20, 5)
    magnitude = images[:, 0].abs()
    display = combine.to_display(magnitude, combine.display_scale(magnitude))
    synchronize(device)
    return display


@pytest.mark.parametrize(
    ("method", "acceleration"),
    [("grappa", 2), ("grappa", 4), ("sense", 2), ("sense", 4), ("cs", 4), ("lowrank", 4)],
)
def test_cine_slice_latency(benchmark: Any, device: torch.device, method: str, acceleration: int) -> None:
    raw = raw_slice(acceleration)
    rounds = 1 if (method in ("cs", "lowrank") and device.type == "cpu") else 3
    out = benchmark.pedantic(
        reconstruct_slice, args=(raw, method, acceleration, device), rounds=rounds, warmup_rounds=1
    )
    _, truth, rss = _states()
    benchmark.extra_info["nrmse"] = synthetic.nrmse(out.cpu().to(torch.float64), truth * rss, truth[0] > 0.2)
    full = torch.zeros((N_PHASES, N_COILS, *SHAPE), dtype=torch.complex64, device=device)

    def floor() -> None:
        ifftc(full)
        synchronize(device)

    record_ratio(benchmark, floor, "inverse FFT of every coil and frame of the slice", rounds=9)
    benchmark.extra_info["per_frame_ms"] = 1e3 * benchmark.stats.stats.median / N_PHASES


CLINICAL_EXAM = {
    "protocol": "cine", "n_slices": 1, "n_coils": N_COILS, "n_readout": SHAPE[1],
    "n_phase_encodes": SHAPE[0], "n_phases": N_PHASES, "n_calibration_lines": N_ACS,
}  # fmt: skip
BART_ITERATIONS, BART_L2 = 30, 0.01  # pics -i and -r; CG-SENSE runs the same number of iterations


@dataclass(frozen=True)
class SimulatedSlice:
    """One slice of ``hardware_sim.mr`` (clinical size) after the ``cine`` chain's own front stages.

    Attributes:
        context: the chain context (CPU, the exam's ISMRMRD header).
        raw: the accumulated slice (noise-whitened, oversampling removed) as the ``bin`` stage receives it.
        binned: the same slice after the chain's ``bin`` stage (what BART is given).
        reference: ``(phases, y, x)`` float64 |truth| · coil_rss at the phase centres (scoring only).
        body: ``(y, x)`` bool body mask of the truth file.
    """

    context: ChainContext
    raw: CineSliceRaw
    binned: CineSliceBinned
    reference: torch.Tensor
    body: torch.Tensor

    def __post_init__(self) -> None:
        if self.reference.shape != (self.binned.kspace.shape[0], *self.body.shape):
            raise ValueError("reference must be (phases, y, x) on the body mask's grid")


def sub_chain(chain: str, first: str, last: str | None = None, overrides: tuple[str, ...] = ()) -> ChainSpec:
    """The shipped ``chain`` cut to its stages ``first`` … ``last`` (inclusive; ``None`` = to the end)."""
    spec = load_chain(chain, overrides)
    names = [stage.name for stage in spec.stages]
    stop = len(names) if last is None else names.index(last) + 1
    return replace(spec, stages=spec.stages[names.index(first) : stop])


@cache
def simulated_slice(acceleration: int) -> SimulatedSlice:
    """Simulate the exam, run the ``cine`` chain up to accumulation, and once more its ``bin`` stage."""
    header, items, truth = simulated(tuple(sorted({**CLINICAL_EXAM, "acceleration": acceleration}.items())))
    context = ChainContext(chain_name="cine", header=header)
    copies = [_copy(i) for i in items]  # the noise stage whitens in place; the exam is cached
    raw = next(
        o
        for o in run_chain(sub_chain("cine", "noise", "accumulate"), copies, context)
        if isinstance(o, CineSliceRaw)
    )
    binned = next(
        o
        for o in run_chain(sub_chain("cine", "bin", "bin"), [raw], context)
        if isinstance(o, CineSliceBinned)
    )
    reference = torch.from_numpy(np.abs(truth.images[0]) * truth.coil_rss[0]).to(torch.float64)
    return SimulatedSlice(context, raw, binned, reference, torch.from_numpy(truth.body_mask[0]).bool())


def chain_images(chain: ChainSpec, sim: SimulatedSlice) -> torch.Tensor:
    """Run ``chain`` (from ``bin`` to ``image``, float32 output) on the slice → ``(phases, y, x)`` float64."""
    out = run_chain(chain, [sim.raw], sim.context)
    pixels = [im.data[0, 0] for im in out if isinstance(im, ismrmrd.Image)]
    return torch.from_numpy(np.stack(pixels).astype(np.float64))


def timed(fn: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    """Median wall time of ``rounds`` calls of ``fn`` and the last result."""
    samples, result = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


@pytest.mark.skipif(bart_executable() is None, reason="Debian's bart is not installed")
@pytest.mark.parametrize("acceleration", [2, 4])
def test_bart_reference(benchmark: Any, acceleration: int) -> None:
    """GRAPPA (``cine``) and CG-SENSE (``cine-sense``, BART's iterations) from the slice's accumulated
    readouts to its images, against ``bart ecalib -m1`` + ``bart pics -S -l2`` on the chain's binned k-space."""
    if acceleration == 4 and bench_profile() == "quick":
        pytest.skip("R = 4 runs in the full profile")
    sim, rounds = simulated_slice(acceleration), 1 if bench_profile() == "quick" else 3
    out = ("image.data_type=float32",)
    grappa_chain = sub_chain("cine", "bin", overrides=(*out, "unfold.method=grappa"))
    sense_chain = sub_chain(
        "cine-sense", "bin", overrides=(*out, f"unfold.sense_iterations={BART_ITERATIONS}")
    )
    grappa = benchmark.pedantic(chain_images, args=(grappa_chain, sim), rounds=3, warmup_rounds=1)
    sense_s, sense = timed(lambda: chain_images(sense_chain, sim), rounds)
    binned = sim.binned
    runs = [
        bart_cine_slice(binned.kspace, binned.sampled, binned.calibration, BART_L2, BART_ITERATIONS)
        for _ in range(rounds)
    ]
    bart_s = statistics.median(r.compute_s for r in runs)
    grappa_s = benchmark.stats.stats.median
    bart_images = torch.from_numpy(np.abs(runs[-1].images)).to(torch.float64)
    cs_runs: dict[str, tuple[float, torch.Tensor]] = {}  # compressed sensing, timed once (slow on CPU)
    for name, cs_method in (("cs", "temporal_tv"), ("lowrank", "low_rank_sparse")):
        cs_chain = sub_chain("cine-cs", "bin", overrides=(*out, f"unfold.cs_method={cs_method}"))
        cs_runs[name] = timed(partial(chain_images, cs_chain, sim), 1)
    info = benchmark.extra_info
    info.update(bart_s=bart_s, grappa_s=grappa_s, sense_s=sense_s, profile=bench_profile())
    info.update(ratio_grappa_to_bart=grappa_s / bart_s, ratio_sense_to_bart=sense_s / bart_s)
    info.update(bart_ecalib_s=statistics.median(r.ecalib_s for r in runs), bart_io_s=runs[-1].io_s)
    for name, (seconds, _) in cs_runs.items():
        info[f"{name}_s"], info[f"ratio_{name}_to_bart"] = seconds, seconds / bart_s
    images_by_method = {"grappa": grappa, "sense": sense, "bart": bart_images}
    images_by_method.update({name: images for name, (_, images) in cs_runs.items()})
    for name, images in images_by_method.items():
        info[f"nrmse_{name}"] = synthetic.nrmse(images, sim.reference, sim.body)
    info.update(torch_threads=torch.get_num_threads(), omp_num_threads=os.environ.get("OMP_NUM_THREADS"))
    logging.getLogger(__name__).info("BART comparison R=%d: %s", acceleration, info)
