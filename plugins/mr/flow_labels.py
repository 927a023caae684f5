"""Anatomical labels for automatically detected vessels.

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


def label_vessels(vessels: Sequence[VesselReport], mode: str, notes: list[str]) -> list[VesselReport]:
    """Vessels with anatomical labels per ``mode`` (``none`` keeps the generic labels)."""
    if mode == "none":
        return list(vessels)
    if mode != "axial_great_vessels":
        raise ValueError(f"unknown vessel labeling {mode!r}; allowed: none, axial_great_vessels")
    out: list[VesselReport] = []
    for slice_index in sorted({v.slice_index for v in vessels}):
        group = [v for v in vessels if v.slice_index == slice_index]
        labels = _label_slice(group, notes)
        for k, v in enumerate(group):
            out.append(dataclasses.replace(v, label=labels[k]) if k in labels else v)
    return out
