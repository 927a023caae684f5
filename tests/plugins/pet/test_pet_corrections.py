"""Issue 23: every correction's state travels with the PET image, and an image without a μ-map is flagged
machine-readably as not attenuation corrected (ISMRMRD metadata, the run's report and the DICOM export).

The chain is the shipped ``pet-tof`` with a small grid and few iterations (a point source in air: only the
metadata are under test here, the values are tested in ``test_pet_calibration``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import ismrmrd
import numpy as np
import pydicom
import pytest

from plugins.io.dicom.export import export_dicom
from plugins.io.outputs import OutputWriter
from plugins.pet.corrections import QUANTITATIVE_NEEDS
from plugins.pet.items import PETMuMap
from plugins.runtime.chain import load_chain
from plugins.runtime.items import Report
from plugins.runtime.pipeline import run_chain
from plugins.runtime.plugin import ChainContext
from recon.tof.geometry import ImageGrid, small_test_scanner
from recon.tof.listmode import PETAcquisitionInfo
from tests.plugins.pet.test_pet_plugins import point_source_events

SMALL = {
    "pet_tof_osem.voxel_size_mm": 4.0,
    "pet_tof_osem.transaxial_fov_mm": 120.0,
    "pet_tof_osem.n_iterations": 1,
    "pet_tof_osem.n_subsets": 2,
    "pet_tof_osem.max_sensitivity_pairs": 200_000,
    "pet_tof_osem.kernel": "numba",
}
NAMES = ("Attenuation", "Scatter", "Randoms", "Normalisation", "Decay", "DeadTime")


def _run(with_mu: bool, efficiencies: bool) -> tuple[ismrmrd.Image, dict]:
    scanner = small_test_scanner()
    eff = np.ones(scanner.n_crystals, np.float32) if efficiencies else None
    info = PETAcquisitionInfo("small", 0.0, 10.0, "F-18", 6586.2, 3.0e8, -1800.0, 70.0, eff)
    grid = ImageGrid.centred((16, 30, 30), (4.0, 4.0, 4.0))
    items: list = [info, point_source_events(scanner, 20_000, seed=3)]
    if with_mu:
        items.insert(1, PETMuMap(np.zeros(grid.shape_zyx, np.float32), grid, source="test air map"))
    out = run_chain(load_chain("pet-tof", SMALL), items, ChainContext("pet-tof"))
    image = next(o for o in out if isinstance(o, ismrmrd.Image))
    report = json.loads(next(o for o in out if isinstance(o, Report)).content)
    return image, report


@pytest.fixture(scope="module")
def nac() -> tuple[ismrmrd.Image, dict]:
    return _run(with_mu=False, efficiencies=True)


def _meta(image: ismrmrd.Image) -> ismrmrd.Meta:
    return ismrmrd.Meta.deserialize(image.attribute_string)


def _list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def test_without_a_mumap_the_image_says_not_attenuation_corrected(nac: tuple[ismrmrd.Image, dict]) -> None:
    image, report = nac
    meta = _meta(image)
    assert meta["CorrectionAttenuation"] == "not applied"
    assert meta["CorrectionScatter"] == "not applied"  # no μ-map: no scatter model either
    assert meta["Quantitative"] == "false"
    assert "ATTN" not in _list(meta["CorrectedImage"]) and "SCAT" not in _list(meta["CorrectedImage"])
    assert any("no attenuation correction" in w for w in _list(meta["QualityWarning"]))
    assert report["quantitative"] is False and report["corrections"]["CorrectionAttenuation"] == "not applied"


def test_every_correction_state_is_in_the_metadata(nac: tuple[ismrmrd.Image, dict]) -> None:
    meta = _meta(nac[0])
    for name in NAMES:
        assert meta[f"Correction{name}"] in ("applied", "not applied"), name
        assert meta[f"Correction{name}Method"], name
    assert meta["CorrectionDecay"] == "applied" and meta["CorrectionNormalisation"] == "applied"
    assert meta["CorrectionDeadTime"] == "not applied"  # not modelled: said, not hidden
    assert meta["CorrectionRandoms"] == "not applied"  # the point-source events have no delayeds


def test_with_a_mumap_and_efficiencies_attenuation_is_applied_and_scatter_recorded() -> None:
    image, _ = _run(with_mu=True, efficiencies=True)
    meta = _meta(image)
    assert (
        meta["CorrectionAttenuation"] == "applied" and "test air map" in meta["CorrectionAttenuationMethod"]
    )
    # scatter was estimated (tail fit); a point source in air leaves none to subtract, and the image says which
    assert "tail" in meta["CorrectionScatterMethod"]
    assert ("SCAT" in _list(meta["CorrectedImage"])) == (meta["CorrectionScatter"] == "applied")
    assert {"ATTN", "NORM", "DECY"} <= set(_list(meta["CorrectedImage"]))
    # still not quantitative: no delayeds, hence no randoms correction
    assert meta["Quantitative"] == "false" and "Randoms" in QUANTITATIVE_NEEDS


def test_missing_normalisation_is_recorded() -> None:
    meta = _meta(_run(with_mu=False, efficiencies=False)[0])
    assert meta["CorrectionNormalisation"] == "not applied"
    assert "NORM" not in _list(meta["CorrectedImage"])


def test_dicom_of_a_nac_image_is_not_bqml_and_lacks_attn(
    nac: tuple[ismrmrd.Image, dict], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    writer = OutputWriter(run)
    writer.write(nac[0])
    writer.close()
    export_dicom(run, tmp_path / "dicom")
    first = sorted((tmp_path / "dicom").rglob("*.dcm"))[0]
    pet = pydicom.dcmread(first)
    assert pet.Units == "PROPCNTS"
    assert "ATTN" not in pet.CorrectedImage and "DECY" in pet.CorrectedImage
    assert pet.AttenuationCorrectionMethod == "none"
    dciodvfy = shutil.which("dciodvfy")
    if dciodvfy is not None:  # PROPCNTS is a defined term of Units (0054,1001): the file stays valid
        done = subprocess.run([dciodvfy, str(first)], capture_output=True, text=True, check=False)
        assert not [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error")]


def test_a_scatter_fit_of_scale_zero_is_not_called_applied() -> None:
    from plugins.pet.corrections import correction_states, is_quantitative
    from recon.tof.scatter import TailFit

    fit = TailFit(0.0, 26299, 17510.0, 20631.0, 1000.0)
    states = correction_states(
        mu_source="MR Dixon", scatter_requested=True, tail_fit=fit, fit_status="not identifiable",
        n_delayeds=10, has_singles=False, has_crystal_efficiencies=True, isotope="F-18",
    )  # fmt: skip
    scatter = next(s for s in states if s.name == "Scatter")
    assert not scatter.applied and "no scatter" in scatter.method and not is_quantitative(states)
