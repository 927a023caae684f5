"""Physical receiver-noise level of a simulated exam: noise std per raw k-space sample from the protocol.

Derivation (thermal noise, body-noise dominated receive chain as at 1.5 T and 3 T):

* A raw readout sample integrates white receiver noise over the raw dwell time
  ``Δt = 1 / (BW_px · n_readout · oversampling)`` (BW_px the announced pixel bandwidth, the header's
  ``sample_time_us``), so its noise variance is ∝ 1 / Δt.  The signal of a voxel is ∝ its
  magnetisation m times its volume ``V = Δx·Δy·slice thickness``.
* The simulator writes k-space in *magnetisation units*: ``k = Σ m·C·e^{-2πik·r} / √(n_os·n_pe)``, so a
  centred orthonormal inverse FFT with the oversampling removed returns m per pixel (independent of V),
  and the image-domain noise std per pixel equals the per-raw-sample std σ.  Dividing the physical
  signal and noise by the same factor ``V·√(n_os·n_pe)`` gives

      σ = K / (snr_scale · V · √T),    T = n_pe · n_averages / BW_px = n_os·n_pe·n_averages·Δt,

  T the total sampling time of one fully sampled image (s; the oversampling cancels, as it should).
  Each line is acquired once (n_averages = 1; averaging would also lengthen the scan).  Hence the
  single-coil image SNR ``|m·C|/σ ∝ m · V · √T``: halving the voxel volume halves the SNR, doubling the
  bandwidth divides it by √2.  Undersampling (R, partial Fourier) is *not* in σ: fewer lines are acquired
  and the reconstruction pays √R·g itself.
* Field strength: with body noise, the noise voltage grows ∝ B0 and the signal voltage ∝ B0² (M0 ∝ B0
  and the Faraday induction ∝ ω0), so SNR ∝ B0.  Here the signal model already scales m by B0 / 1.5 T
  (:class:`hardware_sim.mr.scene.SignalModel`) and K does not depend on B0, which gives the same SNR ∝ B0;
  the relaxation times of the field change the steady-state signal (bSSFP ∝ ~√(T2/T1)) on top of that.
* Coil geometry: the element sensitivities and the correlated covariance structure of
  :func:`hardware_sim.mr.coils.make_coil_array` are kept; σ² sets its overall level, so the combined SNR
  is ``m·√(Cᴴ Ψ⁻¹ C)`` and falls with fewer or more distant elements.

Calibration of K (once, on the default cine exam: shipped ``cine`` chain, 16 coils, R = 2 GRAPPA,
192 × 156 over 400 × 325 mm, 8 mm, 930 Hz/px; see ``tests/hardware_sim/test_mr_snr.py``).  SNR is
measured as a physicist does in the magnitude images: mean of an ROI (LV blood pool, myocardium, from
the truth labels) divided by the noise std from the difference of two acquisitions that differ only in
their noise (difference method, std(difference)/√2, as in Reeder et al., MRM 2005;54:748, for parallel
imaging).  No Rayleigh factor 0.655 is needed because the noise is not taken from air.  Published SNRs
mostly use ROI mean / std of air (× 0.655 or not), which overestimates the SNR of parallel-imaging and
multi-coil magnitude images, so the targets below sit at the lower side of the reported values.

The targets (:data:`CLINICAL_SNR_TARGETS`) are approximate; what each rests on:

* 1.5 T, blood 80 / myocardium 25.  Anchor: segmented 2D bSSFP cine at 1.8 × 1.8 × 8 mm reported
  myocardium SNR 29 ± 7 and blood–myocardium CNR 69 ± 14, i.e. blood ≈ 98 (PMC8147553, Table 1,
  "CONV"); its field strength, coil and SNR definition could not be checked with the tools at hand,
  and its voxel is 0.75× ours.  The blood/myocardium ratio ≈ 3.2 agrees with that table (≈ 3.4).
* 3 T, blood 160 / myocardium 40: the 1.5 T values times the gain of 3 T.  Blood ×2.0: conventional
  cine ΔSNR = +123 % and accelerated cine +161 % at 3 T vs 1.5 T (Gutberlet et al., Invest Radiol
  2006;41:154, "Comprehensive cardiac MRI at 3.0 Tesla"), blood-pool SNR "more than 75 %" higher at 3 T
  (Eur J Radiol 2008;65:80, "Cardiac cine MRI: comparison of 1.5 T, non-enhanced 3.0 T and blood pool
  enhanced 3.0 T imaging").  Myocardium ×1.6 is an estimate (no verified published figure): its T1
  lengthens relatively more than blood's at 3 T, and bSSFP signal goes as ≈ √(T2/T1).  Schär et al.,
  "Cardiac SSFP imaging at 3 Tesla", MRM 2004;51:799, is the classic 1.5 vs 3 T bSSFP comparison; its
  numbers could not be checked here and are not used.
* Phase contrast (GRE, 5 ms TR, 15°, 450 Hz/px) is not a calibration target; the same K gives its SNR
  (Gutberlet et al. report +79 % SNR for phase-contrast flow at 3 T).

Calibration record (default cine exam, n_slices = 2, seed 0; SNR ∝ 1/K): at K = 0.0134 the exam
measured blood 76 / myocardium 25 at 1.5 T and 127 / 36 at 3 T; K = 0.0122 centres the four on their
targets and measured blood 83 / myocardium 27 at 1.5 T and 136 / 39 at 3 T (anatomy of 2026-12-04,
in the middle of its rewrite).  One K cannot fit every 3 T/1.5 T gain: the signal model gives blood
×1.65 and myocardium ×1.46 on this exam, against ×2.0 and ×1.6 assumed in the targets.
"""

from __future__ import annotations

import math

import numpy as np

from hardware_sim.mr.config import MRExamConfig

NOISE_CONSTANT = 0.0122
"""K in σ = K / (snr_scale · V[mm³] · √T[s]): a.u. (water M0 = 1 at 1.5 T) · mm³ · s^½."""

CLINICAL_SNR_TARGETS: dict[tuple[str, float], float] = {
    ("cine_blood", 1.5): 80.0,
    ("cine_myocardium", 1.5): 25.0,
    ("cine_blood", 3.0): 160.0,
    ("cine_myocardium", 3.0): 40.0,
}
"""SNR of the default cine exam (difference method) keyed by (ROI, B0 in T); sources in the module doc."""


def voxel_volume_mm3(config: MRExamConfig) -> float:
    """Recon voxel volume Δx·Δy·slice thickness, mm³."""
    fov_read_mm, fov_phase_mm = config.effective_fov_mm
    return fov_read_mm / config.n_readout * fov_phase_mm / config.n_phase_encodes * config.slice_thickness_mm


def sampling_time_s(config: MRExamConfig) -> float:
    """Total sampling time of one fully sampled image, s: n_pe lines × the announced raw dwell × samples.

    Uses ``dwell_time_us`` (the ``sample_time_us`` written to every readout), i.e. n_pe / BW_px.
    """
    n_raw = config.n_readout * config.readout_oversampling
    return config.n_phase_encodes * n_raw * config.dwell_time_us * 1e-6


def noise_std_per_sample(config: MRExamConfig) -> float:
    """White noise std per raw k-space sample (a.u., water M0 = 1 at 1.5 T): ``noise_std`` if given,
    else ``K / (snr_scale · V · √T)`` (see the module docstring).  SNR ∝ B0 enters through the signal."""
    if config.noise_std is not None:
        return config.noise_std
    volume = voxel_volume_mm3(config)
    return NOISE_CONSTANT / (config.snr_scale * volume * math.sqrt(sampling_time_s(config)))


def noise_rng(config: MRExamConfig) -> np.random.Generator:
    """Generator of the exam's receiver noise: from ``seed``, or ``noise_seed`` when set (same exam,
    another noise realisation, for difference-method SNR measurements)."""
    if config.noise_seed is None:
        return np.random.default_rng([config.seed, 3])
    return np.random.default_rng([config.seed, 3, config.noise_seed])
