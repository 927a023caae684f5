"""Exporting a run folder's images as DICOM files (one folder per series) or NIfTI volumes.

Layout of ``OUT/``::

    S<series>_<kind>/IM<instance>.dcm       DICOM, e.g. S001_cine/IM00001.dcm
    S900_flow_report/IM00001.dcm            the flow report as an SR (when the run has flow_report.json)
    S901_cine_function/IM00001.dcm          the cine function report as an SR (with cine_function.json)
    S<series>_<kind>.nii.gz                 NIfTI (float32 real-world values, RAS affine), or
    S<series>_<kind>_slice<k>.nii.gz        one file per slice when the slices are not an even stack
"""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from plugins.io.dicom.geometry import PlaneGeometry, nifti_affine
from plugins.io.dicom.identity import SessionIdentity, session_identity
from plugins.io.dicom.run_folder import RunContents, read_run
from plugins.io.dicom.series import ExportSeries, Frame, build_series
from plugins.io.dicom.writer import SeriesContext, frame_dataset, write_dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportedInstance:
    """One written DICOM file and its identity."""

    path: Path
    study_uid: str
    series_uid: str
    sop_uid: str
    series_number: int
    kind: str


def _context(run: RunContents, identity: SessionIdentity, series: ExportSeries) -> SeriesContext:
    phases: dict[int, set[int]] = defaultdict(set)
    for frame in series.frames:
        phases[frame.slice].add(frame.phase)
    return SeriesContext(
        identity=identity,
        chain=run.chain,
        series_uid=identity.series_uid(run.chain, series.series_index),
        series_number=series.series_index,
        n_phases_by_slice={s: len(p) for s, p in phases.items()},
        rr_ms_by_slice=run.rr_ms_by_slice,
    )


FLOW_REPORT_SERIES = 900
CINE_FUNCTION_SERIES = 901


def export_dicom(run_dir: Path, out_dir: Path) -> list[ExportedInstance]:
    """Write every image of ``run_dir`` as DICOM under ``out_dir`` (and its flow report as an SR); returns
    the instances written."""
    run = read_run(run_dir)
    identity = session_identity(run.header, run.session_key, run.created_utc)
    written = []
    velocity: list[Dataset] = []
    cine: list[Dataset] = []
    for series in build_series(run.images, run.chain):
        ctx = _context(run, identity, series)
        folder = Path(out_dir) / f"S{series.series_index:03d}_{series.kind}"
        for frame in series.frames:
            sop = identity.instance_uid(run.chain, series.series_index, frame.key)
            ds = frame_dataset(series, frame, ctx, sop)
            path = write_dataset(ds, folder / f"IM{frame.instance_number:05d}.dcm")
            written.append(
                ExportedInstance(
                    path, identity.study_uid, ctx.series_uid, sop, series.series_index, series.kind
                )
            )
            if series.kind == "velocity":
                velocity.append(ds)
            if series.kind == "cine":
                cine.append(ds)
    if (Path(run_dir) / "flow_report.json").is_file() and velocity:
        written.append(_write_flow_sr(run, identity, velocity, Path(out_dir)))
    if (Path(run_dir) / "cine_function.json").is_file() and cine:
        written.append(_write_cine_function_sr(run, identity, cine, Path(out_dir)))
    log.info("%s: %d DICOM instances written to %s", run_dir, len(written), out_dir)
    return written


def _write_flow_sr(
    run: RunContents, identity: SessionIdentity, evidence: list[Dataset], out_dir: Path
) -> ExportedInstance:
    from plugins.io.dicom.flow_sr import flow_report_sr

    series_uid = identity.series_uid(run.chain, FLOW_REPORT_SERIES)
    sop = identity.instance_uid(run.chain, FLOW_REPORT_SERIES, (0,))
    sr = flow_report_sr(
        run.run_dir / "flow_report.json", evidence, identity.session_key, series_uid, FLOW_REPORT_SERIES, sop
    )
    path = write_dataset(sr, out_dir / f"S{FLOW_REPORT_SERIES:03d}_flow_report" / "IM00001.dcm")
    return ExportedInstance(path, identity.study_uid, series_uid, sop, FLOW_REPORT_SERIES, "flow_report")


def _write_cine_function_sr(
    run: RunContents, identity: SessionIdentity, evidence: list[Dataset], out_dir: Path
) -> ExportedInstance:
    from plugins.io.dicom.cine_function_sr import cine_function_sr

    series_uid = identity.series_uid(run.chain, CINE_FUNCTION_SERIES)
    sop = identity.instance_uid(run.chain, CINE_FUNCTION_SERIES, (0,))
    sr = cine_function_sr(
        run.run_dir / "cine_function.json",
        evidence,
        identity.session_key,
        series_uid,
        CINE_FUNCTION_SERIES,
        sop,
    )
    path = write_dataset(sr, out_dir / f"S{CINE_FUNCTION_SERIES:03d}_cine_function" / "IM00001.dcm")
    return ExportedInstance(path, identity.study_uid, series_uid, sop, CINE_FUNCTION_SERIES, "cine_function")


def _real_values(series: ExportSeries, frame: Frame) -> np.ndarray:
    return (frame.pixels.astype(np.float64) * series.slope + series.intercept).astype(np.float32)


def _is_even_stack(planes: list[PlaneGeometry]) -> bool:
    if len(planes) < 3:
        return all(np.allclose(p.row_dir, planes[0].row_dir) for p in planes)
    steps = [b.position_mm - a.position_mm for a, b in itertools.pairwise(planes)]
    return all(np.allclose(s, steps[0], atol=1e-3) for s in steps) and all(
        np.allclose(p.row_dir, planes[0].row_dir) and np.allclose(p.col_dir, planes[0].col_dir)
        for p in planes
    )


def _write_nifti(volume_xyzt: np.ndarray, planes: list[PlaneGeometry], path: Path) -> Path:
    import nibabel as nib

    data = volume_xyzt[..., 0] if volume_xyzt.shape[-1] == 1 else volume_xyzt
    img = nib.Nifti1Image(data, nifti_affine(planes))
    img.header.set_xyzt_units("mm", "msec")
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def series_volumes(series: ExportSeries) -> list[tuple[np.ndarray, list[PlaneGeometry], str]]:
    """NIfTI volumes of a series: ``(data (x, y, z, t) float32 in real-world units, planes, suffix)``.

    Frames at one location (slice, z) form the time axis in instance order; locations form z, sorted
    along the slice normal.  Uneven stacks give one volume per location (suffix ``_slice<k>``).
    """
    by_location: dict[tuple[int, int], list[Frame]] = defaultdict(list)
    for frame in series.frames:
        by_location[(frame.slice, frame.z)].append(frame)
    normal = series.frames[0].plane.normal
    locations = sorted(by_location, key=lambda k: float(np.dot(by_location[k][0].plane.position_mm, normal)))
    planes = [by_location[k][0].plane for k in locations]
    counts = {len(by_location[k]) for k in locations}

    def stack(frames_by_z: list[list[Frame]]) -> np.ndarray:
        # (x, y, z, t): frame pixels are (rows = y, columns = x)
        return np.stack(
            [np.stack([_real_values(series, f).T for f in fs], axis=-1) for fs in frames_by_z], axis=2
        )

    if len(counts) == 1 and _is_even_stack(planes):
        return [(stack([by_location[k] for k in locations]), planes, "")]
    return [
        (stack([by_location[k]]), [by_location[k][0].plane], f"_slice{i:03d}")
        for i, k in enumerate(locations)
    ]


def export_nifti(run_dir: Path, out_dir: Path) -> list[Path]:
    """Write every series of ``run_dir`` as NIfTI-1 (``.nii.gz``) under ``out_dir``; returns the paths."""
    run = read_run(run_dir)
    written = []
    for series in build_series(run.images, run.chain):
        for data, planes, suffix in series_volumes(series):
            name = f"S{series.series_index:03d}_{series.kind}{suffix}.nii.gz"
            written.append(_write_nifti(data, planes, Path(out_dir) / name))
    return written
