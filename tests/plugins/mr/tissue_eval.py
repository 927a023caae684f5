"""Helpers of the tissue-characterisation tests: run a chain on a simulated exam in-process and score
its maps against the simulator's truth in eroded regions of interest."""

from __future__ import annotations

from dataclasses import dataclass

import ismrmrd
import numpy as np
import scipy.ndimage as ndi

from hardware_sim.mr import MRExamConfig, MRTruth, simulate_exam
from hardware_sim.mr.tissues import Tissue
from plugins.io.dicom.series import image_meta, meta_str
from plugins.runtime.chain import load_chain
from plugins.runtime.pipeline import run_chain
from plugins.runtime.plugin import ChainContext


@dataclass(frozen=True)
class ChainResult:
    """Maps of slice 0 by ``Role`` meta ``(y, x)`` float32, and the truth."""

    maps: dict[str, np.ndarray]
    truth: MRTruth


def run_tissue_chain(chain: str, **config: object) -> ChainResult:
    """Simulate one exam and run ``chain`` on it in-process (CPU)."""
    exam = simulate_exam(MRExamConfig(**config))  # type: ignore[arg-type]
    outputs = run_chain(load_chain(chain), exam.items(), ChainContext(chain, header=exam.header))
    maps = {
        str(meta_str(image_meta(im), "Role")): np.asarray(im.data[0, 0], np.float32)
        for im in outputs
        if isinstance(im, ismrmrd.Image) and im.slice == 0
    }
    return ChainResult(maps, exam.truth)


def rois(truth: MRTruth) -> dict[str, np.ndarray]:
    """Eroded ROIs of slice 0: ``remote`` myocardium (LV wall without the lesion and 3 px around it),
    ``blood`` (LV cavity), ``lesion``."""
    lab = truth.labels[0, 0]
    lesion = truth.lesion_mask[0] if truth.lesion_mask is not None else np.zeros(lab.shape, bool)
    wall = truth.lv_myocardium_mask[0, 0] & (lab == Tissue.MYOCARDIUM)
    remote = ndi.binary_erosion(wall) & ~ndi.binary_dilation(lesion, iterations=3)
    return {
        "remote": remote,
        "blood": ndi.binary_erosion(truth.lv_mask[0, 0], iterations=2),
        "lesion": ndi.binary_erosion(lesion) if lesion.any() else lesion,
    }


def relative_error(estimate: np.ndarray, truth_map: np.ndarray, roi: np.ndarray) -> float:
    """Median of the map over the ROI relative to the true mean there, minus 1."""
    return float(np.median(estimate[roi]) / np.mean(truth_map[roi]) - 1.0)
