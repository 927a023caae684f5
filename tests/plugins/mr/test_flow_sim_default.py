"""Acceptance against the simulator: the default flow exam at 1.5 T and 3 T, no overrides.

Limits fixed before tuning (issue 14): the planned vessels found and labelled, Qp:Qs within 0.06,
aortic net flow within 5 % of the truth.  Measured 2026-12-04 at the defaults: Qp:Qs 1.02 (truth 1.00);
aortic net flow +13 % (79 ml against 70 ml), pulmonary +16 %.  The excess comes from the chain, not the
truth: partial volume and Gibbs ringing around the inflow-brightened blood (blood ≈ 8× the tissue signal
in systole), the retrospective binning's interpolation across the R-wave (systolic velocity leaks into
the last phase) and a background residual of ≈ 0.8 cm/s at the vessels.  The 5 % limit stays, as an
expected failure, until the flow chain corrects these; the 15 % bound guards against regressions.
"""

from __future__ import annotations

import os

import pytest

from tests.plugins.mr.flow_sim_helpers import run_flow

SLOW = pytest.mark.skipif(
    os.environ.get("RECONSTREAM_SLOW_TESTS") != "1",
    reason="a second default-size flow exam (≈ 4 min on 2 cores); set RECONSTREAM_SLOW_TESTS=1",
)
FIELDS = [
    pytest.param(1.5, marks=pytest.mark.timeout(1200)),
    pytest.param(3.0, marks=[SLOW, pytest.mark.slow]),
]


@pytest.mark.parametrize("field_t", FIELDS)
def test_planned_vessels_found_labelled_and_qp_qs(field_t: float) -> None:
    run = run_flow(field_strength_t=field_t)
    truth = run.truth
    aorta = run.vessel("ascending_aorta")  # found and labelled by the chain, not taken from the truth
    pulmonary = run.vessel("pulmonary_artery")
    assert (aorta["slice_index"], pulmonary["slice_index"]) == (0, 1)  # the planned planes
    assert run.report["qp_qs"] == pytest.approx(truth.qp_qs, abs=0.06)
    assert aorta["volumes"]["net_ml"] == pytest.approx(truth.aorta_net_ml, rel=0.15)
    assert pulmonary["volumes"]["net_ml"] == pytest.approx(truth.pa_stroke_ml, rel=0.2)
    assert aorta["volumes"]["peak_velocity_cm_per_s"] == pytest.approx(
        truth.aorta_peak_velocity_cm_per_s, rel=0.1
    )
    assert run.report["rr_s"] == pytest.approx(float(truth.rr_s.mean()), rel=0.02)
    assert run.n_images == 2 * 2 * truth.phase_fractions.size  # magnitude + velocity, two planes
    assert set(run.reports) >= {"flow_report.json", "flow_report.csv", "flow_report.png"}


@pytest.mark.timeout(1200)
@pytest.mark.xfail(strict=True, reason="flow chain overestimates by ≈ 13 % at the defaults (see module doc)")
def test_aortic_net_flow_within_5_percent_at_defaults() -> None:
    run = run_flow(field_strength_t=1.5)
    assert run.vessel("ascending_aorta")["volumes"]["net_ml"] == pytest.approx(
        run.truth.aorta_net_ml, rel=0.05
    )
