"""Physics of the MR simulator's building blocks against closed-form results."""

from __future__ import annotations

import numpy as np
import pytest

from hardware_sim.mr import anatomy, thorax_label_map
from hardware_sim.mr.coils import correlated_noise, make_coil_array
from hardware_sim.mr.config import MRExamConfig
from hardware_sim.mr.flow import FlowModel
from hardware_sim.mr.physiology import (
    cardiac_state,
    contraction_curve,
    contraction_rate,
    ecg_mv,
    generate_rhythm,
    nominal_state,
)
from hardware_sim.mr.signal import (
    bipolar_for_venc,
    bssfp_signal,
    encoded_phase_rad,
    fat_spectrum_factor,
    spoiled_gre_signal,
)
from hardware_sim.mr.tissues import GYROMAGNETIC_RATIO_HZ_PER_T, Tissue, fat_peak_frequencies_hz


@pytest.mark.parametrize("venc_cm_per_s", [50.0, 150.0, 400.0])
@pytest.mark.parametrize("velocity_cm_per_s", [-120.0, 30.0, 100.0])
def test_moving_spin_phase_from_first_moment_is_pi_v_over_venc(
    venc_cm_per_s: float, velocity_cm_per_s: float
) -> None:
    waveform = bipolar_for_venc(venc_cm_per_s)
    assert abs(waveform.moment(0)) < 1e-12  # bipolar: no phase from a static spin's position
    # exact Bloch phase γ∫G(t)x(t)dt by dense numerical integration, independent of moment()
    t = np.linspace(waveform.times_s[0], waveform.times_s[-1], 200_001)
    g = np.interp(t, waveform.times_s, waveform.amplitude_t_per_m)
    x = 0.037 + velocity_cm_per_s * 1e-2 * t
    phase = 2 * np.pi * GYROMAGNETIC_RATIO_HZ_PER_T * np.trapezoid(g * x, t)
    expected = np.pi * velocity_cm_per_s / venc_cm_per_s
    assert phase == pytest.approx(expected, abs=1e-3)
    assert encoded_phase_rad(waveform, 0.037, velocity_cm_per_s * 1e-2) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(("field_t", "expected_shift_hz"), [(1.5, 217.1), (3.0, 434.3)])
def test_fat_water_shift_and_opposed_phase_echo(field_t: float, expected_shift_hz: float) -> None:
    main_peak = fat_peak_frequencies_hz(field_t)[1]
    assert -main_peak == pytest.approx(GYROMAGNETIC_RATIO_HZ_PER_T * field_t * 3.4e-6, rel=1e-9)
    assert -main_peak == pytest.approx(expected_shift_hz, abs=0.5)
    # a 50/50 water–fat voxel: first signal minimum (opposed phase) near 1/(2·Δf), first maximum near 1/Δf
    te_ms = np.linspace(0.3, 1.6e3 / expected_shift_hz, 4000)
    magnitude = np.abs([0.5 + 0.5 * fat_spectrum_factor(field_t, te) for te in te_ms])
    te_opposed = te_ms[np.argmin(magnitude)]
    assert te_opposed == pytest.approx(1e3 / (2 * expected_shift_hz), rel=0.08)
    config = MRExamConfig(protocol="dixon", field_strength_t=field_t)
    te_op, te_ip = config.effective_echo_times_ms
    assert abs(0.5 + 0.5 * fat_spectrum_factor(field_t, te_op)) < 0.25
    assert abs(0.5 + 0.5 * fat_spectrum_factor(field_t, te_ip)) > 0.85
    assert te_ip == pytest.approx(1e3 / expected_shift_hz, rel=2e-3)


def test_bssfp_on_resonance_and_bands() -> None:
    t1, t2, tr = 1550.0, 250.0, 3.0
    on = abs(bssfp_signal(t1, t2, 60.0, tr, np.array([0.0]))[0])
    # closed form for TR ≪ T2: M0·sinα·(1-E1)·√E2 / (1 - (E1 - E2)cosα - E1E2) at TE = TR/2
    e1, e2 = np.exp(-tr / t1), np.exp(-tr / t2)
    a = np.deg2rad(60.0)
    closed = np.sin(a) * (1 - e1) * np.sqrt(e2) / (1 - (e1 - e2) * np.cos(a) - e1 * e2)
    assert on == pytest.approx(closed, rel=1e-6)
    band = abs(bssfp_signal(t1, t2, 60.0, tr, np.array([1e3 / (2 * tr)]))[0])
    assert band < 0.25 * on
    period = abs(bssfp_signal(t1, t2, 60.0, tr, np.array([1e3 / tr]))[0])
    assert period == pytest.approx(on, rel=1e-9)


def test_spoiled_gre_ernst_angle_maximises_signal() -> None:
    t1, tr = 1000.0, 5.0
    ernst = np.rad2deg(np.arccos(np.exp(-tr / t1)))
    angles = np.linspace(1.0, 40.0, 391)
    values = [spoiled_gre_signal(t1, 1e9, a, tr, 0.0) for a in angles]
    assert angles[int(np.argmax(values))] == pytest.approx(ernst, abs=0.2)


def test_rhythm_matches_heart_rate_and_variability() -> None:
    rhythm = generate_rhythm(72.0, 3.0, "none", 0.0, 300.0, np.random.default_rng(5))
    rr = rhythm.rr_s
    assert rr.mean() == pytest.approx(60.0 / 72.0, rel=0.01)
    assert rr.std() / rr.mean() == pytest.approx(0.03, rel=0.25)
    assert not rhythm.ectopic.any()


def test_ectopic_beats_are_premature_with_compensatory_pause() -> None:
    rhythm = generate_rhythm(60.0, 0.0, "ectopic", 0.2, 400.0, np.random.default_rng(1))
    idx = np.nonzero(rhythm.ectopic)[0]
    assert 0.1 < idx.size / rhythm.ectopic.size < 0.3
    idx = idx[idx > 0]
    np.testing.assert_allclose(rhythm.rr_s[idx - 1], 0.65, atol=1e-9)
    np.testing.assert_allclose(rhythm.rr_s[idx], 1.35, atol=1e-9)
    assert np.all(rhythm.strength[idx] < 1.0)


def test_afib_rr_is_irregular() -> None:
    rhythm = generate_rhythm(80.0, 0.0, "afib", 0.0, 300.0, np.random.default_rng(2))
    assert rhythm.rr_s.std() / rhythm.rr_s.mean() > 0.12
    assert rhythm.atrial_fibrillation


def test_contraction_curve_shape_and_rate() -> None:
    ps = 0.35
    psi = np.linspace(0.0, 1.0 - 1e-9, 20001)
    e = contraction_curve(psi, ps)
    assert e[0] == pytest.approx(0.0, abs=1e-12) and e[-1] == pytest.approx(0.0, abs=1e-6)
    assert psi[np.argmax(e)] == pytest.approx(ps, abs=1e-3)
    numeric = np.gradient(e, psi)
    inner = (np.abs(psi - ps) > 0.01) & (np.abs(psi - 0.545) > 0.01) & (np.abs(psi - 0.85) > 0.01)
    np.testing.assert_allclose(contraction_rate(psi, ps)[inner], numeric[inner], atol=2e-2)


def test_flow_model_stroke_volumes_integrate() -> None:
    model = FlowModel(lv_stroke_ml=90.0, rv_stroke_ml=120.0, regurgitant_fraction=0.2, systole_fraction=0.35)
    state = nominal_state(20000, 60.0)
    dt = 1.0 / 20000
    aorta = model.aorta_ml_per_s(state)
    assert np.sum(aorta[aorta > 0]) * dt == pytest.approx(90.0, rel=2e-3)
    assert -np.sum(aorta[aorta < 0]) * dt == pytest.approx(18.0, rel=2e-3)
    assert np.sum(model.pulmonary_ml_per_s(state)) * dt == pytest.approx(120.0, rel=2e-3)


def test_cardiac_state_is_continuous_across_beats() -> None:
    rhythm = generate_rhythm(60.0, 10.0, "none", 0.0, 20.0, np.random.default_rng(3))
    t = np.linspace(1.0, 15.0, 140001)
    c = cardiac_state(rhythm, t).contraction
    assert np.max(np.abs(np.diff(c))) < 5e-3


def test_ecg_peaks_at_r_waves() -> None:
    rhythm = generate_rhythm(60.0, 5.0, "none", 0.0, 10.0, np.random.default_rng(4))
    t = np.arange(0.0, 10.0, 0.0025)
    ecg = ecg_mv(rhythm, t)
    for r in rhythm.r_wave_times_s[(rhythm.r_wave_times_s > 0.5) & (rhythm.r_wave_times_s < 9.5)]:
        window = np.abs(t - r) < 0.2
        assert abs(t[window][np.argmax(ecg[window])] - r) <= 0.0025


def test_lv_volume_analytic_matches_numerical_integration() -> None:
    params = anatomy.HeartParameters()
    for c in (0.0, 1.0):
        geometry = anatomy.heart_geometry(params, c)
        step = 1.0
        u = np.arange(-45.0, 45.0, step, dtype=np.float32)
        w = np.arange(-2.0, 100.0, step, dtype=np.float32)
        pts = tuple(np.ascontiguousarray(a) for a in np.meshgrid(u, u, w, indexing="ij"))
        cavity = dict(anatomy.heart_structures(geometry))[Tissue.LV_BLOOD]
        numeric = anatomy.occupancy(cavity(pts), step).sum() * step**3 / 1e3  # type: ignore[arg-type]
        assert numeric == pytest.approx(geometry.lv_cavity_volume_ml, rel=0.02)
        assert geometry.lv_cavity_volume_ml == pytest.approx(130.0 - 70.0 * c, rel=1e-9)
        rv_target = params.rv_esv_ml + params.rv_sv_ml * (1.0 - c)
        assert anatomy.rv_blood_volume_ml(geometry) == pytest.approx(rv_target, rel=0.03)


def test_myocardium_thickens_in_systole() -> None:
    params = anatomy.HeartParameters()
    ed, es = anatomy.heart_geometry(params, 0.0), anatomy.heart_geometry(params, 1.0)
    wall_ed = ed.lv_epi_radius_mm - ed.lv_cavity_radius_mm
    wall_es = es.lv_epi_radius_mm - es.lv_cavity_radius_mm
    assert wall_es > 1.3 * wall_ed


def test_thorax_label_map_axial_section() -> None:
    x = np.arange(-300.0, 300.0, 4.0)
    y = np.arange(-150.0, 150.0, 4.0)
    xx, yy = np.meshgrid(x, y)
    pts = np.stack([xx, yy, np.full_like(xx, 60.0)], axis=-1)
    labels = thorax_label_map(pts)
    present = set(np.unique(labels).tolist())
    assert {Tissue.AIR, Tissue.LUNG, Tissue.FAT, Tissue.MUSCLE, Tissue.BONE_MARROW} <= present
    # arms reach beyond a 450 mm field of view (|x| > 225 mm)
    assert np.any(labels[:, np.abs(x) > 225.0] != Tissue.AIR)
    assert labels[np.argmin(np.abs(y)), np.argmin(np.abs(x - 290.0))] == Tissue.AIR


def test_correlated_noise_covariance() -> None:
    coils = make_coil_array(8, 0.01, 0.0, np.random.default_rng(0))
    noise = correlated_noise(coils.noise_covariance, (40000,), np.random.default_rng(1))
    estimate = noise @ noise.conj().T / noise.shape[1]
    scale = np.sqrt(np.outer(np.diag(coils.noise_covariance).real, np.diag(coils.noise_covariance).real))
    # standard error of a covariance entry ≈ 1/√N relative to √(Ψii Ψjj): 5 sigma
    assert np.max(np.abs(estimate - coils.noise_covariance) / scale) < 5.0 / np.sqrt(40000)
    assert np.all(np.linalg.eigvalsh(coils.noise_covariance) > 0)


@pytest.mark.parametrize("protocol", ["cine", "flow"])
def test_fused_heart_kernel_equals_reference_painting(protocol: str) -> None:
    from hardware_sim.mr.model import build_model
    from hardware_sim.mr.scene import FlowRates

    config = MRExamConfig(protocol=protocol, n_slices=3, n_coils=8, n_readout=64, n_phase_encodes=52)  # type: ignore[arg-type]
    model = build_model(config)
    flows = FlowRates({"aorta": 300.0, "pulmonary": 250.0, "descending_aorta": 150.0})
    for synth in model.synthesizers:
        scene = synth.box_scene
        for c in (0.0, 0.6, 1.1):
            fast, reference = scene.image(c, flows), scene.image_reference(c, flows)
            np.testing.assert_allclose(fast, reference, atol=1e-5 * max(1e-3, np.abs(reference).max()))
