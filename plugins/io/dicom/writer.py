"""DICOM datasets for one :class:`~plugins.io.dicom.series.Frame`: classic MR Image Storage (cine, phase
contrast, Dixon, μ-map, LGE PSIR / magnitude IR, T1/T2/T2* maps and their SD maps in ms) or PET Image Storage, written as Part-10 files (explicit VR little endian).

Units travel in a Real World Value Mapping Sequence (UCUM, e.g. velocity in ``cm/s``, μ in ``/cm``) beside
Rescale Slope/Intercept; PET uses Units ``BQML``, Decay Correction ``START`` and Corrected Image from the
corrections the reconstruction applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, MRImageStorage, PositronEmissionTomographyImageStorage

from plugins.io.dicom.identity import PLACEHOLDER_NOTE, SessionIdentity
from plugins.io.dicom.series import ExportSeries, Frame, meta_float, meta_str
from plugins.io.outputs import software_version

IMPLEMENTATION_UID = "2.25.246183465201829467319830926341806612935"

# Radionuclides: (SNOMED code, meaning, half-life s) — DICOM CID 4020.
NUCLIDES: dict[str, tuple[str, str, float]] = {
    "F18": ("C-111A1", "^18^Fluorine", 6586.2),
    "C11": ("C-105A1", "^11^Carbon", 1223.4),
    "O15": ("C-B1038", "^15^Oxygen", 122.24),
    "GA68": ("C-131A3", "^68^Gallium", 4062.6),
    "N13": ("C-107A1", "^13^Nitrogen", 597.9),
}


@dataclass(frozen=True)
class SeriesContext:
    """What every instance of one series shares: identity, chain, series UID/number and cine facts."""

    identity: SessionIdentity
    chain: str
    series_uid: str
    series_number: int
    n_phases_by_slice: dict[int, int]
    rr_ms_by_slice: dict[int, float]


def _ds_string(value: float) -> str:
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.8g}"


def _patient_study(ds: Dataset, who: SessionIdentity) -> None:
    ds.PatientName = who.patient_name
    ds.PatientID = who.patient_id
    ds.PatientBirthDate = who.birth_date
    ds.PatientSex = who.sex
    if who.weight_kg is not None:
        ds.PatientWeight = _ds_string(who.weight_kg)
    if who.height_m is not None:
        ds.PatientSize = _ds_string(who.height_m)
    if who.placeholder:
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = PLACEHOLDER_NOTE
        ds.PatientComments = PLACEHOLDER_NOTE
    ds.StudyInstanceUID = who.study_uid
    ds.StudyDate = who.study_date
    ds.StudyTime = who.study_time
    ds.StudyID = who.study_id
    ds.AccessionNumber = who.accession_number
    ds.ReferringPhysicianName = who.referring_physician
    if who.study_description:
        ds.StudyDescription = who.study_description[:64]
    ds.FrameOfReferenceUID = who.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = who.manufacturer
    ds.ManufacturerModelName = who.model[:64] or "reconstream"
    ds.SoftwareVersions = f"reconstream {software_version()}"
    if who.institution:
        ds.InstitutionName = who.institution[:64]


def _pixels(ds: Dataset, series: ExportSeries, frame: Frame) -> None:
    rows, cols = frame.pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(rows), int(cols)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if series.signed else 0
    plane = frame.plane
    ds.ImagePositionPatient = [_ds_string(v) for v in plane.position_mm]
    ds.ImageOrientationPatient = [_ds_string(v) for v in (*plane.row_dir, *plane.col_dir)]
    ds.PixelSpacing = [_ds_string(v) for v in plane.spacing_mm]
    ds.SliceThickness = _ds_string(plane.thickness_mm)
    ds.SliceLocation = _ds_string(float(np.dot(plane.position_mm, plane.normal)))
    ds.RescaleSlope = _ds_string(series.slope)
    ds.RescaleIntercept = _ds_string(series.intercept)
    centre, width = meta_float(frame.meta, "WindowCenter"), meta_float(frame.meta, "WindowWidth")
    if centre is not None and width is not None and width > 0:
        ds.WindowCenter, ds.WindowWidth = _ds_string(centre), _ds_string(width)
    ds.PixelData = np.ascontiguousarray(frame.pixels).tobytes()


def _real_world_values(ds: Dataset, series: ExportSeries, frame: Frame) -> None:
    ucum = series.ucum
    if ucum is None:
        return
    lo, hi = int(frame.pixels.min()), int(frame.pixels.max())
    if lo == hi:
        hi = lo + 1
    label = series.kind.replace("_", " ")
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=label[:16],
        lut_explanation=f"{label} in {ucum[0]}"[:64],
        unit=hd.sr.CodedConcept(value=ucum[0], scheme_designator="UCUM", meaning=ucum[1]),
        value_range=(lo, hi),
        slope=series.slope,
        intercept=series.intercept,
    )
    ds.RealWorldValueMappingSequence = Sequence([mapping])


TISSUE_IMAGE_TYPES: dict[str, tuple[str, str]] = {
    "t1_map": ("T1 MAP", "MOLLI"), "t1_sd_map": ("OTHER", "T1 SD"), "t2_map": ("T2 MAP", "NONE"),
    "t2_sd_map": ("OTHER", "T2 SD"), "t2star_map": ("OTHER", "T2STAR MAP"),
    "t2star_sd_map": ("OTHER", "T2STAR SD"), "psir": ("R", "PSIR"), "magnitude_ir": ("M", "IR"),
}  # fmt: skip
"""Image Type values 3 and 4 of the tissue-characterisation series (T1 MAP and T2 MAP are defined terms of
the MR Image module; CS cannot hold '*')."""
_TISSUE_COMMENTS = {
    "t1_map": "native T1 (MOLLI, Look-Locker and sequence corrected)",
    "t1_sd_map": "T1 fit error (SD) of the MOLLI fit",
    "t2_map": "T2 (T2-prepared bSSFP, mono-exponential fit)",
    "t2_sd_map": "T2 fit error (SD)",
    "t2star_map": "T2* (multi-echo GRE, exponential fit, noise-floor truncation)",
    "t2star_sd_map": "T2* fit error (SD)",
}


def _image_type(ds: Dataset, series: ExportSeries) -> None:
    if series.kind in TISSUE_IMAGE_TYPES:
        value3, value4 = TISSUE_IMAGE_TYPES[series.kind]
        derived = series.kind != "magnitude_ir"
        ds.ImageType = ["DERIVED" if derived else "ORIGINAL", "PRIMARY", value3, value4]
        return
    derived = series.kind in ("velocity", "dixon", "mu_map")
    role = "PHASE" if series.kind == "velocity" else "M"
    ds.ImageType = ["DERIVED" if derived else "ORIGINAL", "PRIMARY", role, "NONE"]


def _mr(ds: Dataset, series: ExportSeries, frame: Frame, ctx: SeriesContext) -> None:
    who = ctx.identity
    ds.SOPClassUID = MRImageStorage
    _image_type(ds, series)
    inversion = series.kind in ("psir", "magnitude_ir", "t1_map", "t1_sd_map")
    ds.ScanningSequence = ["IR", "GR"] if inversion else "GR"
    ds.SequenceVariant = "SS" if "FISP" in who.sequence_name.upper() else "NONE"
    ds.ScanOptions = "CG" if series.kind == "cine" else ""
    ds.MRAcquisitionType = "2D"
    ds.RepetitionTime = _ds_string(who.tr_ms) if who.tr_ms is not None else ""
    ds.EchoTime = _ds_string(who.te_ms) if who.te_ms is not None else ""
    ds.EchoTrainLength = "1"
    if who.flip_angle_deg is not None:
        ds.FlipAngle = _ds_string(who.flip_angle_deg)
    if who.field_strength_t is not None:
        ds.MagneticFieldStrength = _ds_string(who.field_strength_t)
    if who.sequence_name:
        ds.SequenceName = who.sequence_name[:16]
    if who.protocol_name:
        ds.ProtocolName = who.protocol_name[:64]
    trigger = meta_float(frame.meta, "TriggerTime")
    rr = meta_float(frame.meta, "rr_ms") or ctx.rr_ms_by_slice.get(frame.slice)
    if trigger is not None:
        ds.TriggerTime = _ds_string(trigger)
        ds.CardiacNumberOfImages = str(ctx.n_phases_by_slice.get(frame.slice, 1))
    if rr is not None and rr > 0:
        ds.NominalInterval = str(round(rr))
        ds.HeartRate = str(round(60000.0 / rr))
    venc = meta_float(frame.meta, "VENC_cm_per_s")
    if venc is not None:
        direction = meta_str(frame.meta, "flow_direction") or "1"
        ds.ImageComments = (
            f"VENC {venc:g} cm/s, flow direction {direction} along the slice normal "
            f"({_ds_string(float(frame.plane.normal[0]))}, {_ds_string(float(frame.plane.normal[1]))}, "
            f"{_ds_string(float(frame.plane.normal[2]))}); velocity = stored value x RescaleSlope cm/s"
        )[:10240]
    if series.kind == "velocity":
        ds.VelocityEncodingDirection = [float(v) for v in frame.plane.normal * float(direction)]
        ds.VelocityEncodingMinimumValue = -float(venc or 0.0)
        ds.VelocityEncodingMaximumValue = float(venc or 0.0)
    if series.kind == "mu_map":
        ds.ImageComments = "linear attenuation coefficient at 511 keV (1/cm) from MR Dixon"
    if inversion:  # LGE: the TI of the IR image; a MOLLI map has eight TIs, so none (Type 2: empty)
        lge = series.kind in ("psir", "magnitude_ir") and who.ti_ms is not None
        ds.InversionTime = _ds_string(who.ti_ms) if lge and who.ti_ms is not None else ""
    if series.kind in _TISSUE_COMMENTS:
        ds.ImageComments = f"{_TISSUE_COMMENTS[series.kind]} in ms = stored value x RescaleSlope"
    _real_world_values(ds, series, frame)


def _corrected_image(meta: dict[str, str | list[str]]) -> list[str]:
    """Corrected Image codes: the image's ``CorrectedImage`` metadata (plugins.pet.corrections), else the
    legacy rule (decay, randoms, normalisation always; attenuation and scatter when recorded)."""
    codes = meta.get("CorrectedImage")
    if codes is not None:
        return [codes] if isinstance(codes, str) else list(codes)
    corrected = ["DECY", "RAN", "NORM"]
    if (meta_str(meta, "AttenuationCorrection") or "none") != "none":
        corrected.append("ATTN")
    if meta_str(meta, "ScatterScale") is not None:
        corrected.append("SCAT")
    return corrected


def _pet(ds: Dataset, series: ExportSeries, frame: Frame, ctx: SeriesContext, n_slices: int) -> None:
    meta = frame.meta
    ds.SOPClassUID = PositronEmissionTomographyImageStorage
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SeriesType = ["STATIC", "IMAGE"]
    corrected = _corrected_image(meta)
    # without attenuation correction the values are only proportional to the activity: never BQML
    ds.Units = "BQML" if "ATTN" in corrected else "PROPCNTS"
    ds.CountsSource = "EMISSION"
    ds.CorrectedImage = corrected
    ds.DecayCorrection = "START"
    ds.RandomsCorrectionMethod = "DLYD" if "RAN" in corrected else "NONE"
    ds.AttenuationCorrectionMethod = (meta_str(meta, "AttenuationCorrection") or "none")[:64]
    ds.ScatterCorrectionMethod = "single scatter, tail fit" if "SCAT" in corrected else "none"
    ds.ReconstructionMethod = (
        f"{'TOF ' if meta_str(meta, 'TOF') == 'True' else ''}OSEM {meta_str(meta, 'Iterations')}i"
        f"{meta_str(meta, 'Subsets')}s"
    )[:64]
    ds.CollimatorType = "NONE"
    ds.NumberOfSlices = n_slices
    ds.ImageIndex = frame.z + 1
    ds.PatientOrientationCodeSequence = Sequence()  # (PatientPosition must then be absent)
    del ds.PatientPosition
    ds.AcquisitionDate, ds.AcquisitionTime = ds.SeriesDate, ds.SeriesTime
    ds.PatientGantryRelationshipCodeSequence = Sequence()
    ds.FrameReferenceTime = _ds_string(1000.0 * (meta_float(meta, "FrameStart_s") or 0.0))
    ds.ActualFrameDuration = str(round(1000.0 * (meta_float(meta, "FrameDuration_s") or 0.0)))
    ds.DecayFactor = "1"
    isotope = (meta_str(meta, "Isotope") or "").upper().replace("-", "")
    item = Dataset()
    if isotope in NUCLIDES:
        code, meaning, half_life_s = NUCLIDES[isotope]
        nuclide = Dataset()
        nuclide.CodeValue, nuclide.CodingSchemeDesignator, nuclide.CodeMeaning = code, "SRT", meaning
        item.RadionuclideCodeSequence = Sequence([nuclide])
        item.RadionuclideHalfLife = _ds_string(half_life_s)
    suv = meta_float(meta, "SUVbwScaleFactor")
    who = ctx.identity
    if suv is not None and who.weight_kg:
        # SUVbw = C · weight_g / dose_Bq  ⇒  dose_Bq = weight_g / factor (decay-corrected to frame start)
        item.RadionuclideTotalDose = _ds_string(1000.0 * who.weight_kg / suv)
    ds.RadiopharmaceuticalInformationSequence = Sequence([item])
    if suv is not None:
        ds.ImageComments = f"SUVbw = stored value x RescaleSlope x {suv:.9g}"


def frame_dataset(series: ExportSeries, frame: Frame, ctx: SeriesContext, sop_uid: str) -> Dataset:
    """The complete DICOM dataset of one frame (with its File Meta Information)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    _patient_study(ds, ctx.identity)
    ds.Modality = series.modality
    ds.SeriesInstanceUID = ctx.series_uid
    ds.Laterality = ""
    ds.PatientPosition = ctx.identity.patient_position
    ds.SeriesNumber = str(ctx.series_number)
    ds.SeriesDescription = series.description
    ds.SeriesDate, ds.SeriesTime = ctx.identity.study_date, ctx.identity.study_time
    ds.ContentDate, ds.ContentTime = ctx.identity.study_date, ctx.identity.study_time
    ds.InstanceNumber = str(frame.instance_number)
    ds.AcquisitionNumber = str(frame.key[4] + 1)
    ds.SOPInstanceUID = UID(sop_uid)
    ds.BurnedInAnnotation = "NO"
    _pixels(ds, series, frame)
    if series.modality == "PT":
        n_slices = sum(1 for f in series.frames if f.key[4] == frame.key[4])
        _pet(ds, series, frame, ctx, n_slices)
    else:
        _mr(ds, series, frame, ctx)
    warnings = frame.meta.get("QualityWarning")
    if warnings:
        text = "; ".join(warnings if isinstance(warnings, list) else [warnings])
        ds.ImageComments = (f"{ds.get('ImageComments', '')} quality warning: {text}").strip()[:10240]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_UID)
    meta.ImplementationVersionName = "RECONSTREAM"
    ds.file_meta = meta
    return ds


def write_dataset(ds: Dataset, path: Path) -> Path:
    """Write ``ds`` as a DICOM Part-10 file (preamble, ``DICM``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
