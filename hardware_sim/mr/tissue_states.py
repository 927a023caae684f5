"""Tissue states of the tissue-characterisation exams: lesions, gadolinium and iron.

* **Lesions** (``MRExamConfig.lesion``): a sector of the LV wall in the territory of the left anterior
  descending artery (anterior / antero-septal wall, heart-frame angle −45° ± 50° about the long axis;
  +u points to the RV, the antero-lateral papillary muscle sits at −80°) that is

  - ``subendocardial_scar``: the inner half of the wall (infarct, wavefront from the endocardium);
  - ``transmural_scar``: the whole wall thickness;
  - ``oedema``: the whole wall thickness (acute injury / myocarditis: T2 and native T1 up).

  Its occupancy multiplies the painted LV-myocardium occupancy, so it follows the wall exactly; the
  transmural depth is ``f = (r - r_endo(w)) / (r_epi(w) - r_endo(w))`` with r the distance from the LV long
  axis and the cavity / epicardial half-ellipsoids of :class:`~hardware_sim.mr.anatomy.HeartGeometry`.
* **Gadolinium** (LGE, 10–15 min after 0.1–0.2 mmol/kg): ``1/T1 = 1/T1_native + λ·ΔR1_blood`` with the
  tissue/blood partition coefficient λ (extracellular volume over the plasma fraction); ΔR1_blood is set
  so that blood reaches :data:`POST_CONTRAST_T1_MS` and the myocardium and scar values follow from their
  λ.  Literature at 10–15 min: myocardium ≈ 430–500 ms, blood ≈ 300–400 ms, infarct scar ≈ 250–300 ms
  (e.g. Kellman & Arai, JCMR 2012 review of PSIR; Messroghli et al., JCMR 2017 T1-mapping consensus).
* **Iron overload**: ``MRExamConfig.myocardial_t2star_ms`` replaces the myocardial T2* (normal > 20 ms,
  severe overload < 10 ms: Anderson et al., Eur Heart J 2001); T2 falls with it (T2 ≈ 1.5·T2* + 10 ms is
  not used: only T2* is mapped by the T2* exam).

Native lesion values (1.5 T / 3 T): chronic scar T1 1300 / 1700 ms, T2 50 / 48 ms (fibrosis raises native
T1 and ECV); oedema T1 1150 / 1600 ms, T2 65 / 62 ms (Giri et al., JCMR 2009: oedema 60–70 ms at 1.5 T).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from hardware_sim.mr import anatomy
from hardware_sim.mr.heart_volumes import paint_indicators, row_indicators
from hardware_sim.mr.tissues import Tissue, TissueProperties

LESION_SECTOR_CENTRE_DEG = -45.0
LESION_SECTOR_HALF_WIDTH_DEG = 50.0
SUBENDOCARDIAL_DEPTH = 0.5
"""Fraction of the wall thickness (from the endocardium) a subendocardial scar occupies."""

POST_CONTRAST_T1_MS: dict[float, dict[str, float]] = {
    1.5: {"blood": 350.0, "myocardium": 450.0, "scar": 280.0},
    3.0: {"blood": 400.0, "myocardium": 500.0, "scar": 300.0},
}
"""T1 (ms) 10–15 min after gadolinium (module docstring)."""

PARTITION_COEFFICIENT: dict[Tissue, float] = {
    Tissue.MUSCLE: 0.35,
    Tissue.LIVER: 0.6,
    Tissue.FAT: 0.1,
    Tissue.LUNG: 0.5,
    Tissue.BONE_MARROW: 0.3,
    Tissue.PERICARDIUM: 0.8,
}
"""λ of the tissues without a tabulated post-contrast T1 (blood pools 1; air and cortical bone 0)."""

_NATIVE_LESION: dict[str, dict[float, tuple[float, float]]] = {
    "scar": {1.5: (1300.0, 50.0), 3.0: (1700.0, 48.0)},
    "oedema": {1.5: (1150.0, 65.0), 3.0: (1600.0, 62.0)},
}
"""(T1, T2) in ms of the lesion before contrast, by kind and field."""

BLOOD_TISSUES = frozenset(t for t in Tissue if t.name.endswith("_BLOOD"))


def lesion_kind(lesion: str) -> str | None:
    """``scar``, ``oedema`` or None for a ``MRExamConfig.lesion`` value."""
    if lesion == "none":
        return None
    return "oedema" if lesion == "oedema" else "scar"


def _post_contrast(native_t1_ms: float, partition: float, blood_delta_r1_per_ms: float) -> float:
    return 1.0 / (1.0 / native_t1_ms + partition * blood_delta_r1_per_ms)


def _blood_delta_r1(properties: dict[Tissue, TissueProperties], field_t: float) -> float:
    native = properties[Tissue.LV_BLOOD].t1_ms
    return 1.0 / POST_CONTRAST_T1_MS[field_t]["blood"] - 1.0 / native


def post_contrast_properties(
    properties: dict[Tissue, TissueProperties], field_t: float
) -> dict[Tissue, TissueProperties]:
    """Every tissue's properties 10–15 min after gadolinium (T1 shortened, T2/T2* kept)."""
    delta = _blood_delta_r1(properties, field_t)
    myo = properties[Tissue.MYOCARDIUM].t1_ms
    lam_myo = (1.0 / POST_CONTRAST_T1_MS[field_t]["myocardium"] - 1.0 / myo) / delta
    out = {}
    for tissue, prop in properties.items():
        if tissue in BLOOD_TISSUES:
            lam = 1.0
        elif tissue == Tissue.MYOCARDIUM:
            lam = lam_myo
        else:
            lam = PARTITION_COEFFICIENT.get(tissue, 0.0)
        out[tissue] = dataclasses.replace(prop, t1_ms=_post_contrast(prop.t1_ms, lam, delta))
    return out


def lesion_properties(
    kind: str, native: dict[Tissue, TissueProperties], field_t: float, contrast_given: bool
) -> TissueProperties:
    """Properties of the lesion tissue (myocardium with its own T1/T2; T2* of the myocardium)."""
    myo = native[Tissue.MYOCARDIUM]
    t1, t2 = _NATIVE_LESION[kind][field_t]
    if contrast_given:
        if kind == "scar":
            t1 = POST_CONTRAST_T1_MS[field_t]["scar"]
        else:  # oedema: expanded extracellular space, λ ≈ 1.3× the myocardium's
            t1 = _post_contrast(t1, 0.75, _blood_delta_r1(native, field_t))
    return dataclasses.replace(myo, t1_ms=t1, t2_ms=t2)


def _smooth_inside(distance_mm: npt.NDArray[np.float32], edge_mm: float) -> npt.NDArray[np.float32]:
    return anatomy.occupancy(distance_mm, edge_mm).astype(np.float32)


def lesion_occupancy(
    heart_points: anatomy.Points, geometry: anatomy.HeartGeometry, lesion: str, edge_mm: float
) -> npt.NDArray[np.float32]:
    """Fraction (0..1) of each point that is lesion, ``heart_points[0].shape`` float32 (0 for ``none``)."""
    shape = heart_points[0].shape
    if lesion_kind(lesion) is None:
        return np.zeros(shape, np.float32)
    myocardium = paint_indicators(heart_points, geometry, row_indicators()[:, 2:], edge_mm)[0]
    u, v, w = heart_points
    w_rel = np.maximum(w - np.float32(geometry.w_base_mm), 0.0)
    r = np.sqrt(u * u + v * v)
    r_endo = geometry.lv_cavity_radius_mm * np.sqrt(
        np.clip(1.0 - (w_rel / geometry.lv_cavity_length_mm) ** 2, 0.0, 1.0)
    )
    r_epi = geometry.lv_epi_radius_mm * np.sqrt(
        np.clip(1.0 - (w_rel / geometry.lv_epi_length_mm) ** 2, 0.0, 1.0)
    )
    wall = np.maximum(r_epi - r_endo, 1.0)
    theta = np.degrees(np.arctan2(v, u)) - LESION_SECTOR_CENTRE_DEG
    off_sector_deg = np.abs((theta + 180.0) % 360.0 - 180.0) - LESION_SECTOR_HALF_WIDTH_DEG
    inside = _smooth_inside((np.deg2rad(off_sector_deg) * r).astype(np.float32), edge_mm)
    inside *= _smooth_inside((-(r - r_endo) - 0.2 * wall).astype(np.float32), edge_mm)  # no papillaries
    if lesion == "subendocardial_scar":
        inside *= _smooth_inside((r - r_endo - SUBENDOCARDIAL_DEPTH * wall).astype(np.float32), edge_mm)
    return (myocardium * inside).astype(np.float32).reshape(shape)
