"""Acceptance against the simulator: a shunt with aortic regurgitation, acquired with a VENC below the
peak velocities (both vessels alias), on the default flow planes at a reduced matrix and coil count.  Net flows carry the default
exam's known overestimate (see test_flow_sim_default), so they are bounded at 20 %; peaks (the
unwrapping) and Qp:Qs keep their limits; the regurgitant fraction misses its 3-point limit (an
expected failure until the flow chain's forward-flow bias is fixed)."""

from __future__ import annotations

import pytest

from tests.plugins.mr.flow_sim_helpers import run_flow

pytestmark = pytest.mark.timeout(1200)

PATHOLOGY = {
    "shunt_qp_qs": 1.5,
    "aortic_regurgitant_fraction": 0.2,
    "venc_cm_per_s": 80.0,
    # reduced from the defaults to keep CI short (the defaults are tested in test_flow_sim_default)
    "n_coils": 8,
    "n_readout": 128,
    "n_phase_encodes": 104,
    "n_phases": 20,
}


def test_aliased_series_is_unwrapped() -> None:
    run = run_flow(**PATHOLOGY)
    truth = run.truth
    assert truth.aorta_peak_velocity_cm_per_s > 80.0 and truth.pa_peak_velocity_cm_per_s > 80.0
    for label, peak in (
        ("ascending_aorta", truth.aorta_peak_velocity_cm_per_s),
        ("pulmonary_artery", truth.pa_peak_velocity_cm_per_s),
    ):
        assert run.vessel(label)["volumes"]["peak_velocity_cm_per_s"] == pytest.approx(peak, rel=0.05)
    # measured 2026-12-04: aortic net +16 %, pulmonary +15 % (the default exam's known overestimate)
    assert run.vessel("ascending_aorta")["volumes"]["net_ml"] == pytest.approx(truth.aorta_net_ml, rel=0.2)
    assert run.vessel("pulmonary_artery")["volumes"]["net_ml"] == pytest.approx(truth.pa_stroke_ml, rel=0.2)


def test_qp_qs_with_shunt_and_regurgitation() -> None:
    run = run_flow(**PATHOLOGY)
    assert run.report["qp_qs"] == pytest.approx(run.truth.qp_qs, abs=0.06)


@pytest.mark.xfail(strict=True, reason="regurgitant fraction 16.5 % against 20 % (measured 2026-12-04)")
def test_regurgitant_fraction_within_3_points() -> None:
    run = run_flow(**PATHOLOGY)
    truth = run.truth
    rf_truth = 100.0 * truth.aorta_regurgitant_ml / truth.aorta_forward_ml
    rf = run.vessel("ascending_aorta")["volumes"]["regurgitant_fraction_percent"]
    assert abs(rf - rf_truth) < 3.0
