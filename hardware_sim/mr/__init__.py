"""MR hardware simulator: beating-heart thorax phantom, cine bSSFP, phase contrast and Dixon → ISMRMRD.

Public API: :class:`MRExamConfig`, :func:`simulate_exam` → :class:`SimulatedExam` (``header``,
``items()``, ``truth``, ``write_truth``), :class:`MRTruth`, :func:`read_truth`, and
:func:`thorax_label_map` (the torso geometry in LPS patient coordinates, shared with PET).
"""

from hardware_sim.mr.anatomy import thorax_label_map
from hardware_sim.mr.config import MRExamConfig
from hardware_sim.mr.exam import SimulatedExam, simulate_exam
from hardware_sim.mr.tissues import Tissue
from hardware_sim.mr.truth import MRTruth, read_truth

__all__ = ["MRExamConfig", "MRTruth", "SimulatedExam", "Tissue", "read_truth", "simulate_exam", "thorax_label_map"]
