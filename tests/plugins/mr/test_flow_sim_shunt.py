"""Acceptance against the simulator: aliasing (VENC below the peak velocity), shunt and regurgitation."""

from __future__ import annotations

import pytest

from tests.plugins.mr.flow_sim_helpers import run_flow


def test_aliased_series_is_unwrapped() -> None:
    run = run_flow(venc_cm_per_s=60.0)  # aortic peak ≈ 77 cm/s, pulmonary ≈ 89 cm/s: both alias
    truth = run.truth
    assert truth.aorta_peak_velocity_cm_per_s > 60.0 and truth.pa_peak_velocity_cm_per_s > 60.0
    assert run.vessel("ascending_aorta")["volumes"]["net_ml"] == pytest.approx(truth.aorta_net_ml, rel=0.05)
    assert run.vessel("pulmonary_artery")["volumes"]["net_ml"] == pytest.approx(truth.pa_stroke_ml, rel=0.05)
    peak = run.vessel("ascending_aorta")["volumes"]["peak_velocity_cm_per_s"]
    assert peak == pytest.approx(truth.aorta_peak_velocity_cm_per_s, rel=0.05)


def test_qp_qs_and_regurgitant_fraction() -> None:
    run = run_flow(shunt_qp_qs=1.5, aortic_regurgitant_fraction=0.2)
    truth = run.truth
    assert run.report["qp_qs"] == pytest.approx(truth.qp_qs, abs=0.06)
    rf_truth = 100.0 * truth.aorta_regurgitant_ml / truth.aorta_forward_ml
    rf = run.vessel("ascending_aorta")["volumes"]["regurgitant_fraction_percent"]
    assert abs(rf - rf_truth) < 3.0
