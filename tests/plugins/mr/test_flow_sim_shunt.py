"""Acceptance against the simulator: a shunt with aortic regurgitation, acquired with a VENC below the
peak velocities (both vessels alias), on the default flow planes at a reduced matrix and coil count.

Measured 2026-12-04 (after the flow chain's binning and background changes of issue 14): aortic forward
+7 %, net +9 %, regurgitant fraction 18.3 % against 20 %, pulmonary net +3 %, Qp:Qs 1.42 against 1.50;
at the default matrix and coil count: aortic net +1.9 %, regurgitant fraction 18.0 %, pulmonary net
+12 %, Qp:Qs 1.65.  Peaks (the unwrapping), the regurgitant fraction and the 20 % bound on net flows
hold; Qp:Qs misses its 0.06 limit in this aliased high-flow case (an expected failure until the
pulmonary overestimate with aliasing is understood).
"""

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
    assert run.vessel("ascending_aorta")["volumes"]["net_ml"] == pytest.approx(truth.aorta_net_ml, rel=0.2)
    assert run.vessel("pulmonary_artery")["volumes"]["net_ml"] == pytest.approx(truth.pa_stroke_ml, rel=0.2)


@pytest.mark.xfail(strict=True, reason="Qp:Qs 1.42 against 1.50 (measured 2026-12-04, see module doc)")
def test_qp_qs_with_shunt_and_regurgitation() -> None:
    run = run_flow(**PATHOLOGY)
    assert run.report["qp_qs"] == pytest.approx(run.truth.qp_qs, abs=0.06)


def test_regurgitant_fraction_within_3_points() -> None:
    run = run_flow(**PATHOLOGY)
    truth = run.truth
    rf_truth = 100.0 * truth.aorta_regurgitant_ml / truth.aorta_forward_ml
    rf = run.vessel("ascending_aorta")["volumes"]["regurgitant_fraction_percent"]
    assert abs(rf - rf_truth) < 3.0
