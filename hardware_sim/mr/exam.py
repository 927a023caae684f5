"""Public entry point: :func:`simulate_exam` → :class:`SimulatedExam` (header, items, truth)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import ismrmrd
import ismrmrd.xsd

from hardware_sim.mr.config import MRExamConfig
from hardware_sim.mr.header import build_header
from hardware_sim.mr.model import ExamModel, build_model
from hardware_sim.mr.stream import stream_items
from hardware_sim.mr.truth import MRTruth, write_truth
from hardware_sim.mr.truthgen import compute_truth

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulatedExam:
    """A simulated exam.

    ``header``: the complete ISMRMRD header; ``config``: what was simulated; ``items()``: the raw data
    stream (lazily generated, repeatable, deterministic); ``truth``: ground truth (never for a chain),
    computed on first access so that streaming can start at once.
    """

    header: ismrmrd.xsd.ismrmrdHeader
    config: MRExamConfig
    model: ExamModel = field(repr=False, compare=False)
    _truth: list[MRTruth] = field(default_factory=list, repr=False, compare=False)
    _truth_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def truth(self) -> MRTruth:
        """The ground truth (:class:`MRTruth`), computed once."""
        with self._truth_lock:
            if not self._truth:
                self._truth.append(compute_truth(self.model))
            return self._truth[0]

    def items(self) -> Iterator[ismrmrd.Acquisition | ismrmrd.Waveform]:
        """Noise prescan, then per slice its readouts interleaved with ECG waveforms, in time order."""
        return stream_items(self.model)

    def write_truth(self, path: Path) -> None:
        """Write the truth to HDF5 (load with :func:`hardware_sim.mr.read_truth`)."""
        write_truth(self.truth, Path(path))

    @property
    def scan_duration_s(self) -> float:
        """Time from the start of the exam to the last readout, s."""
        return float(self.model.schedules[-1].times_s[-1])

    @property
    def n_readouts(self) -> int:
        """Number of imaging readouts (without the noise prescan)."""
        return sum(s.ky.size for s in self.model.schedules)


def simulate_exam(config: MRExamConfig) -> SimulatedExam:
    """Set up the exam (rhythm, coils, schedules, header); k-space and truth are computed lazily."""
    logger.info(
        "simulating %s exam at %.1f T: %d slices, %d coils",
        config.protocol,
        config.field_strength_t,
        config.n_slices,
        config.n_coils,
    )
    return SimulatedExam(header=build_header(config), config=config, model=build_model(config))
