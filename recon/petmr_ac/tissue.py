"""Tissue classes from Dixon water and fat images: air, lung, fat, soft tissue, and bone when an external
bone estimate (atlas registration, ultrashort/zero-TE image) is supplied.

Steps: the body outline is ``|W| + |F|`` above a fraction of its 99th percentile in the slice (its largest connected
component and any other of at least ``min_body_part_ml``, e.g. the arms), with holes filled slice by slice
(axial); tissue is signal above a lower fraction; lung is the connected
low-signal regions inside the filled body larger than ``min_lung_volume_ml`` (smaller holes are soft
tissue); fat is where the fat signal exceeds ``fat_occupancy_threshold`` of the pure-fat signal (the 99th
percentile of |F| in the body, per slice), i.e. fat fills more than about half of the voxel; the rest of the body is soft
tissue.  Without a bone input no voxel is labelled bone and ``bone_source`` says ``"none"``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from recon.petmr_ac.smoothing import robust_percentile


class TissueClass(enum.IntEnum):
    """Label values of :attr:`TissueSegmentation.labels`."""

    AIR = 0
    LUNG = 1
    FAT = 2
    SOFT_TISSUE = 3
    BONE = 4


BONE_SOURCES = ("none", "atlas", "ute")


#: Default tissue-vs-lung threshold (fraction of the slice reference), the same at 1.5 and 3 T, chosen on the
#: simulator's Dixon exams (``simulate petmr``'s 32-slice exam, 3 echoes, seed 0, labels from the PET torso,
#: 2026-12-05).  Lung reads ≤ 0.07 (3 T) and ≤ 0.08 (1.5 T) of the reference in 95 % of its voxels, the blood
#: pools 0.10–0.18 and 0.13–0.25 (10th–90th percentile; blurred by the heart's motion over the ungated
#: acquisition), the myocardium 0.14–0.33 and 0.19–0.35.  At 0.08, 95–96 % of the lung is lung and 97–98 % of
#: the blood soft tissue; the former 0.12 (3 T) and 0.15 (1.5 T) made 34–41 % of the blood, 53–57 % of the
#: cortical bone and 6–8 % of the soft tissue lung (the 3 T PET-MR myocardium read 2.9 % low for it).
TISSUE_THRESHOLD = 0.08


@dataclass(frozen=True)
class SegmentationSettings:
    """Parameters of :func:`segment_tissues`.

    Attributes:
        signal_threshold_fraction: tissue-vs-lung threshold as a fraction of the slice's 99th-percentile
            |W| + |F| (0..1; the default is :data:`TISSUE_THRESHOLD`, at 1.5 and 3 T).
        outline_threshold_fraction: body-outline threshold, same reference (0..1, ≥ the tissue threshold).
        fat_fraction_threshold: with ``fat_occupancy_threshold = 0``: a tissue voxel with |F| / (|W| + |F|)
            above this is fat (0..1).
        fat_occupancy_threshold: a tissue voxel whose |F| exceeds this fraction of the pure-fat signal (the
            99th percentile of |F| in the body, per slice) is fat: a volume criterion, unlike the signal fat fraction,
            which T1 weighting tilts towards fat (0..1; 0 = use ``fat_fraction_threshold`` instead).
        min_lung_volume_ml: low-signal regions inside the body smaller than this are soft tissue (ml).
        closing_radius_mm: radius of the morphological closing of the body outline (mm; 0 = none).
        min_body_part_ml: separate signal regions at least this large (arms) belong to the body (ml).
    """

    signal_threshold_fraction: float = TISSUE_THRESHOLD
    outline_threshold_fraction: float = 0.3
    fat_fraction_threshold: float = 0.5
    fat_occupancy_threshold: float = 0.5
    min_lung_volume_ml: float = 20.0
    closing_radius_mm: float = 0.0
    min_body_part_ml: float = 10.0

    def __post_init__(self) -> None:
        for name in ("signal_threshold_fraction", "outline_threshold_fraction", "fat_fraction_threshold"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.fat_occupancy_threshold < 1.0:
            raise ValueError(f"fat_occupancy_threshold must be in [0, 1), got {self.fat_occupancy_threshold}")
        if min(self.min_lung_volume_ml, self.closing_radius_mm, self.min_body_part_ml) < 0:
            raise ValueError("min_lung_volume_ml, closing_radius_mm and min_body_part_ml must be ≥ 0")


@dataclass(frozen=True)
class TissueSegmentation:
    """Tissue classes on the MR grid.

    Attributes:
        labels: :class:`TissueClass` value per voxel, shape (z, y, x), uint8.
        body_mask: the filled body outline, shape (z, y, x), bool.
        bone_source: where the bone class came from: ``"none"`` (no bone class), ``"atlas"`` or ``"ute"``.
    """

    labels: np.ndarray
    body_mask: np.ndarray
    bone_source: str

    def __post_init__(self) -> None:
        if self.labels.shape != self.body_mask.shape or self.labels.ndim != 3:
            raise ValueError(
                f"labels {self.labels.shape} and body_mask {self.body_mask.shape} must match (z, y, x)"
            )
        if self.bone_source not in BONE_SOURCES:
            raise ValueError(f"bone_source must be one of {BONE_SOURCES}, got {self.bone_source!r}")


def _ball(radius_mm: float, voxel_size_mm: Sequence[float]) -> np.ndarray:
    """In-plane (y, x) disc structuring element of the given radius, as a (1, ny, nx) array."""
    ry, rx = (max(0, round(radius_mm / float(v))) for v in voxel_size_mm[1:])
    y, x = np.mgrid[-ry : ry + 1, -rx : rx + 1]
    disc = (y / max(ry, 1)) ** 2 + (x / max(rx, 1)) ** 2 <= 1.0
    return disc[None]


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill enclosed holes in every axial (y, x) slice of a (z, y, x) mask: background components (in-plane
    4-connectivity) that do not touch the slice border are holes."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1, 1, :] = structure[1, :, 1] = True
    labels, n = ndimage.label(~mask.astype(bool), structure=structure)
    if n == 0:
        return mask.astype(bool)
    border = np.zeros(n + 1, dtype=bool)
    for edge in (labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]):
        border[np.unique(edge)] = True
    border[0] = True  # label 0 = the mask itself
    return mask.astype(bool) | ~border[labels]


def _large_components(mask: np.ndarray, voxel_ml: float, min_ml: float) -> np.ndarray:
    """Connected components of ``mask`` with at least ``min_ml`` ml, and always the largest one."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel()) * voxel_ml
    sizes[0] = 0.0
    keep = sizes >= max(min_ml, 0.0)
    keep[int(np.argmax(sizes))] = True
    keep[0] = False
    return keep[labels]


#: A slice's reference signal is not taken below this fraction of the volume's (slices beyond the body).
MIN_SLICE_REFERENCE_FRACTION = 0.1


def slice_reference(signal: np.ndarray) -> np.ndarray:
    """Reference signal of every axial slice, shape (z, 1, 1): its 99th-percentile |W| + |F| (the
    subcutaneous fat, present in every slice of a torso), at least ``MIN_SLICE_REFERENCE_FRACTION`` × the
    volume's.  Receive-coil sensitivity falls off along z over a long slab (a factor 2–3 at its ends), so
    one global reference would lose the end slices' body outline."""
    overall = robust_percentile(signal, 99)
    per_slice = np.array([robust_percentile(s, 99) for s in signal], dtype=np.float64)
    return np.maximum(per_slice, MIN_SLICE_REFERENCE_FRACTION * overall)[:, None, None]


def body_outline(
    signal: np.ndarray,
    voxel_size_mm: Sequence[float],
    settings: SegmentationSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """(tissue mask, filled body mask) from the signal magnitude, both (z, y, x) bool.

    Thresholds are fractions of each slice's reference (:func:`slice_reference`).  Tissue (vs lung and
    air) is signal above ``signal_threshold_fraction`` in regions of at least
    ``min_body_part_ml`` (isolated noise voxels in the lungs are not tissue); the outline uses the higher
    ``outline_threshold_fraction``, which puts the skin edge where the partial-volume signal is about half
    of the subcutaneous fat's, and its holes are filled slice by slice."""
    reference = slice_reference(signal)
    voxel_ml = float(np.prod(voxel_size_mm)) / 1000.0
    tissue_threshold = settings.signal_threshold_fraction
    level = max(settings.outline_threshold_fraction, tissue_threshold) * reference
    body = _large_components(signal > level, voxel_ml, settings.min_body_part_ml)
    if settings.closing_radius_mm > 0:
        structure = _ball(settings.closing_radius_mm, voxel_size_mm)
        body = ndimage.binary_closing(body, structure=structure, border_value=0) | body
    filled = fill_holes_per_slice(body)
    tissue = _large_components(signal > tissue_threshold * reference, voxel_ml, settings.min_body_part_ml)
    return tissue & filled, filled


def lung_mask(
    signal_mask: np.ndarray, body: np.ndarray, voxel_size_mm: Sequence[float], min_volume_ml: float
) -> np.ndarray:
    """Connected low-signal regions inside the body with at least ``min_volume_ml`` (bool, (z, y, x))."""
    holes = body & ~signal_mask
    labels, n = ndimage.label(holes)
    if n == 0:
        return holes
    voxel_ml = float(np.prod(voxel_size_mm)) / 1000.0
    sizes = np.bincount(labels.ravel(), minlength=n + 1) * voxel_ml
    keep = sizes >= min_volume_ml
    keep[0] = False
    return keep[labels]


def segment_tissues(
    water: np.ndarray,
    fat: np.ndarray,
    voxel_size_mm: Sequence[float],
    settings: SegmentationSettings | None = None,
    bone_mask: np.ndarray | None = None,
    bone_source: str = "atlas",
) -> TissueSegmentation:
    """Classify every voxel of the Dixon images.

    Args:
        water: water image (complex or magnitude), shape (z, y, x).
        fat: fat image, same shape.
        voxel_size_mm: (z, y, x) voxel size (mm).
        settings: thresholds (defaults of :class:`SegmentationSettings` when ``None``).
        bone_mask: optional bone estimate on the same grid (bool); voxels in it and in the body become bone.
        bone_source: ``"atlas"`` or ``"ute"``: the origin of ``bone_mask`` (recorded in the result).
    """
    settings = settings or SegmentationSettings()
    w, f = np.abs(water), np.abs(fat)
    if w.shape != f.shape or w.ndim != 3:
        raise ValueError(f"water {w.shape} and fat {f.shape} must be equal (z, y, x) shapes")
    signal = w + f
    signal_mask, body = body_outline(signal, voxel_size_mm, settings)
    lungs = lung_mask(signal_mask, body, voxel_size_mm, settings.min_lung_volume_ml)
    fat_fraction = np.where(signal > 0, f / np.maximum(signal, 1e-30), 0.0)
    labels = np.full(w.shape, TissueClass.AIR, dtype=np.uint8)
    labels[body] = TissueClass.SOFT_TISSUE
    is_fat = fat_fraction > settings.fat_fraction_threshold
    if settings.fat_occupancy_threshold > 0:
        is_fat = f > settings.fat_occupancy_threshold * slice_reference(np.where(body, f, 0.0))
    labels[body & signal_mask & is_fat] = TissueClass.FAT
    labels[lungs] = TissueClass.LUNG
    source = "none"
    if bone_mask is not None:
        if bone_mask.shape != w.shape:
            raise ValueError(f"bone_mask {bone_mask.shape} must match the images {w.shape}")
        if bone_source not in ("atlas", "ute"):
            raise ValueError(f"bone_source must be 'atlas' or 'ute', got {bone_source!r}")
        labels[bone_mask.astype(bool) & body & ~lungs] = TissueClass.BONE
        source = bone_source
    return TissueSegmentation(labels=labels, body_mask=body, bone_source=source)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Sørensen-Dice overlap 2|A∩B| / (|A| + |B|) of two masks (1.0 when both are empty)."""
    a, b = a.astype(bool), b.astype(bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float(np.logical_and(a, b).sum()) / total
