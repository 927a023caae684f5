"""Acceptance of the ``cine-function`` chain against the simulator's truth (issue 16).

Limits fixed before tuning (from the issue): LV and RV EDV and ESV within 5 % of the disc summation of
the truth masks over the planned stack (at the truth's ED/ES), EF within 3 points, LV mass within 10 %,
Dice ≥ 0.90 for the blood pools and ≥ 0.80 for the LV myocardium at ED, ED/ES within one phase; the
mitral regurgitant volume (LV SV − aortic forward volume of a flow series of the same session) within
10 ml.  The segmentation was tuned on seed 0 at 1.5 T only (the default exam, kept here at fully shipped
defaults); held-out seeds, 3 T, other heart rates and the disease cases run in the slow set
(``RECONSTREAM_SLOW_TESTS=1``; each exam ≈ 5 min on 2 cores).

Measured 2026-12-04 (errors against the stack truth; Dice at the truth's ED; LV mass against lv_mass_g):
seed 0 1.5 T (tuning): LV EDV +0.6 %, ESV +1.2 %, RV EDV −0.3 %, ESV −1.8 %, EF −0.2 / +0.7 points, mass
−1.2 %, Dice LV 0.992, RV 0.984, myocardium 0.900; seed 1 1.5 T: +0.7 / +1.0 / +1.4 / +0.9 %, EF −0.1 /
+0.2, mass −3.5 %, Dice 0.990 / 0.980 / 0.893; seed 1 3 T: +0.7 / −0.5 / +1.1 / +0.6 %, EF +0.5 / +0.2,
mass −3.7 %, Dice 0.991 / 0.981 / 0.923; dilated (seed 3): +0.4 / +0.3 / +2.3 / −0.7 %, EF 30.2 % (truth
30.1), mass +1.6 %, Dice 0.993 / 0.977 / 0.933; 90 bpm (seed 5): +0.9 / +1.4 / +1.1 / +0.3 %, mass
−3.1 %, Dice 0.990 / 0.980 / 0.895; mitral regurgitation 30 ml (seed 4): +0.2 / +1.2 / +1.0 / −0.4 %,
regurgitant volume 27.9 ml (aortic forward 73.2 ml from the flow chain); hypertrophic (seed 6, held out
throughout): −0.1 / +0.5 / +1.6 / −3.8 %, EF −0.2 / +2.5 points, mass −6.3 %, Dice 0.994 / 0.979 / 0.924;
seed 2 3 T (held out throughout): +0.5 / −0.3 / +0.6 / +0.5 %, EF +0.3 / +0.1, mass −1.9 %, Dice 0.992 /
0.982 / 0.923.
ED/ES within one phase in all.
Two rules were changed after validation and those exams are no longer held out: end-diastole on a flat
plateau (dilated exam: the bare maximum was 8 phases off) and the LV seed score (90 bpm: the RV was
taken for the LV).
"""

from __future__ import annotations

import os

import pytest

from tests.plugins.mr.cine_function_helpers import assert_issue_limits, measured, run_function

SLOW = [
    pytest.mark.skipif(
        os.environ.get("RECONSTREAM_SLOW_TESTS") != "1",
        reason="a further default-size cine exam (≈ 5 min on 2 cores); set RECONSTREAM_SLOW_TESTS=1",
    ),
    pytest.mark.slow,
    pytest.mark.timeout(2400),
]


@pytest.mark.timeout(2400)  # ≈ 6 min on an idle 2-core VM; 20 min were seen under parallel load
def test_default_exam_at_shipped_defaults() -> None:
    """``simulate mr --protocol cine`` with no overrides through the shipped chain (the tuning exam)."""
    run = run_function()
    assert_issue_limits(run)
    n_slices = run.truth.lv_mask.shape[0]
    expected = {"cine_function.json", "cine_function.csv", "cine_function_volumes.png"}
    expected |= {f"cine_function_slice_{s:02d}.gif" for s in range(n_slices)}
    assert set(run.reports) >= expected
    assert run.report["bsa_m2"] == pytest.approx((175.0 * 75.0 / 3600.0) ** 0.5)
    assert run.report["indexed"]["lv_edv_ml_per_m2"] == pytest.approx(
        run.report["lv"]["edv_ml"] / run.report["bsa_m2"]
    )
    assert [s["slice"] for s in run.report["slices"]] == list(range(n_slices))
    assert run.report["flow"] is None


@pytest.mark.parametrize(
    ("seed", "field_t"),
    [
        pytest.param(1, 1.5, marks=SLOW),
        pytest.param(1, 3.0, marks=SLOW),
        pytest.param(2, 3.0, marks=SLOW),
    ],
)
def test_held_out_seeds_and_fields(seed: int, field_t: float) -> None:
    assert_issue_limits(run_function(seed=seed, field_strength_t=field_t))


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"seed": 3, "heart_condition": "dilated"}, marks=SLOW, id="dilated-low-ef"),
        pytest.param({"seed": 6, "heart_condition": "hypertrophic"}, marks=SLOW, id="hypertrophic"),
        pytest.param({"seed": 5, "heart_rate_bpm": 90.0}, marks=SLOW, id="90-bpm"),
    ],
)
def test_disease_and_heart_rate_cases(overrides: dict[str, object]) -> None:
    run = run_function(**overrides)
    assert_issue_limits(run)
    if overrides.get("heart_condition") == "dilated":
        assert run.report["lv"]["ef_percent"] < 35.0  # reported as a low-EF ventricle


@pytest.mark.parametrize("flow_field", [pytest.param(1.5, marks=SLOW)])
def test_mitral_regurgitation_against_flow(flow_field: float) -> None:
    """30 ml of mitral regurgitation: LV SV − aortic forward volume (flow chain) within 10 ml."""
    settings = {"seed": 4, "mitral_regurgitant_volume_ml": 30.0, "field_strength_t": flow_field}
    run = run_function(flow_overrides=tuple(settings.items()), **settings)
    flow = run.report["flow"]
    assert flow is not None and flow["aortic_forward_ml"] is not None, run.report["notes"]
    m = measured(run)
    assert flow["mitral_regurgitant_ml"] == pytest.approx(run.truth.mitral_regurgitant_ml, abs=10.0), (
        flow,
        m,
    )
    assert flow["qp_qs_cine"] is not None and flow["qp_qs_flow"] is not None
