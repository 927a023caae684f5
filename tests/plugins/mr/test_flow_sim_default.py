"""Acceptance against the simulator: the default aortic series (settings in flow_sim_helpers)."""

from __future__ import annotations

import pytest

from tests.plugins.mr.flow_sim_helpers import residual_offset_cm_per_s, run_flow


def test_net_flow_and_peak_velocity_of_the_aorta() -> None:
    run = run_flow()
    truth = run.truth
    aorta = run.vessel("ascending_aorta")  # found and labelled by the chain, not taken from the truth
    assert aorta["volumes"]["net_ml"] == pytest.approx(truth.aorta_net_ml, rel=0.03)
    assert aorta["volumes"]["peak_velocity_cm_per_s"] == pytest.approx(
        truth.aorta_peak_velocity_cm_per_s, rel=0.05
    )
    assert run.report["rr_s"] == pytest.approx(float(truth.rr_s.mean()), rel=0.02)
    assert run.n_images == 2 * 20


def test_residual_background_offset_at_the_vessels() -> None:
    """Below 0.3 cm/s (Gatehouse 2010: 0.6 cm/s is barely acceptable), against the simulated eddy field."""
    run = run_flow()
    for mask in (run.truth.aorta_mask[0], run.truth.pa_mask[0]):
        assert abs(float(run.offset_cm_per_s[mask].mean())) > 1.0  # a real offset was there to remove
        assert abs(residual_offset_cm_per_s(run, mask)) < 0.3


def test_three_vessels_found_and_labelled() -> None:
    run = run_flow()
    labels = {v["label"] for v in run.report["vessels"]}
    assert {"ascending_aorta", "pulmonary_artery", "descending_aorta"} <= labels
    assert run.report["qp_qs"] == pytest.approx(run.truth.qp_qs, abs=0.06)
    assert set(run.reports) >= {"flow_report.json", "flow_report.csv", "flow_report.png"}
