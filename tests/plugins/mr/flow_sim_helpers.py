"""Run the shipped ``flow`` chain on a simulated exam and collect what the acceptance tests compare.

Simulator settings shared by the acceptance tests (small sizes, fixed before tuning):

* 1 axial slice through the great vessels, 8 coils, R = 2 with 24 calibration lines, a 128 × 104 recon
  matrix (≈ 3 mm pixels: ≈ 9 pixels across the aorta), 20 cardiac phases.
* ``noise_std = 2.5e-4``: static-tissue SNR ≈ 40 in the reconstructed magnitude, a clinical level.  The
  simulator's default (4e-3) gives a tissue SNR ≈ 1.6 for this GRE flow sequence, where no velocity
  can be measured (phase noise ≈ 0.9 rad); see the report of this work.
* ``views_per_segment = 4``: 40 ms acquisition window per segment (two encodings × 4 views × 5 ms);
  the default 8 (80 ms) smears the systolic peak into ghosts outside the vessel.

The chain never sees the truth: the vessels are found and labelled by the report plugin; the truth is
only read here, to compare.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import ismrmrd
import numpy as np

from hardware_sim.mr.config import MRExamConfig
from hardware_sim.mr.exam import simulate_exam
from plugins.mr.flow_common import meta_value
from plugins.runtime.chain import load_chain
from plugins.runtime.items import Report
from plugins.runtime.pipeline import run_chain
from plugins.runtime.plugin import ChainContext

BASE = {
    "protocol": "flow",
    "n_slices": 1,
    "n_coils": 8,
    "acceleration": 2,
    "n_calibration_lines": 24,
    "n_readout": 128,
    "n_phase_encodes": 104,
    "n_phases": 20,
    "noise_std": 2.5e-4,
    "views_per_segment": 4,
    "seed": 0,
}


@dataclass(frozen=True)
class FlowRun:
    """Outputs of one chain run and the truth to compare with."""

    report: dict[str, Any]
    velocity_cm_per_s: np.ndarray  # (phases, y, x) from the chain's velocity images
    offset_cm_per_s: np.ndarray  # (y, x) background offset the chain subtracted (QC image)
    truth: Any
    n_images: int
    reports: dict[str, bytes]

    def vessel(self, label: str) -> dict[str, Any]:
        found = [v for v in self.report["vessels"] if v["label"] == label]
        assert len(found) == 1, (
            f"report has {len(found)} vessels labelled {label}: {[v['label'] for v in self.report['vessels']]}"
        )
        return found[0]


@cache
def run_flow(**overrides: Any) -> FlowRun:
    """Simulate (BASE updated with ``overrides``) and run the shipped ``flow`` chain; cached per settings."""
    exam = simulate_exam(MRExamConfig(**{**BASE, **overrides}))
    chain = load_chain("flow", {"background.emit_offset_image": True})
    outputs = run_chain(chain, exam.items(), ChainContext("flow", header=exam.header))
    reports = {o.filename: o.content for o in outputs if isinstance(o, Report)}
    velocity = sorted(
        (o for o in outputs if isinstance(o, ismrmrd.Image) and meta_value(o, "PC_role") == "velocity"),
        key=lambda o: o.phase,
    )
    offset = [
        o for o in outputs if isinstance(o, ismrmrd.Image) and meta_value(o, "PC_role") == "background_offset"
    ]
    return FlowRun(
        report=json.loads(reports["flow_report.json"]),
        velocity_cm_per_s=np.stack([np.asarray(o.data)[0, 0] for o in velocity]),
        offset_cm_per_s=np.asarray(offset[0].data)[0, 0],
        truth=exam.truth,
        n_images=sum(
            isinstance(o, ismrmrd.Image) and meta_value(o, "PC_role") != "background_offset" for o in outputs
        ),
        reports=reports,
    )


def residual_offset_cm_per_s(run: FlowRun, mask: np.ndarray) -> float:
    """Mean over ``mask`` of (subtracted offset − true eddy-current velocity offset), cm/s.

    The truth holds the eddy-current phase difference (encoded − reference); with ``flow_direction``
    +1 it adds ``VENC · φ / π`` to the velocity.
    """
    venc = float(run.report["venc_cm_per_s"]) * int(run.report["flow_direction"])
    true_offset = venc * run.truth.eddy_phase_rad[0] / np.pi
    return float((run.offset_cm_per_s - true_offset)[mask].mean())
