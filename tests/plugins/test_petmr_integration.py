"""PET activity with the Dixon μ-map versus the true μ-map on the simulated torso (slow: ≈ 20 min here).

Run with ``RECONSTREAM_SLOW_TESTS=1 pytest -m slow tests/plugins/test_petmr_integration.py`` (add
``RECONSTREAM_TEST_DEVICE=cuda`` on a GPU machine: PET simulation and reconstructions on CUDA, ≈ 2 min).  Thresholds
fixed before running (issue 8): mean activity bias within 3 % in soft tissue and myocardium; truncation
completion reduces the arm bias; the bone-region bias (no bone class without an atlas/UTE input) is reported.

The case (``petmr_integration_case``) is what ``simulate petmr`` makes: the MR simulator's 3 T Dixon exam of
the thorax, reconstructed by the chain's plugins, and the PET torso derived from the same anatomy, with a
rigid anterior coil whose vendor template joins the hardware μ-map.

The shipped chain estimates the lung coefficient from the TOF data (``mumap.estimate_lung_mu``,
:mod:`recon.petmr_ac.lung_mu`); the case's ``dixon_lung_estimated`` μ-map is that, ``dixon`` keeps the constant
0.018 /cm for the decomposition.  Measured 2026-11-22 on the lent H100 (PET simulation and reconstructions on
CUDA, 1 M prompts, 2 iterations × 8 subsets, 4 mm voxels, the same events for every μ-map): estimated lung μ
0.0269 /cm (the phantom's lungs: 0.023–0.037, mean 0.031); with it soft tissue −0.9 %, myocardium −2.7 %, liver
+1.2 %, spine −16.3 % (no bone class), arms −7.0 %.  With the constant 0.018: soft tissue −6.3 %, myocardium
−11.1 %; without completion the arms −50 %; without the coil template soft tissue −12.0 %.  The scatter
correction plays no part in these figures: on this torso its tail fit is not identifiable (scale 0 for every
μ-map; the tails, LORs missing body, arms, table and coil, hold ≈ 90 % randoms), so every image carries the same
uncorrected scatter.

Issue 23: since 2026-12-04 the simulator's table and coil are the site's (``hardware_sim.pet.torso.SITE_HARDWARE``:
table 3 mm lower, 2 mm to the side, thicker skins; coil holder 4 mm left and 5 mm anterior, other housing and
pre-amplifiers) while the chain's templates keep the vendor description.  Measured 2026-12-04 on the shared
2-core VM (CPU, same case, seed 0): estimated lung μ 0.0315 /cm; soft tissue −4.1 % (fails the 3 % limit),
myocardium −0.5 %, liver +0.2 %, spine −20.7 %, arms −5.8 %; constant 0.018: soft tissue −12.7 %, myocardium
−12.7 %; without the coil template soft tissue −18.1 %.  The chain does not register the table position.
Measured again 2026-12-05 (shared 2-core VM, 617 s, seed 0) after the Dixon tissue threshold became 0.08 and the
simulator's delayed channel an ideal randoms monitor: estimated lung μ 0.0260 /cm; soft tissue +1.8 %, myocardium
−0.7 %, liver +2.6 %, spine −15.6 %, arms −6.8 %; constant 0.018: soft tissue −2.8 %, myocardium −7.6 %; without
completion the arms −50 %; without the coil template soft tissue −8.7 %, myocardium −13.6 %.  Scatter scale 0 for
every μ-map (tails not identifiable).  The figures are logged (``--log-cli-level=INFO``).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import pytest

from tests.plugins.petmr_integration_case import run_case, simulate_pet

log = logging.getLogger(__name__)

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


def test_soft_tissue_and_myocardium_bias_within_3_percent(bias: dict[str, Any]) -> None:
    # the chain's μ-map: lung coefficient estimated from the TOF data
    assert abs(bias["dixon_lung_estimated"]["soft_tissue"]) <= 0.03
    assert abs(bias["dixon_lung_estimated"]["myocardium"]) <= 0.03


def test_bone_bias_is_reported(bias: dict[str, Any], record_property: Any) -> None:
    record_property("petmr_bias", json.dumps(bias))
    log.info("PET-MR bias by μ-map (image / true-μ image − 1): %s", json.dumps(bias))
    assert bias["dixon"]["bone"] < 0.0  # bone read as soft tissue attenuates too little
