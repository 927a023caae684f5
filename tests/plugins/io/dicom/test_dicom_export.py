"""DICOM export: every modality passes dciodvfy, units read back through Real World Value Mapping,
deterministic UIDs, and a point in patient coordinates lands on the same voxel in DICOM and NIfTI."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import ismrmrd
import numpy as np
import pydicom
import pytest

from plugins.cli import main
from plugins.io.dicom.export import export_dicom, export_nifti
from plugins.io.dicom.geometry import image_planes
from recon.phasecontrast.maxwell import pixel_positions_m


def _dciodvfy_errors(path: Path) -> list[str]:
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy not installed (Debian package dicom3tools; .ci/run installs it)")
    done = subprocess.run([exe, str(path)], capture_output=True, text=True, check=False)
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error")]


def _by_kind(out: Path) -> dict[str, list[Path]]:
    kinds: dict[str, list[Path]] = {}
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        kinds[folder.name.split("_", 1)[1]] = sorted(folder.glob("*.dcm"))
    return kinds


def test_cine_dicom_is_valid_and_carries_cardiac_timing(cine_run: Path, tmp_path: Path) -> None:
    instances = export_dicom(cine_run, tmp_path)
    assert len(instances) == 8 and len({i.sop_uid for i in instances}) == 8
    files = _by_kind(tmp_path)["cine"]
    assert _dciodvfy_errors(files[0]) == []
    ds = pydicom.dcmread(files[0])
    assert ds.SOPClassUID == pydicom.uid.MRImageStorage
    assert int(ds.CardiacNumberOfImages) == 4
    assert 900 < int(ds.NominalInterval) < 1100 and 55 <= int(ds.HeartRate) <= 66
    assert float(ds.TriggerTime) > 0
    assert ds.PatientName == "Phantom^Thorax" and ds.PatientID == "SIM0001"
    again = export_dicom(cine_run, tmp_path / "again")
    assert [i.sop_uid for i in again] == [i.sop_uid for i in instances]
    assert {i.study_uid for i in again} == {instances[0].study_uid}


def test_velocity_in_cm_per_s_through_real_world_value_mapping(flow_run: Path, tmp_path: Path) -> None:
    export_dicom(flow_run, tmp_path)
    kinds = _by_kind(tmp_path)
    assert _dciodvfy_errors(kinds["velocity"][0]) == []
    assert _dciodvfy_errors(kinds["mr"][0]) == []
    dset = ismrmrd.Dataset(str(flow_run / "images.h5"), "dataset", create_if_needed=False)
    truth = [dset.read_image("image_2", i).data[0, 0] for i in range(dset.number_of_images("image_2"))]
    dset.close()
    for path in kinds["velocity"]:
        ds = pydicom.dcmread(path)
        rwv = ds.RealWorldValueMappingSequence[0]
        assert rwv.MeasurementUnitsCodeSequence[0].CodeValue == "cm/s"
        assert rwv.MeasurementUnitsCodeSequence[0].CodingSchemeDesignator == "UCUM"
        values = ds.pixel_array * float(rwv.RealWorldValueSlope) + float(rwv.RealWorldValueIntercept)
        phase = int(ds.InstanceNumber) - 1
        assert np.max(np.abs(values - truth[phase])) <= 0.1
        assert "VENC 150 cm/s" in ds.ImageComments
        assert float(ds.VelocityEncodingMaximumValue) == 150.0


def test_pet_dixon_and_mu_map_are_valid(synthetic_run: Path, tmp_path: Path) -> None:
    export_dicom(synthetic_run, tmp_path)
    kinds = _by_kind(tmp_path)
    assert set(kinds) == {"pet", "dixon", "mu_map"}
    for files in kinds.values():
        assert _dciodvfy_errors(files[0]) == []
    pet = pydicom.dcmread(kinds["pet"][0])
    assert pet.SOPClassUID == pydicom.uid.PositronEmissionTomographyImageStorage
    assert pet.Units == "BQML" and pet.DecayCorrection == "START"
    assert {"ATTN", "SCAT", "DECY"} <= set(pet.CorrectedImage)
    assert pet.RadiopharmaceuticalInformationSequence[0].RadionuclideCodeSequence[0].CodeValue == "C-111A1"
    assert len(kinds["pet"]) == 4 and int(pet.NumberOfSlices) == 4
    assert pet.PatientIdentityRemoved == "YES"  # no ISMRMRD header: placeholder identity, flagged
    mu = pydicom.dcmread(kinds["mu_map"][0])
    assert mu.RealWorldValueMappingSequence[0].MeasurementUnitsCodeSequence[0].CodeValue == "/cm"
    ff = pydicom.dcmread(kinds["dixon"][0])
    assert ff.RealWorldValueMappingSequence[0].MeasurementUnitsCodeSequence[0].CodeValue == "%"


def _images_by_role(run: Path) -> dict[str, np.ndarray]:
    from plugins.io.dicom.series import image_meta, meta_str

    dset = ismrmrd.Dataset(str(run / "images.h5"), "dataset", create_if_needed=False)
    out = {}
    for name in dset.list():
        if name.startswith("image_"):
            image = dset.read_image(name, 0)
            out[str(meta_str(image_meta(image), "Role"))] = np.asarray(image.data[0, 0], np.float64)
    dset.close()
    return out


def test_t1_map_in_ms_and_psir_are_valid_mr_images(
    molli_run: Path, lge_run: Path, t2star_run: Path, tmp_path: Path
) -> None:
    """Issue 22 outputs: T1, T2* and their SD maps in ms through Rescale Slope and Real World Value Mapping
    (UCUM ms, values within one stored step of the run's float map), PSIR signed with its grey window and
    TI, magnitude IR; every one passes dciodvfy."""
    runs = {"molli": molli_run, "lge": lge_run, "t2star": t2star_run}
    kinds: dict[str, list[Path]] = {}
    maps: dict[str, np.ndarray] = {}
    for name, run in runs.items():
        export_dicom(run, tmp_path / name)
        kinds.update(_by_kind(tmp_path / name))
        maps.update(_images_by_role(run))
    assert set(kinds) == {"t1_map", "t1_sd_map", "psir", "magnitude_ir", "t2star_map", "t2star_sd_map"}
    for files in kinds.values():
        assert _dciodvfy_errors(files[0]) == []
    for kind, role in (
        ("t1_map", "t1"),
        ("t1_sd_map", "t1_sd"),
        ("t2star_map", "t2star"),
        ("t2star_sd_map", "t2star_sd"),
    ):
        ds = pydicom.dcmread(kinds[kind][0])
        rwv = ds.RealWorldValueMappingSequence[0]
        assert rwv.MeasurementUnitsCodeSequence[0].CodeValue == "ms"
        assert rwv.MeasurementUnitsCodeSequence[0].CodingSchemeDesignator == "UCUM"
        values = ds.pixel_array * float(rwv.RealWorldValueSlope) + float(rwv.RealWorldValueIntercept)
        assert np.max(np.abs(values - maps[role])) <= float(ds.RescaleSlope)
        assert ds.ImageType[0] == "DERIVED" and "ms" in ds.ImageComments
    assert list(pydicom.dcmread(kinds["t2star_map"][0]).ImageType[2:]) == ["OTHER", "T2STAR MAP"]
    t1 = pydicom.dcmread(kinds["t1_map"][0])
    assert list(t1.ImageType[2:]) == ["T1 MAP", "MOLLI"] and list(t1.ScanningSequence) == ["IR", "GR"]
    assert (float(t1.WindowCenter), float(t1.WindowWidth)) == (1000.0, 2000.0)  # 0-2000 ms at 1.5 T
    psir = pydicom.dcmread(kinds["psir"][0])
    assert psir.PixelRepresentation == 1 and float(psir.InversionTime) == 240.0
    assert list(psir.ImageType[2:]) == ["R", "PSIR"]
    values = psir.pixel_array * float(psir.RescaleSlope) + float(psir.RescaleIntercept)
    assert np.max(np.abs(values - maps["psir"])) <= float(psir.RescaleSlope)
    low = float(psir.WindowCenter) - float(psir.WindowWidth) / 2
    assert low <= 0.0 < float(psir.WindowCenter)  # grey window from the darkest tissue, not centred on 0
    assert pydicom.dcmread(kinds["magnitude_ir"][0]).ImageType[0] == "ORIGINAL"


def test_patient_point_lands_on_the_same_voxel_in_dicom_and_nifti(cine_run: Path, tmp_path: Path) -> None:
    import nibabel as nib

    dset = ismrmrd.Dataset(str(cine_run / "images.h5"), "dataset", create_if_needed=False)
    image = dset.read_image("image_1", 0)
    dset.close()
    read, phase = np.array(image.read_dir[:]), np.array(image.phase_dir[:])
    assert np.count_nonzero(np.abs(read) > 1e-3) >= 2 and np.count_nonzero(np.abs(phase) > 1e-3) >= 2
    # a point in ISMRMRD patient coordinates (LPS): the centre of pixel (row 17, column 40) of slice 0, phase
    # 0, as the reconstruction places it (recon.phasecontrast.maxwell.pixel_positions_m)
    nx, ny, _ = image.matrix_size
    spacing = (image.field_of_view[1] / ny, image.field_of_view[0] / nx)
    centre = tuple(float(v) for v in image.position)
    grid_m = pixel_positions_m((ny, nx), spacing, centre, tuple(read), tuple(phase))  # type: ignore[arg-type]
    point = grid_m[17, 40].numpy() * 1e3
    assert np.allclose(image_planes(image)[0].pixel_to_patient(17, 40), point)
    export_dicom(cine_run, tmp_path / "dcm")
    export_nifti(cine_run, tmp_path / "nii")
    ds = pydicom.dcmread(tmp_path / "dcm" / "S001_cine" / "IM00001.dcm")  # slice 0, phase 0
    assert int(ds.InstanceNumber) == 1 and float(ds.TriggerTime) == pytest.approx(
        float(dict(ismrmrd.Meta.deserialize(image.attribute_string))["TriggerTime"])
    )
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
    rel = point - ipp
    col = rel @ iop[:3] / col_spacing
    row = rel @ iop[3:] / row_spacing
    assert np.allclose([row, col], [17, 40], atol=1e-3)
    assert abs(rel @ np.cross(iop[:3], iop[3:])) < 1e-3  # in the plane
    nii: Any = nib.load(str(tmp_path / "nii" / "S001_cine.nii.gz"))
    ras = np.array([-point[0], -point[1], point[2], 1.0])
    ijk = np.linalg.inv(nii.affine) @ ras
    k = round(ijk[2])
    assert np.allclose(ijk[:2], [40, 17], atol=1e-3) and abs(ijk[2] - k) < 1e-3
    data = np.asarray(nii.dataobj)
    assert data.shape == (64, 52, 2, 4)
    assert np.isclose(data[40, 17, k, 0], float(image.data[0, 0, 17, 40]), rtol=1e-5)


def test_export_cli_writes_dicom_and_nifti(synthetic_run: Path, tmp_path: Path) -> None:
    assert main(["export", str(synthetic_run), "--dicom", "--nifti", "--out", str(tmp_path)]) == 0
    assert len(list(tmp_path.rglob("*.dcm"))) == 4 + 3 + 3
    assert len(list(tmp_path.glob("*.nii.gz"))) == 3


def test_export_of_a_folder_without_images_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(tmp_path), "--dicom", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(tmp_path) in err and "images.h5" in err
