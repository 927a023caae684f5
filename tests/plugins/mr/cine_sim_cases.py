"""Shared runner for the cine chains on the MR simulator (``hardware_sim.mr``), small sizes.

The chain sees only the ISMRMRD items and header; the truth file is read here, by the test, to score:
nRMSE = ‖a·|x̂| − |x|‖₂/‖x‖₂ inside the body mask at each phase centre, a the least-squares scale and
x = |truth image| · coil_rss (the chains' B1 combination uses maps normalised to Σ|C|² = 1, so their
images carry the coil root-sum-of-squares).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import ismrmrd
import numpy as np
import torch

from plugins.runtime.chain import load_chain
from plugins.runtime.items import Report
from plugins.runtime.pipeline import run_chain
from plugins.runtime.plugin import ChainContext
from tests.recon.cine import synthetic

SMALL = {
    "n_slices": 1,
    "n_coils": 8,
    "n_readout": 80,
    "n_phase_encodes": 72,
    "n_phases": 12,
    "n_calibration_lines": 24,
    "heart_rate_bpm": 90.0,
}


@dataclass(frozen=True)
class SimRun:
    """Outcome of one chain run on one simulated exam."""

    images: torch.Tensor  # (phases, y, x) float64 magnitudes as output by the chain
    reference: torch.Tensor  # (phases, y, x) |truth| · coil_rss
    body: torch.Tensor  # (y, x) bool
    truth: Any
    reports: tuple[dict[str, Any], ...]
    output: tuple[ismrmrd.Image, ...]  # every image the chain emitted (all slices)

    @property
    def nrmse(self) -> float:
        return synthetic.nrmse(self.images, self.reference, self.body)


@cache
def simulated(items_key: tuple[tuple[str, Any], ...]) -> tuple[Any, list[Any], Any]:
    """(header, items, truth) of a simulated exam, cached per configuration."""
    from hardware_sim.mr import MRExamConfig, simulate_exam

    exam = simulate_exam(MRExamConfig(**dict(items_key)))
    return exam.header, list(exam.items()), exam.truth


def run(chain: str, overrides: tuple[str, ...] = (), **config: Any) -> SimRun:
    """Run a shipped chain (float32 output) on the exam ``SMALL | config``."""
    import json

    header, items, truth = simulated(tuple(sorted({**SMALL, **config}.items())))
    items = [_copy(i) for i in items]  # the noise stage whitens in place
    spec = load_chain(chain, ("image.data_type=float32", *overrides))
    out = run_chain(spec, items, ChainContext(chain_name=chain, header=header))
    images = [o for o in out if isinstance(o, ismrmrd.Image)]
    pixels = torch.tensor(np.stack([im.data[0, 0] for im in images if im.slice == 0]).astype(np.float64))
    reference = torch.from_numpy(np.abs(truth.images[0]) * truth.coil_rss[0]).to(torch.float64)
    reports = tuple(json.loads(o.content) for o in out if isinstance(o, Report))
    return SimRun(
        pixels, reference, torch.from_numpy(truth.body_mask[0]).bool(), truth, reports, tuple(images)
    )


def _copy(item: Any) -> Any:
    if isinstance(item, ismrmrd.Acquisition):
        out = ismrmrd.Acquisition(item.getHead())
        out.data[:] = item.data
        return out
    return item


def noise_only_nrmse(noisy: SimRun, noise_free: SimRun) -> float:
    """The noise part of the error: ‖a_n·|x̂_noisy| − a_f·|x̂_noise-free|‖/‖x‖ (each with its own LS scale)."""
    m = noisy.body
    ref = noisy.reference[..., m]

    def scaled(x: torch.Tensor) -> torch.Tensor:
        v = x[..., m]
        return v * (v * ref).sum() / (v * v).sum()

    return float(
        torch.linalg.vector_norm(scaled(noisy.images) - scaled(noise_free.images))
        / torch.linalg.vector_norm(ref)
    )
