"""Score a run's images against the simulator's truth file (what ``reconstream compare`` prints).

MR (truth written by :mod:`hardware_sim.mr.truth`, standalone or as the group ``/mr`` of a PET-MR truth):

- magnitude series (cine, flow magnitude, Dixon water/fat): nRMSE = ‖a·|x̂| − |x|‖₂ / ‖x‖₂ inside the body
  mask, with a the least-squares scale of the series, per slice and per series, and SSIM (7 × 7 box windows,
  both images divided by the truth's maximum in the slice) per slice.  The reference x is the truth image
  times the coil root-sum-of-squares (the chains' coil combination keeps it), at each cardiac phase;
- flow velocity series: RMSE (cm/s) inside the vessels; ``flow_report.json`` (when present): net flow of the
  aorta and the pulmonary artery and Qp:Qs against the truth;
- Dixon fat fraction: mean absolute error (percentage points) inside the body;
- LV volumes: any JSON report of the run with ``lv_edv_ml`` / ``lv_esv_ml`` against the truth's extremes.

PET (truth of :mod:`hardware_sim.pet.truth`): the truth activity is resampled to each PET image's grid; total
activity inside the field of view and the mean per tissue label (relative bias); on the NEMA phantom the
recovery coefficient of each sphere (mean in the sphere / true concentration) and the background variability
(standard deviation / mean of 10 mm block means in the background kept 15 mm away from spheres, lung insert
and walls).  The μ-map series (meta ``Role = mu_map_511keV``): Dice of tissue (μ > 0.05 /cm) and of lung
(0.005 < μ ≤ 0.05 /cm against the true lung label), over the MR-covered slices when the series says which.

Truth fields are read defensively: missing ones skip their score (other fields may appear).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import ismrmrd
import numpy as np
from scipy import ndimage

from plugins.io.mumap_files import MUMAP_ROLE, _volume_grid
from recon.petmr_ac.grid import VoxelGrid, axis_aligned_grid, grid_from_ismrmrd, resample

TISSUE_MU_PER_CM = 0.05
LUNG_MU_PER_CM = (0.005, 0.05)


def meta_of(image: ismrmrd.Image) -> dict[str, Any]:
    """An image's meta attributes (single values as strings, repeated ones as lists)."""
    if not image.attribute_string:
        return {}
    meta = ismrmrd.Meta.deserialize(image.attribute_string)
    return {str(k): meta[k] for k in meta}


def read_run(run_dir: Path) -> tuple[dict[int, list[ismrmrd.Image]], dict[str, Any]]:
    """(images by series, JSON reports by file name) of a run folder."""
    path = Path(run_dir) / "images.h5"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no images.h5 (is it the --out folder of a run?)")
    dset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    try:
        series: dict[int, list[ismrmrd.Image]] = {}
        for group in sorted(g for g in dset.list() if g.startswith("image_")):
            images = [dset.read_image(group, i) for i in range(dset.number_of_images(group))]
            series[int(group.split("_", 1)[1])] = images
    finally:
        dset.close()
    reports = {}
    for report in sorted(Path(run_dir).glob("*.json")):
        try:
            reports[report.name] = json.loads(report.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
    return series, reports


def inner(a: np.ndarray, b: np.ndarray) -> float:
    """Σ aᵢbᵢ in float64 by numpy's pairwise summation, not BLAS: the same bits whatever BLAS's thread count
    (a score compared across processes, e.g. a sweep point on a Ray worker and here, must not depend on it)."""
    a64, b64 = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()  # float64 input: no copy
    return float(np.sum(a64 * b64))


def least_squares_scale(estimate: np.ndarray, truth: np.ndarray) -> float:
    """The scale a minimising ‖a·e − t‖₂ (0 for an all-zero estimate)."""
    denominator = inner(estimate, estimate)
    return inner(estimate, truth) / denominator if denominator > 0 else 0.0


def nrmse(estimate: np.ndarray, truth: np.ndarray) -> float:
    """‖a·e − t‖₂/‖t‖₂ with a the least-squares scale (both already masked, real)."""
    e, t = estimate.astype(np.float64).ravel(), truth.astype(np.float64).ravel()
    a = least_squares_scale(e, t)
    norm = inner(t, t) ** 0.5
    residual = a * e - t
    return inner(residual, residual) ** 0.5 / norm if norm > 0 else float("nan")


def ssim(estimate: np.ndarray, truth: np.ndarray, window: int = 7) -> float:
    """Mean SSIM (Wang 2004, box windows) of two 2-D images already on one scale; data range = truth max."""
    data_range = float(np.max(truth)) or 1.0
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    x, y = estimate.astype(np.float64), truth.astype(np.float64)
    mx, my = ndimage.uniform_filter(x, window), ndimage.uniform_filter(y, window)
    vx = ndimage.uniform_filter(x * x, window) - mx * mx
    vy = ndimage.uniform_filter(y * y, window) - my * my
    cxy = ndimage.uniform_filter(x * y, window) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def _field(group: h5py.Group, name: str) -> Any:
    """A truth field (dataset as array, attribute as scalar) or ``None`` when this truth has none."""
    if name in group and isinstance(group[name], h5py.Dataset):
        return group[name][()]
    if name in group.attrs:
        value = group.attrs[name]
        return value.item() if isinstance(value, np.generic) else value
    return None


def _slices(images: list[ismrmrd.Image]) -> dict[int, np.ndarray]:
    """Per slice, the (phase, y, x) stack of 2-D images ordered by (set, phase, contrast), real parts."""
    by_slice: dict[int, list[ismrmrd.Image]] = defaultdict(list)
    for image in images:
        by_slice[int(image.slice)].append(image)
    out = {}
    for s, group in by_slice.items():
        group.sort(key=lambda im: (int(im.set), int(im.phase), int(im.contrast), int(im.image_index)))
        out[s] = np.stack([np.abs(np.asarray(im.data[0, 0])) for im in group]).astype(np.float64)
    return out


def score_magnitude_series(
    images: list[ismrmrd.Image], reference: np.ndarray, mask: np.ndarray
) -> dict[str, Any] | None:
    """nRMSE per series (one scale) and per slice (its own scale), SSIM per slice, of ``images`` against
    ``reference`` (S, P, Y, X) inside ``mask`` (S, Y, X); ``None`` when the shapes do not match."""
    stacks = _slices(images)
    if sorted(stacks) != list(range(reference.shape[0])):
        return None
    if any(stacks[s].shape != reference[s].shape for s in stacks):
        return None
    estimate = np.stack([stacks[s] for s in range(reference.shape[0])])
    m = np.broadcast_to(mask[:, None], estimate.shape)
    e, t = estimate[m], reference[m]
    per_slice = []
    for s in range(reference.shape[0]):
        ms = np.broadcast_to(mask[s][None], estimate[s].shape)
        es, ts = estimate[s][ms], reference[s][ms]
        a_s = least_squares_scale(es, ts)  # the slice's own scale
        values = [
            ssim(a_s * estimate[s, p] * mask[s], reference[s, p] * mask[s]) for p in range(estimate.shape[1])
        ]
        per_slice.append({"slice": s, "nrmse": nrmse(es, ts), "ssim": float(np.mean(values))})
    return {"nrmse": nrmse(e, t), "slices": per_slice, "n_images": len(images)}


def score_mr(
    series: dict[int, list[ismrmrd.Image]], reports: dict[str, Any], truth: h5py.Group
) -> dict[str, Any]:
    """The MR scores of the module docstring."""
    protocol = str(_field(truth, "protocol") or "")
    images, rss, body = (_field(truth, n) for n in ("images", "coil_rss", "body_mask"))
    scores: dict[str, Any] = {"protocol": protocol, "series": {}}
    if images is None or rss is None or body is None:
        scores["note"] = "truth has no images, coil_rss or body_mask"
        return scores
    body = np.asarray(body, dtype=bool)
    for index, group in sorted(series.items()):
        meta = meta_of(group[0])
        if int(group[0].matrix_size[2]) > 1 or meta.get("Modality") == "PT" or meta.get("Role") == MUMAP_ROLE:
            continue
        scored = _score_mr_series(protocol, meta, group, np.asarray(images), np.asarray(rss), body, truth)
        if scored is not None:
            scores["series"][str(index)] = scored
    scores.update(_flow_report_scores(reports, truth))
    scores.update(_lv_scores(reports, truth))
    return scores


def _score_mr_series(
    protocol: str,
    meta: dict[str, Any],
    group: list[ismrmrd.Image],
    images: np.ndarray,
    rss: np.ndarray,
    body: np.ndarray,
    truth: h5py.Group,
) -> dict[str, Any] | None:
    dixon_map = meta.get("DixonMap")
    if meta.get("PC_role") == "velocity":
        return _score_velocity(group, truth)
    if dixon_map in ("water", "fat"):
        plane = _field(truth, str(dixon_map))
        if plane is None:
            return None
        return score_magnitude_series(group, (np.abs(plane) * rss)[:, None], body)
    if dixon_map == "fat_fraction":
        return _score_fat_fraction(group, truth, body)
    if dixon_map is not None:
        return None
    if protocol == "flow":
        reference = np.abs(images[:, 0]) * rss[:, None]
    elif protocol == "cine":
        reference = np.abs(images) * rss[:, None]
    else:
        return None
    return score_magnitude_series(group, reference, body)


def _score_velocity(group: list[ismrmrd.Image], truth: h5py.Group) -> dict[str, Any] | None:
    velocity = _field(truth, "velocity_cm_per_s")
    vessels = [m for m in (_field(truth, "aorta_mask"), _field(truth, "pa_mask")) if m is not None]
    if velocity is None or not vessels:
        return None
    stacks = {s: np.stack([np.asarray(im.data[0, 0]).real for im in sorted(
        (im for im in group if int(im.slice) == s), key=lambda im: int(im.phase))]) for s in {int(i.slice) for i in group}}  # fmt: skip
    mask = np.logical_or.reduce([np.asarray(m, dtype=bool) for m in vessels])
    errors = []
    for s, stack in stacks.items():
        if s >= velocity.shape[0] or stack.shape != velocity[s].shape:
            return None
        errors.append((stack - velocity[s])[:, mask[s]].ravel())
    err = np.concatenate(errors)
    return {"velocity_rmse_cm_per_s": float(np.sqrt(np.mean(err**2))) if err.size else None}


def _score_fat_fraction(
    group: list[ismrmrd.Image], truth: h5py.Group, body: np.ndarray
) -> dict[str, Any] | None:
    ff = _field(truth, "fat_fraction")
    if ff is None:
        return None
    stacks = _slices(group)
    if sorted(stacks) != list(range(ff.shape[0])) or stacks[0].shape[1:] != ff.shape[1:]:
        return None
    estimate = np.stack([stacks[s][0] for s in range(ff.shape[0])])
    error = np.abs(estimate - 100.0 * ff)[body]
    return {"fat_fraction_mae_percent_points": float(error.mean()) if error.size else None}


def _flow_report_scores(reports: dict[str, Any], truth: h5py.Group) -> dict[str, Any]:
    report = next(
        (r for n, r in reports.items() if n.startswith("flow_report") and isinstance(r, dict)), None
    )
    if report is None:
        return {}
    out: dict[str, Any] = {}
    for vessel in report.get("vessels", []):
        label, volumes = str(vessel.get("label", "")), vessel.get("volumes", {})
        key = "aorta_net_ml" if "aort" in label else "pa_stroke_ml" if "pulm" in label else None
        true = _field(truth, key) if key else None
        if true is not None and volumes.get("net_ml") is not None:
            out[f"flow_{label}_net_ml"] = {"run": volumes["net_ml"], "truth": float(true),
                                           "error_ml": volumes["net_ml"] - float(true)}  # fmt: skip
    true_ratio = _field(truth, "qp_qs")
    if report.get("qp_qs") is not None and true_ratio is not None:
        out["qp_qs"] = {"run": report["qp_qs"], "truth": float(true_ratio),
                        "error": report["qp_qs"] - float(true_ratio)}  # fmt: skip
    return out


def _lv_scores(reports: dict[str, Any], truth: h5py.Group) -> dict[str, Any]:
    lv = _field(truth, "lv_volume_ml")
    if lv is None:
        return {}
    out: dict[str, Any] = {}
    for report in reports.values():
        if not isinstance(report, dict):
            continue
        for key, true in (("lv_edv_ml", float(np.max(lv))), ("lv_esv_ml", float(np.min(lv)))):
            if isinstance(report.get(key), int | float):
                out[key] = {"run": float(report[key]), "truth": true, "error_ml": float(report[key]) - true}
    return out


# ---------------------------------------------------------------------------------------------------- PET


def series_grid(images: list[ismrmrd.Image]) -> tuple[np.ndarray, VoxelGrid]:
    """(volume, grid) of one series: one 3-D image (geometric centre) or a stack of slices (FFT centre)."""
    first = images[0]
    if int(first.matrix_size[2]) > 1:
        return np.asarray(first.data[0], dtype=np.float64), _volume_grid(first)
    ordered = sorted(images, key=lambda im: int(im.slice))
    volume = np.stack([np.asarray(im.data[0, 0], dtype=np.float64) for im in ordered])
    normal = np.asarray(first.slice_dir, dtype=np.float64)
    positions = [float(np.dot(im.position, normal)) for im in ordered]
    spacing = positions[1] - positions[0] if len(positions) > 1 else float(first.field_of_view[2])
    nx, ny = int(first.matrix_size[0]), int(first.matrix_size[1])
    grid = grid_from_ismrmrd(
        ordered[0].position, first.read_dir, first.phase_dir, first.slice_dir,
        (float(first.field_of_view[0]), float(first.field_of_view[1])), (nx, ny, len(ordered)), spacing,
    )  # fmt: skip
    return volume, grid


def _phantom(truth: h5py.File) -> tuple[dict[str, np.ndarray], VoxelGrid, list[str], str]:
    ph = truth["phantom"]
    grid = axis_aligned_grid(
        tuple(ph.attrs["shape_zyx"]), tuple(ph.attrs["voxel_size_mm"]), tuple(ph.attrs["origin_mm"])
    )
    arrays = {name: ph[name][...] for name in ("activity_bq_per_ml", "mu_per_cm", "labels") if name in ph}
    return arrays, grid, list(json.loads(ph.attrs.get("label_names", "[]"))), str(ph.attrs.get("name", ""))


def score_pet(series: dict[int, list[ismrmrd.Image]], truth: h5py.File) -> dict[str, Any]:
    """PET activity, NEMA and μ-map scores of the module docstring."""
    arrays, grid, names, phantom_name = _phantom(truth)
    out: dict[str, Any] = {"phantom": phantom_name, "series": {}}
    for index, images in sorted(series.items()):
        meta = meta_of(images[0])
        volume, image_grid = series_grid(images)
        if meta.get("Modality") == "PT" and "activity_bq_per_ml" in arrays:
            out["series"][str(index)] = _score_activity(
                volume, image_grid, arrays, grid, names, phantom_name, meta
            )
        elif meta.get("Role") == MUMAP_ROLE and "mu_per_cm" in arrays:
            out["series"][str(index)] = _score_mumap(volume, image_grid, arrays, grid, names, meta)
    return out


def _as_list(value: Any) -> list[str]:
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


def _labels_on(image_grid: VoxelGrid, arrays: dict[str, np.ndarray], grid: VoxelGrid) -> np.ndarray:
    return resample(arrays["labels"].astype(np.float32), grid, image_grid, order=0).astype(np.int64)


def _score_activity(
    volume: np.ndarray,
    image_grid: VoxelGrid,
    arrays: dict[str, np.ndarray],
    grid: VoxelGrid,
    names: list[str],
    phantom_name: str,
    meta: dict[str, Any],
) -> dict[str, Any]:
    true = resample(arrays["activity_bq_per_ml"], grid, image_grid, order=1).astype(np.float64)
    voxel_ml = float(np.prod(image_grid.voxel_size_mm)) / 1000.0
    total, true_total = float(volume.sum()) * voxel_ml, float(true.sum()) * voxel_ml
    out: dict[str, Any] = {
        "units": meta.get("Units", ""),
        "total_activity_mbq": total / 1e6,
        "true_total_activity_in_fov_mbq": true_total / 1e6,
        "total_activity_bias": total / true_total - 1.0 if true_total > 0 else None,
        "quality_warnings": _as_list(meta.get("QualityWarning", [])),
    }
    if "labels" not in arrays:
        return out
    labels = _labels_on(image_grid, arrays, grid)
    interior = ndimage.binary_erosion(labels > 0, iterations=1)
    biases, floor = {}, 0.05 * float(true.max())  # cold regions (walls, lung insert) carry no relative bias
    for value, name in enumerate(names):
        region = (labels == value) & interior
        if value == 0 or region.sum() < 8 or float(true[region].mean()) <= floor:
            continue
        biases[name] = float(volume[region].mean() / true[region].mean() - 1.0)
    out["mean_bias_by_label"] = biases
    if phantom_name == "nema":
        out.update(_nema(volume, true, labels, names, image_grid))
    return out


def _nema(
    volume: np.ndarray, true: np.ndarray, labels: np.ndarray, names: list[str], grid: VoxelGrid
) -> dict[str, Any]:
    recovery = {}
    for value, name in enumerate(names):
        if name.startswith("sphere_") and (labels == value).any():
            region = labels == value
            recovery[name] = (
                float(volume[region].mean() / true[region].mean()) if true[region].mean() > 0 else None
            )
    background = labels == names.index("water") if "water" in names else np.zeros_like(labels, bool)
    margin = max(1, round(15.0 / min(grid.voxel_size_mm)))
    kept = ndimage.binary_erosion(background, iterations=margin)
    block = max(1, round(10.0 / min(grid.voxel_size_mm)))
    means = [volume[tuple(slice(i, i + block) for i in corner)][kept[tuple(slice(i, i + block) for i in corner)]].mean()
             for corner in _block_corners(kept, block)]  # fmt: skip
    variability = float(np.std(means) / np.mean(means)) if len(means) > 1 and np.mean(means) > 0 else None
    return {
        "recovery_coefficients": recovery,
        "background_variability": variability,
        "n_background_blocks": len(means),
    }


def _block_corners(mask: np.ndarray, block: int) -> Iterator[tuple[int, int, int]]:
    """Corners of non-overlapping ``block``³ cubes lying wholly inside ``mask``."""
    for z in range(0, mask.shape[0] - block + 1, block):
        for y in range(0, mask.shape[1] - block + 1, block):
            for x in range(0, mask.shape[2] - block + 1, block):
                if mask[z : z + block, y : y + block, x : x + block].all():
                    yield z, y, x


def dice(a: np.ndarray, b: np.ndarray) -> float | None:
    """2|A∩B| / (|A| + |B|), ``None`` when both are empty."""
    total = int(a.sum()) + int(b.sum())
    return 2.0 * float((a & b).sum()) / total if total else None


def _score_mumap(
    volume: np.ndarray,
    image_grid: VoxelGrid,
    arrays: dict[str, np.ndarray],
    grid: VoxelGrid,
    names: list[str],
    meta: dict[str, Any],
) -> dict[str, Any]:
    true = resample(arrays["mu_per_cm"], grid, image_grid, order=1)
    region = np.ones(volume.shape, dtype=bool)
    coverage = str(meta.get("MRAxialCoverage_mm", ""))
    if ".." in coverage:
        low, high = (float(v) for v in coverage.split(".."))
        z = image_grid.index_to_patient(np.stack([np.arange(volume.shape[0]), np.zeros(volume.shape[0]),
                                                  np.zeros(volume.shape[0])], axis=1))[:, 0]  # fmt: skip
        region &= ((z >= low) & (z <= high))[:, None, None]
    out: dict[str, Any] = {
        "region": f"z {coverage} mm" if ".." in coverage else "whole map",
        "tissue_dice": dice((volume > TISSUE_MU_PER_CM) & region, (true > TISSUE_MU_PER_CM) & region),
    }
    if "labels" in arrays and "lung" in names:
        lung_true = (_labels_on(image_grid, arrays, grid) == names.index("lung")) & region
        lo, hi = LUNG_MU_PER_CM
        body = ndimage.binary_fill_holes(volume > TISSUE_MU_PER_CM)
        out["lung_dice"] = dice((volume > lo) & (volume <= hi) & body & region, lung_true)
    return out


def score_run(run_dir: Path, truth_path: Path) -> dict[str, Any]:
    """Every score this module knows for ``run_dir`` against ``truth_path`` (JSON-able)."""
    if not Path(truth_path).is_file():
        raise FileNotFoundError(f"{truth_path}: no such truth file")
    series, reports = read_run(Path(run_dir))
    scores: dict[str, Any] = {"run": str(run_dir), "truth": str(truth_path)}
    with h5py.File(truth_path, "r") as truth:
        if "phantom" in truth:
            scores["pet"] = score_pet(series, truth)
            if "mr" in truth:
                scores["mr"] = score_mr(series, reports, truth["mr"])
        elif "images" in truth and "protocol" in truth.attrs:
            scores["mr"] = score_mr(series, reports, truth)
        else:
            raise ValueError(
                f"{truth_path}: neither an MR truth (images, protocol) nor a PET truth (/phantom)"
            )
    return scores
