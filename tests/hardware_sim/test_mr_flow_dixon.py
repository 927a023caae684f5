"""Phase contrast and Dixon exams: encoded velocity, flows, eddy currents, chemical shift, B0, arms."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import pytest

from hardware_sim.mr import MRExamConfig, SimulatedExam, Tissue, simulate_exam
from hardware_sim.mr.physiology import nominal_state
from hardware_sim.mr.scene import FlowRates

T = TypeVar("T")


def need(value: T | None) -> T:
    """A protocol-specific truth field that must be present."""
    assert value is not None
    return value


SMALL = dict(n_coils=8, n_readout=96, n_phase_encodes=78, n_phases=10, n_calibration_lines=12)


def _recon(k: np.ndarray, coils: np.ndarray) -> np.ndarray:
    """Fully sampled coil-combined images (…, coils, ky, kx_os) → (…, y, x) on the recon grid."""
    image = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    n = coils.shape[-1]
    image = image[..., n // 2 : n // 2 + n]
    return (coils.conj() * image).sum(-3) / (np.abs(coils) ** 2).sum(-3)


@pytest.fixture(scope="module")
def flow() -> SimulatedExam:
    return simulate_exam(
        MRExamConfig(
            protocol="flow",
            n_slices=2,
            venc_cm_per_s=200.0,
            shunt_qp_qs=1.5,
            aortic_regurgitant_fraction=0.2,
            **{**SMALL, "n_phases": 25, "n_readout": 192, "n_phase_encodes": 156},
        )
    )


def test_encoded_velocity_phase_in_synthesized_kspace(flow: SimulatedExam) -> None:
    """Phase difference (set 1 − set 0 − eddy phase) at the vessel centres = π·v/VENC of the truth."""
    model, truth = flow.model, flow.truth
    p = int(np.argmax(need(truth.aorta_flow_ml_per_s)))
    state = nominal_state(truth.phase_fractions.size, model.config.heart_rate_bpm)
    rates = FlowRates({key: float(curve[p]) for key, curve in model.flow.rates(state).items()})
    for s, mask in ((0, need(truth.aorta_mask)[0]), (1, need(truth.pa_mask)[1])):  # the planned planes
        k = model.synthesizer(s).full_kspace(0.0, rates)
        images = _recon(k, truth.coil_maps[s])
        dphi = np.angle(images[1] * np.conj(images[0]) * np.exp(-1j * need(truth.eddy_phase_rad)[s]))
        velocity = need(truth.velocity_cm_per_s)[s, p]
        centre = np.unravel_index(np.argmax(np.where(mask, np.abs(velocity), 0.0)), mask.shape)
        assert velocity[centre] > 40.0
        assert dphi[centre] == pytest.approx(np.pi * velocity[centre] / 200.0, abs=0.06)


def test_flow_truth_stroke_volumes_and_ratios(flow: SimulatedExam) -> None:
    truth = flow.truth
    assert truth.aorta_net_ml == pytest.approx(70.0)
    assert truth.aorta_forward_ml == pytest.approx(87.5)
    assert truth.aorta_regurgitant_ml == pytest.approx(17.5)
    assert truth.pa_stroke_ml == pytest.approx(105.0) and truth.qp_qs == pytest.approx(1.5)
    dt = 1.0 / truth.phase_fractions.size  # nominal RR = 1 s at 60 bpm; midpoint rule over 25 phases
    assert need(truth.aorta_flow_ml_per_s).sum() * dt == pytest.approx(70.0, rel=0.05)
    assert need(truth.pa_flow_ml_per_s).sum() * dt == pytest.approx(105.0, rel=0.05)
    assert need(truth.aorta_flow_ml_per_s).min() < 0.0  # regurgitant back-flow in diastole
    assert 50.0 < need(truth.aorta_peak_velocity_cm_per_s) < 120.0
    # the velocity map integrates to the flow curve (pixel area × Σ v over the vessel)
    p = int(np.argmax(need(truth.aorta_flow_ml_per_s)))
    fov_x, fov_y = flow.config.effective_fov_mm
    pixel_cm2 = (fov_x / 192) * (fov_y / 156) / 100.0
    measured = need(truth.velocity_cm_per_s)[0, p][need(truth.aorta_mask)[0]].sum() * pixel_cm2
    assert measured == pytest.approx(need(truth.aorta_flow_ml_per_s)[p], rel=0.1)
    # ventricular stroke volumes agree with the flows: LV = forward aortic, RV = pulmonary
    lv = truth.lv_volume_ml
    assert lv.max() - lv.min() == pytest.approx(87.5, rel=0.06)
    assert truth.rv_volume_ml.max() - truth.rv_volume_ml.min() == pytest.approx(105.0, rel=0.08)


def test_eddy_phase_is_smooth_but_not_low_order_polynomial(flow: SimulatedExam) -> None:
    phase = need(flow.truth.eddy_phase_rad)[0]
    y, x = np.mgrid[: phase.shape[0], : phase.shape[1]].astype(np.float64)
    x, y = x / phase.shape[1], y / phase.shape[0]
    basis = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1).reshape(-1, 6)
    coefficients, *_ = np.linalg.lstsq(basis, phase.ravel(), rcond=None)
    residual = phase.ravel() - basis @ coefficients
    assert np.sqrt(np.mean(residual**2)) > 0.005  # a 2nd-order fit leaves a structured residual
    assert np.max(np.abs(np.diff(phase, axis=0))) < 0.03 and np.max(np.abs(np.diff(phase, axis=1))) < 0.03
    assert 0.05 < np.ptp(phase) < 1.0


@pytest.mark.parametrize("field_t", [1.5, 3.0])
def test_dixon_chemical_shift_in_phase_and_opposed_phase(field_t: float) -> None:
    exam = simulate_exam(
        MRExamConfig(protocol="dixon", field_strength_t=field_t, n_slices=1, cardiac_motion=False, **SMALL)
    )
    truth = exam.truth
    op, ip = np.abs(truth.images[0, 0]), np.abs(truth.images[0, 1])
    labels = truth.labels[0, 0]
    marrow = labels == Tissue.BONE_MARROW
    muscle = (labels == Tissue.MUSCLE) & (need(truth.pdff)[0] < 0.05)
    assert marrow.sum() > 5 and muscle.sum() > 50
    # 50 % fat: the main fat peak cancels water at the opposed-phase echo, adds at the in-phase echo
    assert np.median(op[marrow] / ip[marrow]) < 0.5
    assert np.median(op[muscle] / ip[muscle]) > 0.85
    assert np.median(need(truth.pdff)[0][labels == Tissue.FAT]) == pytest.approx(0.95, abs=0.01)
    assert np.median(need(truth.fat_fraction)[0][marrow]) > 0.45


def test_b0_map_scales_with_field_and_arms_exceed_fov() -> None:
    exams = {
        f: simulate_exam(
            MRExamConfig(protocol="dixon", field_strength_t=f, n_slices=1, cardiac_motion=False, **SMALL)
        )
        for f in (1.5, 3.0)
    }
    b15, b3 = exams[1.5].truth.b0_map_hz[0], exams[3.0].truth.b0_map_hz[0]
    np.testing.assert_allclose(b3, 2.0 * b15, rtol=1e-5, atol=1e-3)
    # the arms (|x| ≈ 190..275 mm) lie partly outside the 450 mm recon FOV but inside the 900 mm raw FOV
    exam = exams[1.5]
    k = exam.model.synthesizer(0).full_kspace(0.0, None)[0]
    centre_line = k[:, k.shape[1] // 2]  # ky = 0 line, (coils, 192 oversampled samples)
    profile = np.sqrt(
        (np.abs(np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(centre_line, axes=-1)), axes=-1)) ** 2).sum(0)
    )
    x_mm = (np.arange(profile.size) - profile.size // 2) * 450.0 / 96
    outside = np.abs(x_mm) > 240.0
    assert profile[outside].max() > 0.2 * profile.max()
    assert profile[np.abs(x_mm) > 300.0].max() < 0.02 * profile.max()


def test_banding_is_worse_at_3t() -> None:
    """bSSFP: off-resonance near ±1/(2 TR) nulls the signal; the B0 map at 3 T reaches the band."""
    exams = {
        f: simulate_exam(MRExamConfig(field_strength_t=f, n_slices=4, cardiac_motion=False, **SMALL))
        for f in (1.5, 3.0)
    }
    band_hz = 1e3 / (2 * 3.0)
    fractions = {}
    for f, exam in exams.items():
        body = exam.truth.body_mask
        near = np.abs(np.abs(exam.truth.b0_map_hz) - band_hz) < 40.0
        fractions[f] = (near & body).sum() / body.sum()
    assert fractions[3.0] > 5 * max(fractions[1.5], 1e-4)
