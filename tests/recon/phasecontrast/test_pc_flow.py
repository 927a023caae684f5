"""Flow quantification and automatic vessel detection against closed-form Poiseuille flow."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.phasecontrast.background import fit_background, subtract_background
from recon.phasecontrast.flow import beat_volumes, flow_curve, orient_forward, phase_times_s, qp_qs
from recon.phasecontrast.masks import noise_mask, static_tissue_mask
from recon.phasecontrast.vessels import find_vessels
from tests.recon.phasecontrast.pc_synthetic import aortic_waveform, exact_flow_ml_per_s, synthetic_series

PIXEL_MM = 2.0
RR_S = 0.9


def test_flow_curve_matches_poiseuille() -> None:
    data = synthetic_series(
        np.random.default_rng(0), background_poly=(0.0,) * 6, vessels=((30.0, 31.5, 7.3, 110.0, 0.0),)
    )
    v = torch.from_numpy(data["true_flow_velocity"])
    curve = flow_curve(v, torch.from_numpy(data["vessel_0"]), PIXEL_MM**2, RR_S, peak_window_pixels=1)
    expected = exact_flow_ml_per_s(7.3, PIXEL_MM, aortic_waveform(20, 110.0))
    assert np.allclose(curve.flow_ml_per_s, expected, rtol=0.005, atol=1e-9)
    assert np.allclose(curve.phase_times_s, phase_times_s(20, RR_S))
    peak = 110.0 * aortic_waveform(20).max()
    assert curve.peak_velocity_cm_per_s.max() == pytest.approx(peak, rel=0.01)
    # 3 × 3 mean at the centre of a parabola: 1 − ⟨r²⟩/R² with ⟨r²⟩ = 4/3 px², here −2.5 %
    windowed = flow_curve(v, torch.from_numpy(data["vessel_0"]), PIXEL_MM**2, RR_S, peak_window_pixels=3)
    assert windowed.peak_velocity_cm_per_s.max() == pytest.approx(peak * (1 - (4 / 3) / 7.3**2), rel=0.01)
    assert np.allclose(windowed.flow_ml_per_s, curve.flow_ml_per_s)


def test_windowed_peak_velocity_less_biased_by_noise() -> None:
    rng = np.random.default_rng(7)
    n_phases, sigma = 10, 5.0
    truth = np.zeros((n_phases, 24, 24))
    truth[:, 6:18, 6:18] = 80.0  # flat-topped (blunted) profile
    roi = torch.zeros(24, 24, dtype=torch.bool)
    roi[6:18, 6:18] = True
    v = torch.from_numpy(truth + sigma * rng.standard_normal(truth.shape))
    single = flow_curve(v, roi, 1.0, 1.0, peak_window_pixels=1).peak_velocity_cm_per_s.max()
    windowed = flow_curve(v, roi, 1.0, 1.0, peak_window_pixels=3).peak_velocity_cm_per_s.max()
    assert single - 80.0 > 2.5 * sigma  # max of 1440 noisy pixels: ≈ +3.2 σ
    assert 0.0 < windowed - 80.0 < 0.4 * (single - 80.0)  # 3 × 3 means: σ/3, max ≈ +0.9 σ


def test_beat_volumes_closed_form() -> None:
    # constant 100 ml/s for 30 % of the beat, then −20 ml/s for 20 %: forward 27, backward 3.6 ml
    n, rr = 10, 0.9
    flow = np.array([100.0] * 3 + [-20.0] * 2 + [0.0] * 5)
    curve = flow_curve(
        torch.from_numpy(flow).reshape(n, 1, 1), torch.ones(1, 1, dtype=torch.bool), 100.0, rr
    )  # 1 cm² pixel
    vol = beat_volumes(curve, rr)
    assert vol.forward_ml == pytest.approx(27.0)
    assert vol.backward_ml == pytest.approx(3.6)
    assert vol.net_ml == pytest.approx(23.4)
    assert vol.regurgitant_fraction_percent == pytest.approx(100 * 3.6 / 27.0)
    assert vol.cardiac_output_l_per_min == pytest.approx(23.4 * 60 / 0.9 / 1000)
    assert qp_qs(vol, vol) == pytest.approx(1.0)


def _process(data: dict[str, np.ndarray], n_vessels: int) -> tuple[torch.Tensor, list]:
    """The core pipeline of the flow plugins: signal mask → vessels → static tissue → background."""
    v = torch.from_numpy(data["velocity"])
    signal = noise_mask(torch.from_numpy(data["magnitude"].mean(0)), threshold_fraction=0.2)
    vessels = find_vessels(v, signal, n_vessels=n_vessels)
    exclude = torch.stack([r.mask for r in vessels]).any(0)
    corrected = subtract_background(v, fit_background(v, static_tissue_mask(v, signal, exclude), order=2))
    return corrected, find_vessels(corrected, signal, n_vessels=n_vessels)


@pytest.mark.parametrize("seed", [0, 1])
def test_automatic_vessels_flow_regurgitation_and_qp_qs(seed: int) -> None:
    """Two vessels (aorta with 15 % backflow, a larger pulmonary artery flowing the other way), noise, background."""
    n = 25
    aorta = (22.0, 24.0, 5.5, 120.0, 0.15)
    vessels = (aorta, (42.0, 40.0, 6.0, -80.0, 0.0))
    data = synthetic_series(
        np.random.default_rng(seed),
        n_phases=n,
        vessels=vessels,
        noise_cm_per_s=2.0,
        non_polynomial_cm_per_s=0.2,
    )
    corrected, found = _process(data, n_vessels=2)
    assert len(found) == 2
    truth_v = torch.from_numpy(data["true_flow_velocity"])
    results = []
    for key in ("vessel_0", "vessel_1"):
        true_mask = torch.from_numpy(data[key])
        roi = max(found, key=lambda r: int((r.mask & true_mask).sum())).mask
        core = torch.from_numpy(data[key]) & (truth_v.abs().amax(0) > 30.0)
        assert bool((roi | ~core).all()), "ROI misses part of the vessel core"
        oriented, sign = orient_forward(corrected, roi)
        measured = beat_volumes(flow_curve(oriented, roi, PIXEL_MM**2, RR_S), RR_S)
        expected = beat_volumes(flow_curve(truth_v * sign, true_mask, PIXEL_MM**2, RR_S), RR_S)
        assert measured.net_ml == pytest.approx(expected.net_ml, rel=0.03)
        assert measured.peak_velocity_cm_per_s == pytest.approx(expected.peak_velocity_cm_per_s, rel=0.05)
        assert abs(measured.regurgitant_fraction_percent - expected.regurgitant_fraction_percent) < 3.0
        results.append((measured, expected))
    (ao_m, ao_e), (pa_m, pa_e) = results
    assert abs(qp_qs(pa_m, ao_m) - qp_qs(pa_e, ao_e)) < 0.06


def test_flow_errors() -> None:
    with pytest.raises(ValueError, match="roi"):
        flow_curve(torch.zeros(3, 4, 4), torch.zeros(4, 4, dtype=torch.bool), 1.0, 1.0)
    with pytest.raises(ValueError, match="phases"):
        find_vessels(torch.zeros(4, 4), torch.ones(4, 4, dtype=torch.bool))
