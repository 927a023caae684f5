"""MR hardware simulator: beating-heart thorax phantom, cine bSSFP, phase contrast and Dixon → ISMRMRD.

Public API: :class:`MRExamConfig`, :func:`simulate_exam` → :class:`SimulatedExam` (``header``,
``items()``, ``truth``, ``write_truth``), :class:`MRTruth`, :func:`read_truth`, :class:`Tissue` and
:func:`thorax_label_map` (the torso geometry in LPS patient coordinates, shared with the PET phantom).

Conventions of the stream (what a chain may rely on):

* order: 8 noise-prescan readouts (``ACQ_IS_NOISE_MEASUREMENT``, ``sample_time_us`` = imaging dwell),
  then slice by slice the readouts in time order, ECG waveforms (id 0, 5 channels: 4 leads + trigger
  channel 4 that is 1 at each R-wave sample, 2.5 ms samples, 100 ms chunks) interleaved by time;
* ``acquisition_time_stamp`` in 2.5 ms ticks (09:00:00 = exam time 0, see
  ``MRTruth.time_stamp_origin_ticks``), ``physiology_time_stamp[0]`` = ticks since the last trigger;
* ``idx.kspace_encode_step_1`` = ky (centre n_pe//2), ``idx.slice``, ``idx.set`` (flow: 0 reference,
  1 velocity encoded), ``idx.contrast`` (dixon echo), ``idx.phase`` = 0 (retrospective: the recon bins);
* flags: ``ACQ_FIRST_IN_SLICE``/``ACQ_LAST_IN_SLICE``, ``ACQ_LAST_IN_MEASUREMENT``, calibration lines
  ``ACQ_IS_PARALLEL_CALIBRATION`` (ACS only) or ``..._AND_IMAGING`` (ACS on the R pattern), when R > 1;
* raw readouts have 2× oversampling; a centred orthonormal inverse FFT with the oversampling removed
  returns ``truth.images`` (coil weighted by the true maps), so the truth and the data agree exactly;
* truth phase p is the state at cardiac fraction (p + ½)/n_phases of a nominal beat.
"""

from hardware_sim.mr.anatomy import thorax_label_map
from hardware_sim.mr.config import MRExamConfig
from hardware_sim.mr.exam import SimulatedExam, simulate_exam
from hardware_sim.mr.tissues import Tissue
from hardware_sim.mr.truth import MRTruth, read_truth

__all__ = [
    "MRExamConfig",
    "MRTruth",
    "SimulatedExam",
    "Tissue",
    "read_truth",
    "simulate_exam",
    "thorax_label_map",
]
