"""Cine function core: volumes, BSA, flow cross-check (closed form) and the segmentation of a synthetic
ring stack whose masks are known (tests/recon/cine/function_phantom.py)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from recon.cine.function.analysis import StackAnalysis, analyse_stack
from recon.cine.function.rays import polar_mask
from recon.cine.function.volumes import (
    disc_volumes_ml,
    flow_cross_check,
    mosteller_bsa_m2,
    ventricular_function,
)
from tests.recon.cine.function_phantom import RingStack, ring_stack


def test_mosteller_bsa() -> None:
    assert mosteller_bsa_m2(1.75, 75.0) == pytest.approx(np.sqrt(175.0 * 75.0 / 3600.0))
    assert mosteller_bsa_m2(None, 75.0) is None
    assert mosteller_bsa_m2(1.8, 0.0) is None


def test_disc_summation_ed_es_ef_mass() -> None:
    lv = np.array([[1000.0, 500.0, 800.0], [500.0, 250.0, 400.0]])  # (S=2, P=3) mm²
    rv = 1.1 * lv
    myo = np.full_like(lv, 1000.0)
    f = ventricular_function(lv, rv, myo, 10.0, bsa_m2=2.0)
    assert disc_volumes_ml(lv, 10.0) == pytest.approx([15.0, 7.5, 12.0])
    assert (f.end_diastolic_phase, f.end_systolic_phase) == (0, 1)
    assert (f.lv.edv_ml, f.lv.esv_ml, f.lv.sv_ml, f.lv.ef_percent) == pytest.approx((15.0, 7.5, 7.5, 50.0))
    assert f.rv.edv_ml == pytest.approx(16.5)
    assert f.lv_mass_g == pytest.approx(1.05 * 20.0)
    assert f.indexed()["lv_edv_ml_per_m2"] == pytest.approx(7.5)


def test_flow_cross_check() -> None:
    lv = np.array([[10000.0, 4000.0]])
    f = ventricular_function(lv, 0.8 * lv, lv, 10.0)  # LV SV 60 ml, RV SV 48 ml
    check = flow_cross_check(f, aortic_forward_ml=40.0, pulmonary_forward_ml=45.0, qp_qs_flow=1.1)
    assert check.mitral_regurgitant_ml == pytest.approx(20.0)
    assert check.tricuspid_regurgitant_ml == pytest.approx(3.0)
    assert check.qp_qs_cine == pytest.approx(0.8)
    assert flow_cross_check(f, None, None, None).mitral_regurgitant_ml is None


def test_polar_mask_matches_the_direct_formula() -> None:
    angles = np.linspace(-np.pi, np.pi, 64, endpoint=False)
    radius = 10.0 + 3.0 * np.cos(3 * angles)
    yy, xx = np.mgrid[:50, :60]
    dy, dx = yy - 25.3, xx - 30.1
    direct = np.hypot(dy, dx) <= np.interp(np.arctan2(dy, dx), angles, radius, period=2 * np.pi)
    assert np.array_equal(polar_mask((50, 60), (25.3, 30.1), angles, radius), direct)


@cache
def _phantom() -> tuple[RingStack, StackAnalysis]:
    stack = ring_stack(n_slices=8, n_phases=12)
    analysis = analyse_stack(stack.images, (stack.pixel_mm, stack.pixel_mm), stack.slice_spacing_mm)
    assert analysis is not None
    return stack, analysis


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_ring_phantom_masks_and_volumes() -> None:
    stack, analysis = _phantom()
    seg, f = analysis.segmentation, analysis.function
    assert (f.end_diastolic_phase, f.end_systolic_phase) == (0, stack.es_phase)
    assert _dice(seg.lv_blood, stack.lv) > 0.95
    assert _dice(seg.lv_myocardium, stack.myocardium) > 0.85
    assert _dice(seg.rv_blood, stack.rv) > 0.9
    true_lv = stack.lv.sum(axis=(0, 2, 3)) * stack.pixel_mm**2 * stack.slice_spacing_mm / 1e3
    assert f.lv.edv_ml == pytest.approx(true_lv.max(), rel=0.03)
    assert f.lv.esv_ml == pytest.approx(true_lv.min(), rel=0.03)
    assert all(s.state == "ventricle" for s in seg.status)


def test_apex_first_stack_gives_the_same_answer() -> None:
    stack, base_first = _phantom()
    flipped = analyse_stack(stack.images[::-1], (stack.pixel_mm, stack.pixel_mm), stack.slice_spacing_mm)
    assert flipped is not None and flipped.apex_first and not base_first.apex_first
    assert flipped.function.lv.edv_ml == pytest.approx(base_first.function.lv.edv_ml)
    assert np.array_equal(flipped.segmentation.lv_blood, base_first.segmentation.lv_blood[::-1])


def test_a_slice_without_a_ventricle_inside_the_stack_is_reported_failed() -> None:
    stack, good = _phantom()
    images = stack.images.copy()
    images[3] = images[3].mean()  # slice 3 blanked: no LV to find
    analysis = analyse_stack(images, (stack.pixel_mm, stack.pixel_mm), stack.slice_spacing_mm)
    assert analysis is not None
    status = analysis.segmentation.status[3]
    assert status.state == "failed" and "failed" in status.message
    # its areas are interpolated from slices 2 and 4, so the volumes stay close to the intact stack
    assert analysis.function.lv.edv_ml == pytest.approx(good.function.lv.edv_ml, rel=0.05)


def test_a_phase_without_a_ventricle_inside_the_stack_is_reported_failed() -> None:
    stack, good = _phantom()
    images = stack.images.copy()
    images[4, 2] = images[4, 2].mean()  # slice 4 blanked in phase 2 only
    analysis = analyse_stack(images, (stack.pixel_mm, stack.pixel_mm), stack.slice_spacing_mm)
    assert analysis is not None
    status = analysis.segmentation.status[4]
    assert status.state == "failed" and "phases [2]" in status.message
    assert status.n_phases_counted == images.shape[1] - 1
    curve, good_curve = analysis.function.lv.volume_curve_ml, good.function.lv.volume_curve_ml
    assert curve[2] == pytest.approx(good_curve[2], rel=0.05)


def test_end_diastole_on_a_flat_late_diastolic_plateau_is_next_to_the_r_wave() -> None:
    from recon.cine.function.volumes import end_diastolic_phase

    curve = np.array([273.5, 273.6, 274.0, 231.8, 191.1, 230.4, 274.2, 274.3, 274.0, 273.7])
    assert end_diastolic_phase(curve) == 9  # plateau 0-2 and 6-9: the last phase before the R-wave
    assert end_diastolic_phase(np.array([100.0, 90.0, 60.0, 80.0, 95.0])) == 0
    assert end_diastolic_phase(np.array([99.5, 90.0, 60.0, 80.0, 100.0])) == 4
