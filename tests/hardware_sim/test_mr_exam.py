"""The simulated cine exam stream: order, flags, geometry, time stamps, ECG, sampling, noise, truth."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import ismrmrd
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from hardware_sim.mr import MRExamConfig, SimulatedExam, read_truth, simulate_exam
from hardware_sim.mr.model import TICK_S
from hardware_sim.mr.stream import ECG_CHANNELS, N_NOISE_READOUTS
from recon.common.blas_threads import single_thread_blas

SMALL = dict(
    n_slices=2,
    n_coils=8,
    n_readout=64,
    n_phase_encodes=52,
    n_phases=6,
    n_calibration_lines=12,
    views_per_segment=4,
)


@pytest.fixture(scope="module")
def cine() -> tuple[SimulatedExam, list[ismrmrd.Acquisition | ismrmrd.Waveform]]:
    exam = simulate_exam(MRExamConfig(heart_rate_bpm=75.0, rr_variability_percent=3.0, seed=11, **SMALL))
    return exam, list(exam.items())


def _acqs(items: list) -> list[ismrmrd.Acquisition]:
    return [i for i in items if isinstance(i, ismrmrd.Acquisition)]


def _imaging(items: list) -> list[ismrmrd.Acquisition]:
    return [a for a in _acqs(items) if not a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)]


def test_noise_prescan_first_then_slices_with_flags(cine) -> None:
    exam, items = cine
    acqs = _acqs(items)
    noise = acqs[:N_NOISE_READOUTS]
    assert all(a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT) and a.sample_time_us > 0 for a in noise)
    imaging = acqs[N_NOISE_READOUTS:]
    assert not any(a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT) for a in imaging)
    slices = [a.idx.slice for a in imaging]
    assert slices == sorted(slices)
    for s in range(exam.config.n_slices):
        mine = [a for a in imaging if a.idx.slice == s]
        assert mine[0].is_flag_set(ismrmrd.ACQ_FIRST_IN_SLICE)
        assert mine[-1].is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE)
        assert sum(a.is_flag_set(ismrmrd.ACQ_FIRST_IN_SLICE) for a in mine) == 1
    assert imaging[-1].is_flag_set(ismrmrd.ACQ_LAST_IN_MEASUREMENT)
    assert all(a.data.shape == (8, 128) and a.center_sample == 64 for a in imaging)
    assert [a.scan_counter for a in acqs] == list(range(len(acqs)))


def test_directions_unit_orthogonal_and_positions(cine) -> None:
    exam, items = cine
    for a in _imaging(items)[::50]:
        dirs = np.array([a.read_dir[:], a.phase_dir[:], a.slice_dir[:]], dtype=np.float64)
        np.testing.assert_allclose(dirs @ dirs.T, np.eye(3), atol=1e-6)
        np.testing.assert_allclose(np.cross(dirs[0], dirs[1]), dirs[2], atol=1e-6)
        np.testing.assert_allclose(a.position[:], exam.truth.slice_positions_mm[a.idx.slice], atol=1e-3)


def test_time_stamps_monotone_in_ticks(cine) -> None:
    exam, items = cine
    acq_ticks = np.array([a.acquisition_time_stamp for a in _acqs(items)], dtype=np.int64)
    assert np.all(np.diff(acq_ticks) >= 0)
    schedule_ticks = np.concatenate([np.round(s.times_s / TICK_S) for s in exam.model.schedules])
    imaging = acq_ticks[N_NOISE_READOUTS:] - exam.truth.time_stamp_origin_ticks
    np.testing.assert_array_equal(imaging, schedule_ticks)
    # TR = 3 ms: consecutive readouts within a beat are 1 or 2 ticks apart
    assert np.median(np.diff(imaging)) in (1, 2)
    # waveforms and acquisitions are emitted in time order
    stamps = [
        i.acquisition_time_stamp if isinstance(i, ismrmrd.Acquisition) else i.time_stamp + 39 for i in items
    ]
    late = [b - a for a, b in itertools.pairwise(stamps) if b < a]
    assert not late or min(late) >= -40


def _triggers_s(exam: SimulatedExam, items: list) -> np.ndarray:
    times = []
    for w in items:
        if isinstance(w, ismrmrd.Waveform):
            assert (
                w.waveform_id == 0
                and w.channels == ECG_CHANNELS
                and w.sample_time_us == pytest.approx(2500.0)
            )
            hits = np.nonzero(w.data[ECG_CHANNELS - 1])[0]
            times.extend(((w.time_stamp - exam.truth.time_stamp_origin_ticks) + hits) * TICK_S)
    return np.array(times)


def test_ecg_triggers_match_r_waves_and_heart_rate(cine) -> None:
    exam, items = cine
    triggers = _triggers_s(exam, items)
    r = exam.truth.r_wave_times_s
    r = r[(r >= 0.0) & (r < triggers[-1] + TICK_S)]
    assert triggers.size == r.size
    np.testing.assert_allclose(triggers, r, atol=TICK_S)
    rr = np.diff(triggers)
    assert rr.mean() == pytest.approx(60.0 / 75.0, rel=0.02)
    assert 0.005 < rr.std() / rr.mean() < 0.06


def test_physiology_time_stamp_counts_ticks_since_trigger(cine) -> None:
    exam, items = cine
    triggers = _triggers_s(exam, items)
    trigger_ticks = np.round(triggers / TICK_S).astype(np.int64)
    for a in _imaging(items)[::7]:
        tick = a.acquisition_time_stamp - exam.truth.time_stamp_origin_ticks
        last = trigger_ticks[trigger_ticks <= tick].max()
        assert a.physiology_time_stamp[0] == tick - last


def test_undersampling_pattern_and_calibration_flags(cine) -> None:
    exam, items = cine
    n_pe, centre = 52, 26
    cal_bits = (1 << (ismrmrd.ACQ_IS_PARALLEL_CALIBRATION - 1)) | (
        1 << (ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING - 1)
    )
    for s in range(2):
        lines: dict[int, set[int]] = {}
        for a in _imaging(items):
            if a.idx.slice == s:
                lines.setdefault(a.idx.kspace_encode_step_1, set()).add(int(a.flags) & cal_bits)
        acs = set(range(centre - 6, centre + 6))
        pattern = {k for k in range(n_pe) if (k - centre) % 2 == 0}
        assert set(lines) == acs | pattern
        for ky, flags in lines.items():
            (flag,) = flags  # every repetition of a line carries the same calibration flags
            cal = bool(flag & (1 << (ismrmrd.ACQ_IS_PARALLEL_CALIBRATION - 1)))
            both = bool(flag & (1 << (ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING - 1)))
            assert cal == (ky in acs and ky not in pattern)
            assert both == (ky in acs and ky in pattern)
    assert exam.model.schedules[0].ky.size > len(acs | pattern) * 6  # each line repeated across the beat


def test_prescan_noise_covariance_matches_configured(cine) -> None:
    exam, items = cine
    noise = np.concatenate([a.data for a in _acqs(items)[:N_NOISE_READOUTS]], axis=1)
    n = noise.shape[1]
    estimate = noise @ noise.conj().T / n
    psi = exam.truth.noise_covariance
    scale = np.sqrt(np.outer(np.diag(psi).real, np.diag(psi).real))
    assert np.max(np.abs(estimate - psi) / scale) < 5.0 / np.sqrt(n)


def test_items_are_deterministic(cine) -> None:
    exam, items = cine
    again = list(itertools.islice(exam.items(), 400))
    for a, b in zip(items[:400], again, strict=True):
        assert type(a) is type(b)
        np.testing.assert_array_equal(a.data, b.data)


def test_truth_shapes_and_round_trip(cine, tmp_path: Path) -> None:
    exam, _ = cine
    truth = exam.truth
    assert truth.images.shape == (2, 6, 52, 64) and truth.images.dtype == np.complex64
    assert truth.coil_maps.shape == (2, 8, 52, 64)
    np.testing.assert_allclose(truth.coil_rss, np.sqrt((np.abs(truth.coil_maps) ** 2).sum(1)), rtol=1e-5)
    assert truth.lv_volume_ml[truth.end_diastolic_phase] > truth.lv_volume_ml[truth.end_systolic_phase] + 40.0
    np.testing.assert_allclose(truth.phase_fractions, (np.arange(6) + 0.5) / 6)
    path = tmp_path / "exam.truth.h5"
    exam.write_truth(path)
    loaded = read_truth(path)
    np.testing.assert_array_equal(loaded.images, truth.images)
    np.testing.assert_array_equal(loaded.labels, truth.labels)
    assert loaded.end_systolic_phase == truth.end_systolic_phase and loaded.protocol == "cine"


@pytest.mark.parametrize("protocol", ["cine", "flow", "dixon"])
def test_fully_sampled_noise_free_kspace_matches_truth_image(protocol: str) -> None:
    config = MRExamConfig(
        protocol=protocol,  # type: ignore[arg-type]
        n_slices=1, n_coils=8, n_readout=64, n_phase_encodes=52, n_phases=2, acceleration=1,
        n_calibration_lines=0, noise_std=0.0, cardiac_motion=False, views_per_segment=26,
    )  # fmt: skip
    exam = simulate_exam(config)
    n_contrasts = {"cine": 1, "flow": 2, "dixon": 2}[protocol]
    k = np.zeros((n_contrasts, 8, 52, 128), np.complex64)
    for a in _imaging(list(exam.items())):
        k[a.idx.set + a.idx.contrast, :, a.idx.kspace_encode_step_1] = a.data
    image = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    image = image[..., 32:96]  # remove the 2x readout oversampling
    coils = exam.truth.coil_maps[0]
    combined = (coils.conj()[None] * image).sum(1) / (np.abs(coils) ** 2).sum(0)
    truth = exam.truth.images[0]
    truth = {"cine": truth[:1], "flow": truth[:, 0], "dixon": truth}[protocol]
    body = exam.truth.body_mask[0]
    for c in range(n_contrasts):
        nrmse = np.linalg.norm((combined[c] - truth[c])[body]) / np.linalg.norm(truth[c][body])
        assert nrmse < 0.03, (protocol, c, nrmse)


def test_motion_is_continuous_in_time() -> None:
    """A streamed readout equals the k-space line computed directly at its own time (interpolation
    between 10 ms motion samples), and differs from the line at a time 60 ms away."""
    config = MRExamConfig(
        n_slices=1, n_coils=8, n_readout=64, n_phase_encodes=52, n_phases=4, noise_std=0.0, seed=3
    )
    exam = simulate_exam(config)
    acqs = _imaging(list(exam.items()))
    model, synth = exam.model, exam.model.synthesizer(0)
    sched = model.schedules[0]
    errors, changes = [], []
    for r in range(0, len(acqs), max(1, len(acqs) // 40)):
        t, ky = float(sched.times_s[r]), int(sched.ky[r])
        direct = synth.full_kspace(*model.state(t))[0, :, ky]
        later = synth.full_kspace(*model.state(t + 0.06))[0, :, ky]
        errors.append(np.linalg.norm(acqs[r].data - direct) / np.linalg.norm(direct))
        changes.append(np.linalg.norm(later - direct) / np.linalg.norm(direct))
    assert np.median(errors) < 0.01 and max(errors) < 0.05
    assert np.median(changes) > 3 * np.median(errors)


def test_variable_density_masks_change_per_frame() -> None:
    config = MRExamConfig(
        n_slices=1, n_coils=8, n_readout=64, n_phase_encodes=64, n_phases=5, acceleration=4,
        undersampling="variable_density", seed=2,
    )  # fmt: skip
    exam = simulate_exam(config)
    model = exam.model
    sched = model.schedules[0]
    rhythm = model.rhythm
    beat = rhythm.beat_index(sched.times_s)
    frame = np.floor((sched.times_s - rhythm.r_wave_times_s[beat]) / rhythm.rr_s[beat] * 5).astype(int)
    masks = [set(sched.ky[frame == p].tolist()) for p in range(5)]
    assert all(len(m) == pytest.approx(16, abs=1) for m in masks)
    assert len({frozenset(m) for m in masks}) == 5  # a different pattern per frame
    assert all({31, 32} <= m for m in masks)  # the k-space centre in every frame
    outer = [np.mean([abs(k - 32) > 16 for k in m]) for m in masks]
    assert np.mean(outer) < 0.5 * np.mean([abs(k - 32) > 16 for k in range(64)]) + 0.05


def test_ectopic_rhythm_reaches_the_ecg_and_truth() -> None:
    config = MRExamConfig(
        n_slices=1, n_coils=8, n_readout=32, n_phase_encodes=32, n_phases=4, n_calibration_lines=8,
        views_per_segment=2, arrhythmia="ectopic", ectopic_fraction=0.3, rr_variability_percent=0.0, seed=4,
    )  # fmt: skip
    exam = simulate_exam(config)
    triggers = _triggers_s(exam, list(exam.items()))
    rr = np.diff(triggers)
    truth = exam.truth
    assert truth.ectopic_beats.any()
    # premature beats: RR ≈ 0.65 of nominal followed by a compensatory pause ≈ 1.35
    assert np.any(np.abs(rr - 0.65) < 2 * TICK_S) and np.any(np.abs(rr - 1.35) < 2 * TICK_S)
    np.testing.assert_allclose(np.sort(np.unique(np.round(truth.rr_s, 6))), [0.65, 1.0, 1.35], atol=1e-6)


def test_partial_fourier_omits_early_lines() -> None:
    config = MRExamConfig(
        n_slices=1, n_coils=8, n_readout=32, n_phase_encodes=64, n_phases=4, acceleration=2,
        n_calibration_lines=16, partial_fourier=0.75, views_per_segment=8,
    )  # fmt: skip
    exam = simulate_exam(config)
    lines = set(exam.model.schedules[0].ky.tolist())
    assert min(lines) == 16 and max(lines) == 62  # R = 2: even lines from 16 on
    assert exam.header.encoding[0].encodingLimits.kspace_encoding_step_1.minimum == 16
    assert set(range(24, 40)) <= lines  # calibration region intact


def test_imaging_noise_has_the_configured_covariance() -> None:
    config = MRExamConfig(
        n_slices=1, n_coils=8, n_readout=32, n_phase_encodes=32, n_phases=2, n_calibration_lines=8,
        cardiac_motion=False, noise_std=0.01, seed=9,
    )  # fmt: skip
    exam = simulate_exam(config)
    clean = exam.model.synthesizer(0).full_kspace(0.0, None)[0]
    residual = np.concatenate(
        [a.data - clean[:, a.idx.kspace_encode_step_1] for a in _imaging(list(exam.items()))], axis=1
    )
    n = residual.shape[1]
    estimate = residual @ residual.conj().T / n
    psi = exam.truth.noise_covariance
    scale = np.sqrt(np.outer(np.diag(psi).real, np.diag(psi).real))
    assert np.max(np.abs(estimate - psi) / scale) < 5.0 / np.sqrt(n)
    assert np.abs(residual.mean()) < 5.0 * np.sqrt(np.diag(psi).real.mean() / residual.size)


def test_two_concurrent_streams_of_one_exam_agree(cine) -> None:
    """Two threads streaming one exam get the same items as one stream alone.  The k-space is the same up to
    float32 rounding (≤ 1e-6 of the largest sample): a static k-space built on the prefetch thread or on a
    stream's own thread may sum in another order; shared state going wrong (noise generator, caches) would
    show at the noise level (≈ 1e-3) or above."""
    exam, items = cine
    results: list[list] = [[], []]

    def consume(k: int) -> None:
        results[k] = list(itertools.islice(exam.items(), 600))

    threads = [threading.Thread(target=consume, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results:
        assert len(got) == 600
        for a, b in zip(items[:600:17], got[::17], strict=True):
            np.testing.assert_allclose(b.data, a.data, rtol=0, atol=1e-6 * np.abs(a.data).max())


def test_items_do_not_depend_on_blas_threads_or_other_threads(cine) -> None:
    """The same seed gives the same bits whether numpy's BLAS runs on one thread or two, and while
    another thread keeps opening and closing one-thread BLAS sections (a reconstruction in the same
    process does): OpenBLAS's last bits depend on its thread count, a process-wide setting."""
    _, items = cine
    config = MRExamConfig(heart_rate_bpm=75.0, rr_variability_percent=3.0, seed=11, **SMALL)
    stop = threading.Event()

    def other_stage() -> None:
        a = np.ones((16, 16), np.complex64)
        b = np.ones((16, 4096), np.complex64)
        while not stop.is_set():
            with single_thread_blas():
                a @ b

    for n_threads in (2, 1):
        with threadpool_limits(limits=n_threads, user_api="blas"):  # set before the other thread starts
            toggler = threading.Thread(target=other_stage, daemon=True)
            toggler.start()
            try:
                again = list(itertools.islice(simulate_exam(config).items(), 1200))
            finally:
                stop.set()
                toggler.join()
        stop.clear()
        for a, b in zip(items[:1200], again, strict=True):
            np.testing.assert_array_equal(a.data, b.data)
