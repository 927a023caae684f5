"""Compute the :class:`~hardware_sim.mr.truth.MRTruth` of an exam model."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hardware_sim.mr import anatomy
from hardware_sim.mr.fields import b0_map_hz, eddy_current_phase_rad
from hardware_sim.mr.flow import peak_velocity_cm_per_s
from hardware_sim.mr.heart_volumes import (
    MYOCARDIAL_DENSITY_G_PER_ML,
    heart_volumes_ml,
    paint_indicators,
    row_indicators,
)
from hardware_sim.mr.model import EXAM_START_TICKS, ExamModel, diastolic_contraction, flows_at
from hardware_sim.mr.physiology import CardiacState, nominal_state
from hardware_sim.mr.scene import FlowRates, GridScene
from hardware_sim.mr.signal import spoiled_gre_signal
from hardware_sim.mr.tissue_sequences import TISSUE_PROTOCOLS
from hardware_sim.mr.tissues import FAT_RELAXATION_MS, Tissue
from hardware_sim.mr.truth import MRTruth
from hardware_sim.mr.vessels import ASCENDING_AORTA, PULMONARY_TRUNK, Vessel, vessel_distance

_LABEL_EDGE_MM = 0.5


def _phase_states(model: ExamModel) -> tuple[CardiacState, list[float], list[FlowRates]]:
    cfg = model.config
    one_state = cfg.protocol == "dixon" or cfg.protocol in TISSUE_PROTOCOLS
    n = 1 if one_state else cfg.n_phases
    state = nominal_state(n, cfg.heart_rate_bpm)
    if cfg.protocol in TISSUE_PROTOCOLS and cfg.cardiac_motion:
        return state, [diastolic_contraction(cfg)], [FlowRates()]
    if cfg.protocol == "dixon" or not cfg.cardiac_motion:
        return state, [0.0] * n, [FlowRates()] * n
    flows = []
    for p in range(n):
        single = CardiacState(
            state.psi[p : p + 1],
            state.contraction[p : p + 1],
            state.psi_rate_per_s[p : p + 1],
            state.strength[p : p + 1],
        )
        flows.append(flows_at(model.flow, single))
    return state, [float(c) for c in state.contraction], flows


def _slice_truth(
    model: ExamModel, s: int, contractions: list[float], flows: list[FlowRates]
) -> dict[str, npt.NDArray]:
    cfg = model.config
    g = model.geometries[s]
    dx, dy = g.fov_mm[0] / cfg.n_readout, g.fov_mm[1] / cfg.n_phase_encodes
    pts = g.points(cfg.n_phase_encodes, cfg.n_readout, dy, dx)
    synth = model.synthesizer(s)
    images = np.stack([synth.truth_image(c, f) for c, f in zip(contractions, flows, strict=True)], axis=1)
    base = anatomy.static_fractions(pts, _LABEL_EDGE_MM)
    heart_pts = anatomy.to_heart_frame(pts)
    fractions = [
        anatomy.add_heart_fractions(base, heart_pts, c, model.heart, _LABEL_EDGE_MM) for c in contractions
    ]
    coil_maps = model.coils.sensitivities(pts)
    out = {
        "images": images,
        "coil_maps": coil_maps,
        "coil_rss": np.sqrt(np.sum(np.abs(coil_maps) ** 2, axis=0)).astype(np.float32),
        "b0_map_hz": b0_map_hz(pts, float(cfg.field_strength_t)),
        "body_mask": base[Tissue.AIR] < 0.5,
        "labels": np.stack([np.argmax(f, axis=0).astype(np.uint8) for f in fractions]),
        "lv_mask": np.stack([f[Tissue.LV_BLOOD] > 0.5 for f in fractions]),
        "rv_mask": np.stack([f[Tissue.RV_BLOOD] > 0.5 for f in fractions]),
        "lv_myocardium_mask": np.stack([_lv_myocardium(model, heart_pts, c) > 0.5 for c in contractions]),
    }
    if cfg.protocol == "flow":
        out.update(_flow_slice_truth(model, s, pts, base, flows))
    if cfg.protocol == "dixon":
        out.update(_dixon_slice_truth(model, base))
    if cfg.protocol in TISSUE_PROTOCOLS:
        from hardware_sim.mr.truth_tissue import tissue_slice_truth

        out.update(tissue_slice_truth(model, s, out["labels"][0], pts, _LABEL_EDGE_MM))
    return out


def _lv_myocardium(model: ExamModel, heart_pts: anatomy.Points, contraction: float) -> npt.NDArray:
    """LV myocardium occupancy (septum, free wall, trabeculae, papillary muscles) on a grid."""
    geometry = anatomy.heart_geometry(model.heart, contraction)
    return paint_indicators(heart_pts, geometry, row_indicators()[:, 2:], _LABEL_EDGE_MM)[0]


def _flow_slice_truth(
    model: ExamModel, s: int, pts: anatomy.Points, base: npt.NDArray, flows: list[FlowRates]
) -> dict[str, npt.NDArray]:
    cfg = model.config
    g = model.geometries[s]
    dx, dy = g.fov_mm[0] / cfg.n_readout, g.fov_mm[1] / cfg.n_phase_encodes
    u = ((np.arange(cfg.n_readout) - cfg.n_readout // 2) * dx).astype(np.float32)
    v = ((np.arange(cfg.n_phase_encodes) - cfg.n_phase_encodes // 2) * dy).astype(np.float32)
    uu, vv = np.meshgrid(u, v)
    scene = GridScene(model.signal, pts, (uu, vv), s, g.slice_dir, model.heart, _LABEL_EDGE_MM)
    blood = np.zeros(pts[0].shape, bool)
    for vp in scene.vessels:
        blood |= vp.occupancy > 0.5
    velocity = np.stack([np.where(blood, scene.velocity_cm_per_s(f), 0.0) for f in flows]).astype(np.float32)
    return {
        "velocity_cm_per_s": velocity,
        "eddy_phase_rad": eddy_current_phase_rad(uu, vv, s),
        "aorta_mask": _segment_mask(ASCENDING_AORTA, pts),
        "pa_mask": _segment_mask(PULMONARY_TRUNK, pts),
    }


def _segment_mask(vessel: Vessel, pts: anatomy.Points) -> npt.NDArray:
    """Lumen (occupancy > ½) of a vessel's first segment: the ascending aorta without the arch, the
    pulmonary trunk without its branches."""
    first = Vessel(vessel.name, vessel.points_mm[:2], vessel.radius_mm, vessel.tissue, vessel.flow)
    return anatomy.occupancy(vessel_distance(first, pts), _LABEL_EDGE_MM) > 0.5


def _dixon_slice_truth(model: ExamModel, base: npt.NDArray) -> dict[str, npt.NDArray]:
    sig = model.signal
    t1f = FAT_RELAXATION_MS[sig.field_t][0]
    water = np.zeros(base.shape[1:], np.float32)
    fat = np.zeros_like(water)
    pd_fat = np.zeros_like(water)
    pd_all = np.zeros_like(water)
    for tissue, prop in sig.properties.items():
        amp = prop.proton_density * sig.scale
        water += (
            base[tissue]
            * amp
            * (1 - prop.fat_fraction)
            * spoiled_gre_signal(prop.t1_ms, 1e9, sig.flip_deg, sig.tr_ms, 0.0)
        )
        fat += (
            base[tissue]
            * amp
            * prop.fat_fraction
            * spoiled_gre_signal(t1f, 1e9, sig.flip_deg, sig.tr_ms, 0.0)
        )
        pd_fat += base[tissue] * prop.proton_density * prop.fat_fraction
        pd_all += base[tissue] * prop.proton_density
    body = base[Tissue.AIR] < 0.5
    total = np.maximum(water + fat, 1e-12)
    return {
        "water": water,
        "fat": fat,
        "fat_fraction": np.where(body, fat / total, 0.0).astype(np.float32),
        "pdff": np.where(body, pd_fat / np.maximum(pd_all, 1e-12), 0.0).astype(np.float32),
    }


def _flow_scalars(model: ExamModel) -> dict[str, float]:
    fm = model.flow
    state = nominal_state(2000, model.config.heart_rate_bpm)
    aorta, pa = fm.aorta_ml_per_s(state), fm.pulmonary_ml_per_s(state)
    rf = fm.regurgitant_fraction
    return {
        "aorta_forward_ml": fm.lv_stroke_ml,
        "aorta_regurgitant_ml": rf * fm.lv_stroke_ml,
        "aorta_net_ml": (1.0 - rf) * fm.lv_stroke_ml,
        "pa_stroke_ml": fm.rv_stroke_ml,
        "qp_qs": fm.rv_stroke_ml / ((1.0 - rf) * fm.lv_stroke_ml),
        "aorta_peak_velocity_cm_per_s": float(peak_velocity_cm_per_s(aorta, ASCENDING_AORTA.radius_mm).max()),
        "pa_peak_velocity_cm_per_s": float(peak_velocity_cm_per_s(pa, PULMONARY_TRUNK.radius_mm).max()),
    }


_CURVES = {
    "aorta": "aorta_flow_ml_per_s",
    "pulmonary": "pa_flow_ml_per_s",
    "descending_aorta": "descending_aorta_flow_ml_per_s",
    "mitral": "mitral_flow_ml_per_s",
    "tricuspid": "tricuspid_flow_ml_per_s",
    "svc": "svc_flow_ml_per_s",
    "ivc": "ivc_flow_ml_per_s",
}
"""Flow curves of the truth (output phases, ml/s in each vessel's forward direction)."""


def _function_scalars(model: ExamModel) -> dict[str, float]:
    """End-diastolic / end-systolic volumes of a normal beat (contraction 0 / 1), LV mass at ED."""
    ed = heart_volumes_ml(anatomy.heart_geometry(model.heart, 0.0))
    es = heart_volumes_ml(anatomy.heart_geometry(model.heart, 1.0))
    return {
        "lv_edv_ml": ed[0],
        "lv_esv_ml": es[0],
        "rv_edv_ml": ed[1],
        "rv_esv_ml": es[1],
        "lv_mass_g": MYOCARDIAL_DENSITY_G_PER_ML * ed[2],
        "mitral_regurgitant_ml": float(model.config.mitral_regurgitant_volume_ml),
    }


def _stack_volume_ml(model: ExamModel, masks: npt.NDArray) -> npt.NDArray:
    """Disc summation over the planned slices: Σ mask area × slice spacing per phase, ml (the volume an
    ideal segmentation of this stack gives; short-axis cine only, else zeros)."""
    cfg = model.config
    if cfg.protocol != "cine" or cfg.view != "short_axis":
        return np.zeros(masks.shape[1])
    g = model.geometries[0]
    pixel_mm2 = g.fov_mm[0] / cfg.n_readout * g.fov_mm[1] / cfg.n_phase_encodes
    return masks.sum(axis=(0, 2, 3)) * pixel_mm2 * cfg.slice_spacing_mm / 1e3


def compute_truth(model: ExamModel) -> MRTruth:
    """Ground truth of the exam (per slice images, masks, volumes, flows, coils, noise)."""
    cfg = model.config
    state, contractions, flows = _phase_states(model)
    slices = [_slice_truth(model, s, contractions, flows) for s in range(cfg.n_slices)]
    stacked = {k: np.stack([sl[k] for sl in slices]) for k in slices[0]}
    if cfg.protocol == "cine":
        stacked["images"] = stacked["images"][:, 0]
    elif cfg.protocol == "dixon" or cfg.protocol in TISSUE_PROTOCOLS:
        stacked["images"] = stacked["images"][:, :, 0]
    volumes = np.array([heart_volumes_ml(anatomy.heart_geometry(model.heart, c)) for c in contractions])
    lv, rv = volumes[:, 0], volumes[:, 1]
    extra: dict[str, object] = dict(_function_scalars(model))
    extra["lv_myocardium_volume_ml"] = volumes[:, 2]
    extra["lv_volume_stack_ml"] = _stack_volume_ml(model, stacked["lv_mask"])
    extra["rv_volume_stack_ml"] = _stack_volume_ml(model, stacked["rv_mask"])
    if cfg.protocol in ("cine", "flow"):
        curves = model.flow.rates(state) if cfg.cardiac_motion else {}
        for key, name in _CURVES.items():
            extra[name] = np.asarray(curves.get(key, np.zeros(len(flows))), dtype=np.float64)
    if cfg.protocol == "flow":
        extra.update(_flow_scalars(model))
    geos = model.geometries
    return MRTruth(
        protocol=cfg.protocol,
        field_strength_t=float(cfg.field_strength_t),
        phase_fractions=state.psi.copy(),
        lv_volume_ml=lv,
        rv_volume_ml=rv,
        end_diastolic_phase=int(np.argmax(lv)),
        end_systolic_phase=int(np.argmin(lv)),
        r_wave_times_s=model.rhythm.r_wave_times_s.copy(),
        rr_s=model.rhythm.rr_s.copy(),
        ectopic_beats=model.rhythm.ectopic.copy(),
        noise_covariance=model.coils.noise_covariance.copy(),
        slice_positions_mm=np.stack([g.centre_mm for g in geos]),
        read_dirs=np.stack([g.read_dir for g in geos]),
        phase_dirs=np.stack([g.phase_dir for g in geos]),
        slice_dirs=np.stack([g.slice_dir for g in geos]),
        time_stamp_origin_ticks=EXAM_START_TICKS,
        lesion=model.signal.lesion,
        **stacked,  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )
