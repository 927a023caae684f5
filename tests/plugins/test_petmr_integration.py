"""PET activity with the Dixon μ-map versus the true μ-map on the simulated torso (slow: ≈ 20 min here).

Run with ``RECONSTREAM_SLOW_TESTS=1 pytest -m slow tests/plugins/test_petmr_integration.py``.  Thresholds
fixed before running (issue 8): mean activity bias within 3 % in soft tissue and myocardium; truncation
completion reduces the arm bias; the bone-region bias (no bone class without an atlas/UTE input) is reported.

The case (``petmr_integration_case``) is what ``simulate petmr`` makes: the MR simulator's 3 T Dixon exam of
the thorax, reconstructed by the chain's plugins, and the PET torso derived from the same anatomy, with a
rigid anterior coil whose vendor template joins the hardware μ-map.

Measured 2026-11-22 on the lent H100 (PET simulation and reconstructions on CUDA; 2 iterations × 8 subsets,
4 mm voxels; the same events for every μ-map), 1 M and 5 M prompts agreeing to 0.1 %: soft tissue −2.3 %,
myocardium −7.6 %, liver +5.6 %, spine −17.7 %, arms −5.3 % with completion and −49 % without; without the
coil template soft tissue −8.2 %, myocardium −13.5 %.  The myocardium fails the 3 % criterion, hence the strict
xfail.  Decomposition: the lung coefficient dominates.  The phantom's lungs carry μ 0.023–0.037 /cm (mean
0.031), the documented default lung class 0.018 /cm; with lung 0.024 /cm the same case gives soft tissue +1.4 %
and myocardium −1.9 %, with 0.030 /cm +5.2 % and +4.2 %.  Meeting 3 % therefore needs a patient-specific lung
coefficient (e.g. estimated from the TOF emission data, MLAA-style), not a different constant; only ≈ 3 % of
the heart is classed as lung.  The scatter correction plays no part in these figures: on this torso its tail
fit returns a scale of 0 for every μ-map (the tails, LORs missing the body, arms, table and coil, hold
≈ 90 % randoms; see the closing note of session 2), so both images carry the same uncorrected scatter.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.plugins.petmr_integration_case import run_case, simulate_pet

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(
        os.environ.get("RECONSTREAM_SLOW_TESTS") != "1",
        reason="≈ 20 min PET simulation + 4 reconstructions; set RECONSTREAM_SLOW_TESTS=1",
    ),
]


@pytest.fixture(scope="module")
def bias() -> dict[str, Any]:
    phantom, batch, info = simulate_pet(n_prompts=1_000_000, seed=0)
    return run_case(phantom, batch, info, seed=0)


def test_truncation_completion_reduces_the_arm_bias(bias: dict[str, Any]) -> None:
    assert abs(bias["dixon"]["arms"]) < abs(bias["dixon_no_completion"]["arms"])


@pytest.mark.xfail(
    strict=True,
    reason="myocardium −7.6 %: constant lung coefficient 0.018 /cm vs the phantom's 0.023–0.037 (see docstring)",
)
def test_soft_tissue_and_myocardium_bias_within_3_percent(bias: dict[str, Any]) -> None:
    assert abs(bias["dixon"]["soft_tissue"]) <= 0.03
    assert abs(bias["dixon"]["myocardium"]) <= 0.03


def test_bone_bias_is_reported(bias: dict[str, Any], record_property: Any) -> None:
    record_property("petmr_bias", json.dumps(bias))
    assert bias["dixon"]["bone"] < 0.0  # bone read as soft tissue attenuates too little
