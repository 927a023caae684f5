"""Image quality without truth: the SNR of a noisy disc, ghosting and sharpness move the right way."""

from __future__ import annotations

import numpy as np

from plugins.quality_no_truth import image_scores


def _disc(n: int = 128, radius: float = 35.0) -> np.ndarray:
    y, x = np.mgrid[:n, :n] - n / 2
    return (np.hypot(y, x) < radius).astype(float) * 100.0


def _magnitude_noise(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.abs(image + sigma * (rng.standard_normal(image.shape) + 1j * rng.standard_normal(image.shape)))


def test_snr_of_a_noisy_disc_matches_signal_over_sigma() -> None:
    scores = image_scores(_magnitude_noise(_disc(), sigma=4.0, seed=1))
    assert abs(scores["snr"] - 100.0 / 4.0) < 0.1 * 25.0


def test_a_phase_encoding_ghost_raises_the_ghosting_ratio() -> None:
    clean = _magnitude_noise(_disc(), 2.0, 2)
    ghosted = _magnitude_noise(_disc() + 0.1 * np.roll(_disc(), 64, axis=0), 2.0, 2)
    assert image_scores(ghosted)["ghosting_percent"] > image_scores(clean)["ghosting_percent"] + 3.0


def test_blurring_lowers_the_sharpness() -> None:
    sharp = _disc()
    kernel = np.ones(5) / 5
    blurred = np.apply_along_axis(lambda r: np.convolve(r, kernel, "same"), 0, sharp)
    blurred = np.apply_along_axis(lambda r: np.convolve(r, kernel, "same"), 1, blurred)
    assert image_scores(blurred + 1.0)["sharpness"] < 0.6 * image_scores(sharp + 1.0)["sharpness"]
