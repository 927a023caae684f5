"""Grouping a run's ISMRMRD images into DICOM series: what each series is, its units and integer pixels.

A series is all images with one ``image_series_index``.  Its kind comes from the image meta the chains set:

=============  ==========================================  ========  ===========================
kind           recognised by                               modality  real-world unit (UCUM)
=============  ==========================================  ========  ===========================
``pet``        ``Modality = PT``                           PT        Bq/mL (Units ``BQML``)
``mu_map``     ``Role = mu_map_511keV`` (``Unit = 1/cm``)  MR        ``/cm``
``velocity``   ``PC_role = velocity`` / ``background_offset``  MR    ``cm/s``
``dixon``      ``DixonMap`` (``Unit`` percent, Hz, a.u.)   MR        ``%``, ``Hz`` or none
``t1_map`` …   ``Role`` t1, t2, t2star (and ``*_sd``)      MR        ``ms``
``psir``       ``Role = psir`` / ``magnitude_ir``           MR        none (normalised a.u.)
``cine``       ``TriggerTime``                             MR        none (display-scaled)
``mr``         anything else                               MR        none
=============  ==========================================  ========  ===========================

Float pixels are stored as 16-bit integers with one Rescale Slope for the whole series (intercept 0):
unsigned with ``slope = max / 65000`` when nothing is negative, else signed with ``slope = max|v| / 32000``
(velocities with VENC 150 cm/s: ≈ 0.005 cm/s per step).  Integer pixels are kept as they are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import ismrmrd
import numpy as np

from plugins.io.dicom.geometry import PlaneGeometry, image_planes

UCUM_UNITS: dict[str, tuple[str, str]] = {
    "cm/s": ("cm/s", "centimeter per second"),
    "1/cm": ("/cm", "per centimeter"),
    "percent": ("%", "Percent"),
    "%": ("%", "Percent"),
    "Hz": ("Hz", "Hertz"),
    "ms": ("ms", "millisecond"),
    "Bq/ml": ("Bq/mL", "Becquerels/milliliter"),
}


def image_meta(image: ismrmrd.Image) -> dict[str, str | list[str]]:
    """The image's meta attributes (multi-valued ones as lists of strings)."""
    if not image.attribute_string:
        return {}
    meta = ismrmrd.Meta.deserialize(image.attribute_string)
    out: dict[str, str | list[str]] = {}
    for key in meta:
        value = meta[key]
        out[str(key)] = [str(v) for v in value] if isinstance(value, list) else str(value)
    return out


def meta_str(meta: dict[str, str | list[str]], key: str) -> str | None:
    value = meta.get(key)
    if isinstance(value, list):
        return value[0] if value else None
    return value


def meta_float(meta: dict[str, str | list[str]], key: str) -> float | None:
    text = meta_str(meta, key)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


@dataclass
class Frame:
    """One 2-D DICOM image: ``pixels`` (rows, columns) as stored, geometry, and identity.

    ``key``: the counters that identify it within its series (slice, phase, contrast, set, repetition,
    average, image_index, z, occurrence) — input of its deterministic SOP Instance UID.
    """

    pixels: np.ndarray
    plane: PlaneGeometry
    key: tuple[int, ...]
    meta: dict[str, str | list[str]]
    slice: int
    phase: int
    z: int
    acquisition_time_stamp: int
    instance_number: int = 0


@dataclass
class ExportSeries:
    """One series ready to write: kind, modality, unit, integer encoding and frames in instance order.

    ``slope``/``intercept``: stored integer × slope + intercept = value in ``unit`` (or display units);
    ``signed``: pixel representation 1 (int16) or 0 (uint16).
    """

    series_index: int
    kind: str
    modality: str
    unit: str | None
    description: str
    slope: float
    intercept: float
    signed: bool
    frames: list[Frame] = field(default_factory=list)
    meta: dict[str, str | list[str]] = field(default_factory=dict)

    @property
    def ucum(self) -> tuple[str, str] | None:
        return UCUM_UNITS.get(self.unit) if self.unit else None


RELAXOMETRY_KINDS = {"t1": "t1_map", "t1_sd": "t1_sd_map", "t2": "t2_map", "t2_sd": "t2_sd_map",
                     "t2star": "t2star_map", "t2star_sd": "t2star_sd_map"}  # fmt: skip
"""``Role`` of the tissue-characterisation maps (plugins.mr.mapping_fits, in ms) → series kind."""
LGE_KINDS = ("psir", "magnitude_ir")
_DESCRIPTIONS = {
    "t1_map": "T1 map MOLLI (ms)", "t1_sd_map": "T1 SD map MOLLI (ms)", "t2_map": "T2 map (ms)",
    "t2_sd_map": "T2 SD map (ms)", "t2star_map": "T2* map (ms)", "t2star_sd_map": "T2* SD map (ms)",
    "psir": "LGE PSIR", "magnitude_ir": "LGE magnitude IR",
}  # fmt: skip


def _kind(meta: dict[str, str | list[str]]) -> tuple[str, str, str | None]:
    if meta_str(meta, "Modality") == "PT":
        return "pet", "PT", "Bq/ml" if meta_str(meta, "Units") in (None, "Bq/ml") else meta_str(meta, "Units")
    if meta_str(meta, "Role") == "mu_map_511keV":
        return "mu_map", "MR", meta_str(meta, "Unit") or "1/cm"
    if meta_str(meta, "PC_role") in ("velocity", "background_offset"):
        return "velocity", "MR", meta_str(meta, "units") or "cm/s"
    role = meta_str(meta, "Role")
    if role in RELAXOMETRY_KINDS and meta_str(meta, "Unit") == "ms":
        return RELAXOMETRY_KINDS[role], "MR", "ms"
    if role in LGE_KINDS:
        return str(role), "MR", None
    if meta_str(meta, "DixonMap") is not None:
        unit = meta_str(meta, "Unit")
        return "dixon", "MR", unit if unit in UCUM_UNITS else None
    if meta_str(meta, "TriggerTime") is not None:
        return "cine", "MR", None
    return "mr", "MR", None


def _description(kind: str, meta: dict[str, str | list[str]], chain: str) -> str:
    role = meta_str(meta, "PC_role")
    names = {
        "pet": "PET activity (Bq/ml)",
        "mu_map": "mu-map 511 keV (1/cm)",
        "velocity": "PC velocity (cm/s)" if role == "velocity" else "PC background offset (cm/s)",
        "dixon": f"Dixon {meta_str(meta, 'DixonMap')}",
        "cine": "cine",
        **_DESCRIPTIONS,
    }
    if kind == "mr" and role == "magnitude":
        return f"{chain} PC magnitude"
    return f"{chain} {names.get(kind, 'MR')}"[:64]


def _encoding(arrays: list[np.ndarray], kind: str) -> tuple[float, bool, list[np.ndarray]]:
    if all(np.issubdtype(a.dtype, np.integer) for a in arrays):
        lo = min(int(a.min()) for a in arrays)
        hi = max(int(a.max()) for a in arrays)
        if lo >= 0 and hi <= 65535:
            return 1.0, False, [a.astype(np.uint16) for a in arrays]
        if lo >= -32768 and hi <= 32767:
            return 1.0, True, [a.astype(np.int16) for a in arrays]
    floats = [np.nan_to_num(a.astype(np.float64)) for a in arrays]
    lo_f = min(float(a.min()) for a in floats)
    hi_f = max(float(np.abs(a).max()) for a in floats)
    signed = lo_f < 0 or kind == "velocity"
    top = 32000.0 if signed else 65000.0
    slope = hi_f / top if hi_f > 0 else 1.0
    dtype = np.int16 if signed else np.uint16
    return slope, signed, [np.rint(a / slope).astype(dtype) for a in floats]


def _frames_of(image: ismrmrd.Image) -> list[tuple[int, np.ndarray, PlaneGeometry]]:
    data = np.asarray(image.data)  # (cha, z, y, x)
    if np.iscomplexobj(data):
        data = np.abs(data)
    planes = image_planes(image)
    return [(z, np.ascontiguousarray(data[0, z]), planes[z]) for z in range(data.shape[1])]


def build_series(images: Iterable[ismrmrd.Image], chain: str) -> list[ExportSeries]:
    """Group ``images`` by series index and encode each series (see the module table)."""
    groups: dict[int, list[ismrmrd.Image]] = defaultdict(list)
    for image in images:
        groups[int(image.image_series_index)].append(image)
    out = []
    for index, group in sorted(groups.items()):
        meta0 = image_meta(group[0])
        kind, modality, unit = _kind(meta0)
        raw: list[Frame] = []
        seen: dict[tuple[int, ...], int] = defaultdict(int)
        for image in group:
            meta = image_meta(image)
            for z, pixels, plane in _frames_of(image):
                base = (
                    int(image.slice), int(image.phase), int(image.contrast), int(image.set),
                    int(image.repetition), int(image.average), int(image.image_index), z,
                )  # fmt: skip
                seen[base] += 1
                raw.append(
                    Frame(pixels, plane, (*base, seen[base] - 1), meta, int(image.slice), int(image.phase), z,
                          int(image.acquisition_time_stamp))
                )  # fmt: skip
        raw.sort(key=lambda f: (f.key[4], f.slice, f.z, f.key[3], f.key[2], f.phase, f.key))
        slope, signed, encoded = _encoding([f.pixels for f in raw], kind)
        for n, (frame, pixels) in enumerate(zip(raw, encoded, strict=True), start=1):
            frame.pixels, frame.instance_number = pixels, n
        out.append(
            ExportSeries(index, kind, modality, unit, _description(kind, meta0, chain), slope, 0.0, signed,
                         raw, meta0)
        )  # fmt: skip
    return out
