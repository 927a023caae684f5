"""The thorax phantom's anatomy and the console-style planning, checked without k-space synthesis.

Thresholds were fixed from the anatomy they describe (textbook adult values) before the phantom was
tuned: base descent 10-15 mm, LV EF 50-70 %, LV mass 90-160 g, great-vessel flow planes perpendicular
to their vessel.
"""

from __future__ import annotations

import numpy as np
import pytest

from hardware_sim.mr import anatomy
from hardware_sim.mr.config import MRExamConfig
from hardware_sim.mr.flow import FlowModel
from hardware_sim.mr.geometry import slice_geometries
from hardware_sim.mr.heart_shapes import HEART_TISSUES
from hardware_sim.mr.heart_volumes import heart_volumes_ml, paint_indicators
from hardware_sim.mr.physiology import nominal_state
from hardware_sim.mr.signal import inflow_gain
from hardware_sim.mr.tissues import Tissue
from hardware_sim.mr.vessels import ASCENDING_AORTA, PULMONARY_TRUNK

BASE_TISSUES = {Tissue.LA_BLOOD, Tissue.RA_BLOOD, Tissue.LVOT_BLOOD, Tissue.RVOT_BLOOD}


def _labels(geometry, contraction: float, n: int = 96, step_mm: float = 2.0) -> np.ndarray:  # type: ignore[no-untyped-def]
    pts = geometry.points(n, n, step_mm, step_mm)
    return anatomy.thorax_label_map(np.stack(pts, axis=-1), contraction)


def test_every_short_axis_slice_shows_myocardium_or_the_base_structures_in_every_phase() -> None:
    """Default stack from the mitral annulus to the apex, 25 phases of a nominal beat: each slice
    contains myocardium, or, where the base has moved out, atrium / outflow tract (as on a scanner)."""
    config = MRExamConfig()
    geometries = slice_geometries(config)
    assert len(geometries) == config.n_slices == 11
    contractions = nominal_state(25, config.heart_rate_bpm).contraction
    base_seen = np.zeros((len(geometries), contractions.size), bool)
    for s, g in enumerate(geometries):
        for p, c in enumerate(contractions):
            present = set(np.unique(_labels(g, float(c))).tolist())
            has_myocardium = Tissue.MYOCARDIUM in present
            base_seen[s, p] = bool(present & BASE_TISSUES)
            assert has_myocardium or base_seen[s, p], f"slice {s}, phase {p}: neither ventricle nor base"
    # the most basal slice leaves the ventricle in systole and shows the atria there; mid slices never
    assert base_seen[0].any() and not base_seen[0].all()
    assert not base_seen[4:].any()
    # the apical slice still holds myocardium in every phase
    assert all(Tissue.MYOCARDIUM in np.unique(_labels(geometries[-1], float(c))) for c in contractions)


def test_base_descends_towards_the_fixed_apex() -> None:
    params = anatomy.HeartParameters()
    ed, es = anatomy.heart_geometry(params, 0.0), anatomy.heart_geometry(params, 1.0)
    assert 10.0 <= es.w_base_mm - ed.w_base_mm <= 15.0
    assert ed.w_base_mm + ed.lv_epi_length_mm == pytest.approx(es.w_base_mm + es.lv_epi_length_mm)


def test_ventricular_volumes_mass_and_ejection_fraction_are_adult_normal() -> None:
    params = anatomy.HeartParameters()
    ed = heart_volumes_ml(anatomy.heart_geometry(params, 0.0))
    es = heart_volumes_ml(anatomy.heart_geometry(params, 1.0))
    lv_ef = 1.0 - es[0] / ed[0]
    assert 0.5 <= lv_ef <= 0.7
    assert 90.0 <= 1.05 * ed[2] <= 160.0  # LV mass, g
    assert ed[2] == pytest.approx(es[2], rel=0.05)  # myocardium is incompressible
    # papillary muscles and trabeculae are carved out of the analytic cavity: a few ml, never more
    carved = anatomy.heart_geometry(params, 0.0).lv_cavity_volume_ml - ed[0]
    assert 3.0 <= carved <= 15.0


def test_kernel_paints_exactly_what_the_numpy_reference_describes() -> None:
    rng = np.random.default_rng(0)
    pts = tuple(rng.uniform(-80.0, 100.0, 50_000).astype(np.float32) for _ in range(3))
    for c in (0.0, 0.6, 1.2):
        g = anatomy.heart_geometry(anatomy.HeartParameters(), c)
        kernel = paint_indicators(pts, g, np.eye(len(HEART_TISSUES), dtype=np.complex64), 1.0)
        ref = np.zeros_like(kernel)
        for k, (_, distance) in enumerate(anatomy.heart_structures(g)):
            occ = anatomy.occupancy(distance(pts), 1.0)
            ref *= 1.0 - occ
            ref[k] += occ
        assert np.abs(kernel - ref).max() < 1e-3


@pytest.mark.parametrize(
    ("view", "present", "absent"),
    [
        ("four_chamber", {Tissue.LV_BLOOD, Tissue.RV_BLOOD, Tissue.LA_BLOOD, Tissue.RA_BLOOD}, set()),
        ("two_chamber", {Tissue.LV_BLOOD, Tissue.LA_BLOOD}, {Tissue.RA_BLOOD}),
        ("three_chamber", {Tissue.LV_BLOOD, Tissue.LA_BLOOD, Tissue.LVOT_BLOOD}, set()),
    ],
)
def test_long_axis_views_show_their_chambers(view: str, present: set[Tissue], absent: set[Tissue]) -> None:
    (g,) = slice_geometries(MRExamConfig(view=view))
    assert abs(float(g.slice_dir @ anatomy.HEART_LONG_AXIS)) < 1e-9  # contains the long axis
    labels = set(np.unique(_labels(g, 0.0, n=128, step_mm=1.5)).tolist())
    assert present <= labels
    assert not (absent & labels)


def test_flow_planes_are_perpendicular_to_their_vessel_just_above_the_valve() -> None:
    g_ao, g_pa = slice_geometries(MRExamConfig(protocol="flow"))
    for g, vessel, tissue in (
        (g_ao, ASCENDING_AORTA, Tissue.AORTA_BLOOD),
        (g_pa, PULMONARY_TRUNK, Tissue.PA_BLOOD),
    ):
        assert float(g.slice_dir @ vessel.direction_at(0)) == pytest.approx(1.0)
        above_valve = float((g.centre_mm - vessel.points_mm[0]) @ vessel.direction_at(0))
        assert 10.0 <= above_valve <= 25.0
        labels = _labels(g, 0.0, n=64, step_mm=1.0)
        assert labels[32, 32] == tissue  # centred on the vessel
        area_mm2 = float((labels == tissue).sum())
        assert area_mm2 == pytest.approx(np.pi * vessel.radius_mm**2, rel=0.2)  # a round cross-section


def test_inflow_gain_limits() -> None:
    """No flow: the steady state; fast flow: fresh magnetisation M0/Mss; monotonic in between."""
    t1, flip, tr, d = 1550.0, 15.0, 5.0, 8.0
    e1 = np.exp(-tr / t1)
    fresh = (1.0 - e1 * np.cos(np.deg2rad(flip))) / (1.0 - e1)
    speeds = np.array([0.0, 1.0, 10.0, 50.0, 1e6])
    gain = inflow_gain(t1, flip, tr, d, speeds)
    assert gain[0] == pytest.approx(1.0, abs=1e-6)
    assert gain[-1] == pytest.approx(fresh, rel=1e-3)
    assert np.all(np.diff(gain) > 0)


def test_flow_curves_integrate_to_their_stroke_volumes() -> None:
    model = FlowModel(lv_stroke_ml=80.0, rv_stroke_ml=100.0, regurgitant_fraction=0.25, systole_fraction=0.35)
    state = nominal_state(20_000, 60.0)
    dt = 1.0 / 20_000
    volume = {k: float(np.sum(v) * dt) for k, v in model.rates(state).items()}
    qs = 80.0 * 0.75
    assert volume["aorta"] == pytest.approx(qs, rel=1e-3)
    assert volume["mitral"] == pytest.approx(qs, rel=1e-3)
    assert volume["pulmonary"] == pytest.approx(100.0, rel=1e-3)
    assert volume["tricuspid"] == pytest.approx(100.0, rel=1e-3)
    assert volume["svc"] + volume["ivc"] == pytest.approx(qs, rel=1e-3)
    assert volume["lpa"] + volume["rpa"] == pytest.approx(100.0, rel=1e-3)
