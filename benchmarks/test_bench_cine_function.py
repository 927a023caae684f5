"""Latency of the cine function analysis after the last image of a 12-slice × 25-phase short-axis stack.

Input: the synthetic ring stack of ``tests/recon/cine/function_phantom.py`` (156 × 192, 12 slices, 25
phases, every slice with LV, myocardium and RV) as the uint16 ``cine_image`` output the plugin buffers.
Measured: :meth:`CineFunctionPlugin.finish` – stack assembly, segmentation of all 300 images, volumes,
JSON/CSV/volume-curve PNG – i.e. what runs after the last image arrives (the issue's budget: ≤ 1 s on
CPU; ``extra_info["process_cpu_s"]`` holds the process CPU time of one call, which a busy machine does not
inflate); a second benchmark adds the 12 contour GIFs.  The ratio reference is one connected-component
labelling plus one binary erosion of every image of the stack (the analysis is morphology-bound).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m pytest benchmarks/test_bench_cine_function.py --benchmark-only``.
"""

from __future__ import annotations

import time
from typing import Any

import ismrmrd
import numpy as np
from scipy import ndimage

from benchmarks.conftest import record_ratio
from plugins.mr.cine_function import CineFunctionConfig, CineFunctionPlugin
from plugins.runtime.plugin import ChainContext
from tests.recon.cine.function_phantom import ring_images, ring_stack

N_SLICES, N_PHASES = 12, 25


def _images() -> tuple[list[ismrmrd.Image], np.ndarray]:
    stack = ring_stack(n_slices=N_SLICES, n_phases=N_PHASES)
    return ring_images(stack), stack.images


def _loaded_plugin(images: list[ismrmrd.Image], gifs: bool) -> CineFunctionPlugin:
    plugin = CineFunctionPlugin(CineFunctionConfig(contour_gifs=gifs), ChainContext("cine-function"))
    for image in images:
        list(plugin.process(image))
    return plugin


def _reference(stack: np.ndarray) -> None:
    for frame in stack.reshape(-1, *stack.shape[-2:]):
        bright = frame > 0.6
        ndimage.label(bright)
        ndimage.binary_erosion(bright)


def _run(benchmark: Any, gifs: bool) -> None:
    images, stack = _images()

    def setup() -> tuple[tuple[CineFunctionPlugin], dict[str, Any]]:
        return (_loaded_plugin(images, gifs),), {}

    reports = benchmark.pedantic(lambda plugin: list(plugin.finish()), setup=setup, rounds=5, warmup_rounds=1)
    assert any(r.filename == "cine_function.json" for r in reports)
    record_ratio(benchmark, lambda: _reference(stack), "label + erosion of every image of the stack")
    plugin = _loaded_plugin(images, gifs)
    start = time.process_time()
    list(plugin.finish())
    benchmark.extra_info["process_cpu_s"] = time.process_time() - start  # robust to a busy machine


def test_cine_function_after_last_image(benchmark) -> None:  # type: ignore[no-untyped-def]
    _run(benchmark, gifs=False)


def test_cine_function_with_contour_gifs(benchmark) -> None:  # type: ignore[no-untyped-def]
    _run(benchmark, gifs=True)
