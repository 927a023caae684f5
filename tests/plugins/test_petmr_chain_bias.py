"""Issue 23: the PET-MR activity bias through the shipped ``petmr`` chain file, on a reduced case, two seeds, in CI.

Each seed is what a user runs: ``simulate petmr`` (the simulator's *site* table and coil, which differ from the
chain's vendor templates: ``hardware_sim.pet.torso.SITE_HARDWARE``) at its default 10⁶ prompts, reduced to an
8-coil 128 × 96 Dixon matrix, then ``run --chain petmr`` with nothing set.  The reference is the same list-mode
reconstructed by the shipped ``pet-tof`` chain at the ``petmr`` chain's voxel size with the simulator's true μ-map,
subtracting scatter only when the ``petmr`` image did (its ``CorrectionScatter``): the ratio of the two images is the
attenuation correction's share alone (the same events, randoms and scatter handling in both).  Regions:
:func:`tests.plugins.petmr_integration_case.rois` (interiors, |z| < 90 mm).

Limits fixed before the first run (issue 23): soft tissue, myocardium and liver within 3 % on every seed; the
spine (no bone class without an atlas or UTE input) and the arms (truncated by the MR field of view, completed
from a NAC image) are reported.  The full-size case (192 × 156, 16 coils, and the μ-map variants without
completion or coil template) is ``RECONSTREAM_SLOW_TESTS=1 pytest tests/plugins/test_petmr_integration.py``.

What the hardware mismatch costs (2026-12-05, seed 0, the simulator's hardware set to exactly what the templates
describe, ``hardware_sim.pet.torso.NOMINAL_HARDWARE``, everything else the same): soft tissue +1.4 %, myocardium
−1.2 %, liver +2.5 %, spine −14.8 %, arms −4.5 %, against +1.1 %, −1.2 %, +1.5 %, −15.6 %, −5.3 % with the site
hardware: at most 1 point in any region, which is why the chain does not register the table position.

Why not fewer prompts: at 3·10⁵ the lung coefficient that the chain estimates from the TOF data drops to 0.021 /cm
(0.031 at 10⁶; the simulated lungs average 0.031), and the myocardium, seen through the lungs, read −6.6 % and −6.7 %
on seeds 0 and 1 (soft tissue −2.6 % and −3.6 %, liver +1.2 % and −0.6 %; 2026-12-05): the estimate is biased at
low counts.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import ismrmrd
import numpy as np
import pytest

from hardware_sim.petmr.cli import config_from_args, configure_parser
from plugins.cli import main
from plugins.io.petsird_io import acquisition_info_from_petsird, read_petsird
from plugins.pet.items import PETMuMap
from plugins.pet.tof_recon import image_grid_for
from plugins.runtime.chain import load_chain
from plugins.runtime.pipeline import run_chain
from plugins.runtime.plugin import ChainContext
from tests.plugins.petmr_integration_case import roi_bias, rois

log = logging.getLogger(__name__)
#: per seed: the simulation, the petmr chain and the reference, ≈ 7 min on 2 idle cores
pytestmark = pytest.mark.timeout(1500)
N_PROMPTS = 1_000_000
SEEDS = (0, 1)
PET_IMAGE_SERIES = 100


def _pet_image(images_h5: Path) -> tuple[np.ndarray, ismrmrd.Meta]:
    dataset = ismrmrd.Dataset(str(images_h5), "dataset", create_if_needed=False)
    try:
        image = dataset.read_image(f"image_{PET_IMAGE_SERIES}", 0)
        return np.asarray(image.data[0], np.float64), ismrmrd.Meta.deserialize(image.attribute_string)
    finally:
        dataset.close()


@pytest.fixture(scope="module", params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def bias(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    seed = int(request.param)
    folder = tmp_path_factory.mktemp(f"petmr_seed{seed}")
    simulate = ["--counts", str(N_PROMPTS), "--seed", str(seed), "--coils", "8", "--matrix", "128", "96"]
    simulate += ["--out", str(folder / "sim")]
    assert main(["simulate", "petmr", *simulate]) == 0
    dixon, listmode = folder / "sim" / "dixon.h5", folder / "sim" / "listmode.petsird"
    run = ["run", "--chain", "petmr", "--input", str(dixon), "--input", str(listmode)]
    assert main([*run, "--out", str(folder / "out")]) == 0
    chain_image, meta = _pet_image(folder / "out" / "images.h5")

    parser = argparse.ArgumentParser()
    configure_parser(parser)
    phantom = config_from_args(parser.parse_args(simulate)).pet.simulator().phantom  # the simulated torso
    scanner, batches, header = read_petsird(listmode)
    info = acquisition_info_from_petsird(header, scanner, batches)
    osem = load_chain("petmr").stages[-1].config
    voxel_mm, fov_mm = osem.voxel_size_mm, osem.transaxial_fov_mm  # type: ignore[attr-defined]
    # the reference subtracts scatter only when the chain did: otherwise a tail fit that the true μ-map's tails make
    # identifiable (and the MR μ-map's do not) would put the scatter correction's share into the ratio
    scatter = meta["CorrectionScatter"] == "applied"
    overrides = [f"pet_tof_osem.voxel_size_mm={voxel_mm}", f"pet_tof_osem.scatter={str(scatter).lower()}"]
    reference_chain = load_chain("pet-tof", overrides)
    true_mu = PETMuMap(phantom.mu_per_cm, phantom.grid, "the simulator's true μ-map")
    outputs = run_chain(reference_chain, [info, true_mu, *batches], ChainContext("pet-tof"))
    reference = np.asarray(next(o for o in outputs if isinstance(o, ismrmrd.Image)).data[0], np.float64)

    regions = rois(phantom, image_grid_for(scanner, voxel_mm, fov_mm))
    result = roi_bias(chain_image, reference, regions)
    log.info("PET-MR bias, seed %d: %s", seed, json.dumps({k: round(v, 4) for k, v in result.items()}))
    return result


def test_soft_tissue_myocardium_and_liver_within_3_percent(
    bias: dict[str, float], record_property: Any
) -> None:
    record_property("petmr_bias", json.dumps(bias))
    for region in ("soft_tissue", "myocardium", "liver"):
        assert abs(bias[region]) <= 0.03, (region, bias)


def test_spine_and_arms_are_reported(bias: dict[str, float], record_property: Any) -> None:
    record_property("petmr_bias_spine_arms", json.dumps({k: bias[k] for k in ("bone", "arms")}))
    assert bias["bone"] < 0.0  # no bone class: the spine is scored as soft tissue and reads low
    assert abs(bias["arms"]) < 0.5  # the arms outside the MR field of view are completed, not left out
