"""Per-slice latency of the tissue-characterisation chains (issue 22) at the clinical size, CPU and CUDA.

Data: one default exam of ``hardware_sim.mr`` per protocol (``lge``, ``molli``, ``t2map``, ``t2star``: one
mid-ventricular short-axis slice, 192 × 156 recon matrix, 16 coils, R = 2 with embedded calibration lines),
simulated once per process and taken through the chain's own front stages (noise whitening, oversampling
removal) outside the timed part.  Latency = from the slice's last readout (every other readout already
accumulated by ``mapping_series``) to its last output image: transfer to the device, FFT/GRAPPA of every
image, the phase-preserving coil combination, the per-pixel fit (MOLLI: three-parameter fit, Look-Locker
and Bloch-simulated sequence correction, SD map; T2/T2*: exponential fit and SD map; LGE: PSIR and
magnitude IR) and the output images.  Fresh plugin instances each round (nothing is cached between slices).

``ratio`` = latency / one 2-D FFT of every coil image of every image of the slice (the reconstruction's
floor), measured in the same run.  The ``t1-molli`` CPU case carries the ratio budget (budgets.toml).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m pytest benchmarks/test_bench_tissue.py --benchmark-only``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import cache
from typing import Any

import ismrmrd
import pytest
import torch

from benchmarks.conftest import record_ratio, synchronize
from plugins.runtime.chain import ChainSpec, load_chain
from plugins.runtime.pipeline import build_plugins, run_chain
from plugins.runtime.plugin import ChainContext, Plugin

PROTOCOLS = {"lge-psir": "lge", "t1-molli": "molli", "t2-map": "t2map", "t2star-map": "t2star"}


def _stages(chain: str, first: str, last: str | None = None) -> ChainSpec:
    spec = load_chain(chain)
    names = [stage.name for stage in spec.stages]
    stop = len(names) if last is None else names.index(last) + 1
    return replace(spec, stages=spec.stages[names.index(first) : stop])


@cache
def _front(chain: str) -> tuple[Any, tuple[ismrmrd.Acquisition, ...]]:
    """The exam's header and its readouts after the chain's noise and oversampling stages (default exam)."""
    from hardware_sim.mr import MRExamConfig, simulate_exam

    exam = simulate_exam(MRExamConfig(protocol=PROTOCOLS[chain]))  # type: ignore[arg-type]
    context = ChainContext(chain, header=exam.header)
    out = run_chain(_stages(chain, "noise", "oversampling"), exam.items(), context)
    readouts = tuple(o for o in out if isinstance(o, ismrmrd.Acquisition))
    assert readouts[-1].is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE)
    return exam.header, readouts


def _loaded(chain: str, device: torch.device) -> tuple[list[Plugin], ismrmrd.Acquisition]:
    """Fresh ``mapping_series`` + fit plugins with every readout but the last accumulated."""
    header, readouts = _front(chain)
    plugins = build_plugins(_stages(chain, "images"), ChainContext(chain, device=device, header=header))
    for acq in readouts[:-1]:
        list(plugins[0].process(acq))
    return plugins, readouts[-1]


def _last_readout_to_maps(
    plugins: list[Plugin], last: ismrmrd.Acquisition, device: torch.device
) -> list[Any]:
    items: list[Any] = list(plugins[0].process(last))
    for plugin in plugins[1:]:
        items = [out for item in items for out in plugin.process(item)]
    synchronize(device)
    return items


def _fft_reference(chain: str, device: torch.device) -> Callable[[], None]:
    """One inverse 2-D FFT of k-space shaped like the slice's (images, coils, ky, kx)."""
    _, readouts = _front(chain)
    n_images = 1 + max(int(a.idx.contrast) for a in readouts)
    n_ky = 1 + max(int(a.idx.kspace_encode_step_1) for a in readouts)
    n_coils, n_x = readouts[0].data.shape
    k = torch.randn(n_images, n_coils, n_ky, n_x, dtype=torch.complex64, device=device)

    def reference() -> None:
        torch.fft.ifft2(k)
        synchronize(device)

    return reference


@pytest.mark.parametrize("chain", list(PROTOCOLS))
def test_tissue_slice_latency(benchmark: Any, chain: str, device: torch.device) -> None:
    def setup() -> tuple[tuple[list[Plugin], ismrmrd.Acquisition, torch.device], dict[str, Any]]:
        plugins, last = _loaded(chain, device)
        return (plugins, last, device), {}

    outputs = benchmark.pedantic(_last_readout_to_maps, setup=setup, rounds=5, warmup_rounds=1)
    assert sum(isinstance(o, ismrmrd.Image) for o in outputs) == 2
    record_ratio(benchmark, _fft_reference(chain, device), "2-D FFT of every coil image of the slice")
