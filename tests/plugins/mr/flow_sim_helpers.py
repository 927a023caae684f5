"""Run the shipped ``flow`` chain on the simulator's default flow exam and collect what the tests compare.

The exam is ``reconstream simulate mr --protocol flow`` at its defaults (no overrides): two
phase-contrast planes planned perpendicular to the ascending aorta (slice 0) and to the pulmonary trunk
(slice 1) just above their valves, 16 coils, R = 2, 192 × 156, 25 phases, the physical noise model.
Tests pass only the settings they are about (field strength, VENC, shunt, regurgitation).

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

BASE = {"protocol": "flow"}


@dataclass(frozen=True)
class FlowRun:
    """Outputs of one chain run and the truth to compare with."""

    report: dict[str, Any]
    velocity_cm_per_s: np.ndarray  # (slices, phases, y, x) from the chain's velocity images
    offset_cm_per_s: np.ndarray  # (slices, y, x) background offset the chain subtracted (QC images)
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
        key=lambda o: (o.slice, o.phase),
    )
    offset = sorted(
        (
            o
            for o in outputs
            if isinstance(o, ismrmrd.Image) and meta_value(o, "PC_role") == "background_offset"
        ),
        key=lambda o: o.slice,
    )
    n_slices = len(offset)
    return FlowRun(
        report=json.loads(reports["flow_report.json"]),
        velocity_cm_per_s=np.stack([np.asarray(o.data)[0, 0] for o in velocity]).reshape(
            n_slices, -1, *np.asarray(velocity[0].data).shape[-2:]
        ),
        offset_cm_per_s=np.stack([np.asarray(o.data)[0, 0] for o in offset]),
        truth=exam.truth,
        n_images=sum(
            isinstance(o, ismrmrd.Image) and meta_value(o, "PC_role") != "background_offset" for o in outputs
        ),
        reports=reports,
    )
