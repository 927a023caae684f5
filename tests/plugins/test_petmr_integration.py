"""PET activity with the Dixon μ-map versus the true μ-map on the simulated torso (slow: ≈ 20 min here).

Run with ``RECONSTREAM_SLOW_TESTS=1 pytest -m slow tests/plugins/test_petmr_integration.py``.  Thresholds
fixed before running (issue 8): mean activity bias within 3 % in soft tissue and myocardium; truncation
completion reduces the arm bias; the bone-region bias (no bone class without an atlas/UTE input) is reported.

Measured on the 2-core development machine (1 M prompts, 2 iterations × 8 subsets, 4 mm voxels): soft tissue
−3.9 %, myocardium −6.0 %, liver −2.5 %, spine −15.8 %, arms +16.4 % with completion and −43.9 % without.
The 3 % criterion is therefore not met.  Decomposition (same events): the true μ-map *without* the phantom's
flexible anterior coil (invisible to MR, not in the hardware μ-map) already gives −4.9 % / −4.7 %; the Dixon
μ-map with an ideal bone atlas gives −0.05 % / −1.2 %.  That test is an expected (strict) failure until a
coil template and a bone atlas are part of the μ-map.
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
        reason="≈ 20 min PET simulation + 3 reconstructions; set RECONSTREAM_SLOW_TESTS=1",
    ),
]


@pytest.fixture(scope="module")
def bias() -> dict[str, Any]:
    phantom, batch, info = simulate_pet(n_prompts=1_000_000, seed=0)
    return run_case(phantom, batch, info, seed=0)


def test_truncation_completion_reduces_the_arm_bias(bias: dict[str, Any]) -> None:
    assert abs(bias["dixon"]["arms"]) < abs(bias["dixon_no_completion"]["arms"])


@pytest.mark.xfail(
    strict=True, reason="anterior coil not in the hardware μ-map, no bone class (see docstring)"
)
def test_soft_tissue_and_myocardium_bias_within_3_percent(bias: dict[str, Any]) -> None:
    assert abs(bias["dixon"]["soft_tissue"]) <= 0.03
    assert abs(bias["dixon"]["myocardium"]) <= 0.03


def test_bone_bias_is_reported(bias: dict[str, Any], record_property: Any) -> None:
    record_property("petmr_bias", json.dumps(bias))
    assert bias["dixon"]["bone"] < 0.0  # bone read as soft tissue attenuates too little
