"""Anatomical labels for automatically detected vessels.

``planned`` (default ``auto`` when the header says what each slice was planned on, user parameter
``flow_plane_vessels``: one vessel name per slice, comma-separated): a flow plane is placed by the
technologist perpendicular to one vessel, centred on it; the detected vessel nearest the slice centre
(within ``PLANNED_MAX_DISTANCE_MM``) gets the planned label, the others keep generic labels.

``axial_great_vessels``: in an axial plane above the aortic valve the ascending aorta and the main
pulmonary artery carry blood cranially (towards the head, +z in the patient's LPS frame) and the
descending aorta caudally.  Of the two cranially flowing vessels with the largest net volume, the more
anterior one (smaller LPS y) is the pulmonary artery, the other the ascending aorta; the caudally
flowing vessel with the largest net volume is the descending aorta.  Other vessels keep their
generic ``vessel_<slice>_<index>`` label.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from plugins.mr.flow_report_render import VesselReport


def _label_slice(vessels: list[VesselReport], notes: list[str]) -> dict[int, str]:
    cranial: list[int] = []
    caudal: list[int] = []
    for k, v in enumerate(vessels):
        if v.forward_direction_lps is None or v.centroid_mm is None:
            notes.append(f"slice {v.slice_index}: no image geometry, vessels left unlabelled")
            return {}
        (cranial if v.forward_direction_lps[2] > 0 else caudal).append(k)
    labels: dict[int, str] = {}
    top = sorted(cranial, key=lambda k: -vessels[k].volumes.net_ml)[:2]
    if len(top) == 2:
        pa, ao = sorted(top, key=lambda k: vessels[k].centroid_mm[1])  # type: ignore[index]
        labels[pa], labels[ao] = "pulmonary_artery", "ascending_aorta"
    elif top:
        notes.append(f"slice {vessels[top[0]].slice_index}: only one cranially flowing vessel; not labelled")
    if caudal:
        labels[max(caudal, key=lambda k: vessels[k].volumes.net_ml)] = "descending_aorta"
    return labels


PLANNED_MAX_DISTANCE_MM = 25.0
"""A planned vessel's centroid lies within this distance of the slice centre (a vessel radius plus
planning tolerance)."""


def planned_vessels_from_header(header: Any) -> list[str] | None:
    """Per-slice planned vessel names from the user parameter ``flow_plane_vessels`` (None if absent)."""
    params = getattr(header, "userParameters", None)
    for p in getattr(params, "userParameterString", None) or []:
        if p.name == "flow_plane_vessels":
            return [name.strip() for name in str(p.value).split(",")]
    return None


def _label_planned(
    vessels: list[VesselReport], target: str, centre_mm: tuple[float, float, float] | None, notes: list[str]
) -> dict[int, str]:
    if centre_mm is None or any(v.centroid_mm is None for v in vessels):
        notes.append(f"{target}: no image geometry, vessels left unlabelled")
        return {}
    if not vessels:
        notes.append(f"{target}: no vessel detected in its planned slice")
        return {}
    centre = np.asarray(centre_mm)
    distances = [float(np.linalg.norm(np.asarray(v.centroid_mm) - centre)) for v in vessels]
    k = int(np.argmin(distances))
    if distances[k] > PLANNED_MAX_DISTANCE_MM:
        notes.append(
            f"slice {vessels[k].slice_index}: no vessel within {PLANNED_MAX_DISTANCE_MM:.0f} mm of the planned "
            f"{target} position (nearest {distances[k]:.0f} mm); not labelled"
        )
        return {}
    return {k: target}


def label_vessels(
    vessels: Sequence[VesselReport],
    mode: str,
    notes: list[str],
    planned: Sequence[str] | None = None,
    slice_centres_mm: dict[int, tuple[float, float, float]] | None = None,
) -> list[VesselReport]:
    """Vessels with anatomical labels per ``mode``: ``none`` keeps the generic labels,
    ``axial_great_vessels`` the axial rule, ``planned`` the plan's vessel per slice (``planned`` names
    by slice index, ``slice_centres_mm`` the slices' centres), ``auto`` planned when known, else axial."""
    if mode == "none":
        return list(vessels)
    if mode not in ("auto", "planned", "axial_great_vessels"):
        raise ValueError(
            f"unknown vessel labeling {mode!r}; allowed: none, auto, planned, axial_great_vessels"
        )
    if mode == "planned" and planned is None:
        notes.append("labeling 'planned' but the header names no planned vessels; using the axial rule")
    use_plan = mode in ("auto", "planned") and planned is not None
    out: list[VesselReport] = []
    for slice_index in sorted({v.slice_index for v in vessels}):
        group = [v for v in vessels if v.slice_index == slice_index]
        if use_plan and planned is not None and slice_index < len(planned):
            centre = (slice_centres_mm or {}).get(slice_index)
            labels = _label_planned(group, planned[slice_index], centre, notes)
        else:
            labels = _label_slice(group, notes)
        for k, v in enumerate(group):
            out.append(dataclasses.replace(v, label=labels[k]) if k in labels else v)
    return out
