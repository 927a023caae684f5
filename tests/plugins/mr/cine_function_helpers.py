"""Run the shipped ``cine-function`` chain on a simulated short-axis cine exam and compare with the truth.

The exam is ``reconstream simulate mr --protocol cine`` (11 short-axis slices from the mitral annulus to
the apex, 25 phases, bSSFP, the physical noise model) with only the settings a test is about.  The chain
never sees the truth; the truth is read here, to compare: volumes against ``lv_volume_stack_ml`` /
``rv_volume_stack_ml`` (disc summation of the truth masks over the planned stack) at the truth's ED and
ES phases, LV mass against ``lv_mass_g``, Dice of the segmentation behind the report (label images) against the truth masks at
the truth's end-diastole.
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
from plugins.mr.cine_function import CineFunctionConfig, CineFunctionPlugin
from plugins.runtime.chain import load_chain
from plugins.runtime.items import Report
from plugins.runtime.pipeline import run_chain
from plugins.runtime.plugin import ChainContext

LABEL_SERIES = 20


@dataclass(frozen=True)
class FunctionRun:
    """The chain's report, label images (S, P, Y, X) uint16 and the exam's truth."""

    report: dict[str, Any]
    labels: np.ndarray
    truth: Any
    reports: dict[str, bytes]


@cache
def run_function(flow_overrides: tuple[tuple[str, Any], ...] | None = None, **overrides: Any) -> FunctionRun:
    """Simulate a cine exam (``overrides``) and run the shipped ``cine-function`` chain as it is; with
    ``flow_overrides``, a flow exam of the same session is simulated, run through the shipped ``flow``
    chain, and its report given to the analysis as a second input."""
    exam = simulate_exam(MRExamConfig(protocol="cine", **overrides))
    extras: dict[str, Any] = {}
    if flow_overrides is not None:
        flow_exam = simulate_exam(MRExamConfig(protocol="flow", **dict(flow_overrides)))
        flow_out = run_chain(
            load_chain("flow", {}), flow_exam.items(), ChainContext("flow", header=flow_exam.header)
        )
        flow_json = next(
            o.content for o in flow_out if isinstance(o, Report) and o.filename == "flow_report.json"
        )
        extras["flow_report"] = json.loads(flow_json)
    chain = load_chain("cine-function")  # fully shipped defaults
    outputs = run_chain(chain, exam.items(), ChainContext("cine-function", header=exam.header, extras=extras))
    reports = {o.filename: o.content for o in outputs if isinstance(o, Report)}
    report = json.loads(reports["cine_function.json"])
    return FunctionRun(report, _labels_of(outputs, exam.header, report), exam.truth, reports)


def _labels_of(outputs: list[Any], header: Any, report: dict[str, Any]) -> np.ndarray:
    """The segmentation behind the report: the plugin (shipped settings, with label images on, which
    changes nothing else) run again over the chain's own cine images."""
    images = [o for o in outputs if isinstance(o, ismrmrd.Image) and o.image_series_index == 1]
    plugin = CineFunctionPlugin(
        CineFunctionConfig(emit_label_images=True, contour_gifs=False), ChainContext("x", header=header)
    )
    again = list(plugin.run(iter(images)))
    label_images = sorted(
        (o for o in again if isinstance(o, ismrmrd.Image) and o.image_series_index == LABEL_SERIES),
        key=lambda o: (o.slice, o.phase),
    )
    replay = json.loads(
        next(o.content for o in again if isinstance(o, Report) and o.filename.endswith(".json"))
    )
    assert replay["lv"]["edv_ml"] == report["lv"]["edv_ml"]  # the same analysis as in the chain
    n_slices = 1 + max(o.slice for o in label_images)
    return np.stack([np.asarray(o.data)[0, 0] for o in label_images]).reshape(
        n_slices, -1, *np.asarray(label_images[0].data).shape[-2:]
    )


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * (a & b).sum() / max(int(a.sum() + b.sum()), 1))


def measured(run: FunctionRun) -> dict[str, float]:
    """Every compared figure: relative volume errors (%), EF errors (points), mass error (%), Dice at the
    truth's ED, ED/ES phase distances (cyclic)."""
    t, r = run.truth, run.report
    ed, es = int(t.end_diastolic_phase), int(t.end_systolic_phase)
    lv, rv = t.lv_volume_stack_ml, t.rv_volume_stack_ml
    n = lv.size

    def ef(v: np.ndarray) -> float:
        return float(100.0 * (v[ed] - v[es]) / v[ed])

    def cyclic(a: int, b: int) -> int:
        return min((a - b) % n, (b - a) % n)

    out = {
        "lv_edv_err_pct": 100.0 * (r["lv"]["edv_ml"] / lv[ed] - 1.0),
        "lv_esv_err_pct": 100.0 * (r["lv"]["esv_ml"] / lv[es] - 1.0),
        "rv_edv_err_pct": 100.0 * (r["rv"]["edv_ml"] / rv[ed] - 1.0),
        "rv_esv_err_pct": 100.0 * (r["rv"]["esv_ml"] / rv[es] - 1.0),
        "lv_ef_err_points": r["lv"]["ef_percent"] - ef(lv),
        "rv_ef_err_points": r["rv"]["ef_percent"] - ef(rv),
        "lv_mass_err_pct": 100.0 * (r["lv_mass_g"] / t.lv_mass_g - 1.0),
        "dice_lv_ed": _dice(run.labels[:, ed] == 1, t.lv_mask[:, ed]),
        "dice_rv_ed": _dice(run.labels[:, ed] == 3, t.rv_mask[:, ed]),
        "dice_myo_ed": _dice(run.labels[:, ed] == 2, t.lv_myocardium_mask[:, ed]),
        "ed_phase_distance": cyclic(r["end_diastolic_phase"], ed),
        "es_phase_distance": cyclic(r["end_systolic_phase"], es),
    }
    return out


def assert_issue_limits(run: FunctionRun) -> None:
    """The issue's limits (fixed before tuning): volumes 5 %, EF 3 points, mass 10 %, Dice 0.90 blood
    pools / 0.80 myocardium at ED, ED/ES within one phase, no failed slice."""
    m = measured(run)
    text = ", ".join(f"{k} {v:.3g}" for k, v in m.items())
    for key in ("lv_edv_err_pct", "lv_esv_err_pct", "rv_edv_err_pct", "rv_esv_err_pct"):
        assert abs(m[key]) <= 5.0, f"{key}: {text}"
    for key in ("lv_ef_err_points", "rv_ef_err_points"):
        assert abs(m[key]) <= 3.0, f"{key}: {text}"
    assert abs(m["lv_mass_err_pct"]) <= 10.0, text
    assert min(m["dice_lv_ed"], m["dice_rv_ed"]) >= 0.90, text
    assert m["dice_myo_ed"] >= 0.80, text
    assert m["ed_phase_distance"] <= 1 and m["es_phase_distance"] <= 1, text
    assert run.report["failed_slices"] == [], text
