"""Helpers of the tissue-characterisation tests: run a chain on a simulated exam in-process and score
its maps against the simulator's truth in eroded regions of interest."""

from __future__ import annotations

import functools
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
    """Maps of slice 0 by ``Role`` meta ``(y, x)`` float32 (read-only), the truth, and each map's meta."""

    maps: dict[str, np.ndarray]
    truth: MRTruth
    meta: dict[str, dict[str, str]]


def run_tissue_chain(chain: str, **config: object) -> ChainResult:
    """Simulate one exam and run ``chain`` on it in-process (CPU); each (chain, exam) once per test session
    (the result is shared by every test that asks for it, never modified: maps are read-only)."""
    return _run_once(chain, tuple(sorted(config.items())))


@functools.cache
def _run_once(chain: str, config: tuple[tuple[str, object], ...]) -> ChainResult:
    exam = simulate_exam(MRExamConfig(**dict(config)))  # type: ignore[arg-type]
    outputs = run_chain(load_chain(chain), exam.items(), ChainContext(chain, header=exam.header))
    maps, meta = {}, {}
    for im in outputs:
        if isinstance(im, ismrmrd.Image) and im.slice == 0:
            attributes = image_meta(im)
            role = str(meta_str(attributes, "Role"))
            maps[role] = np.asarray(im.data[0, 0], np.float32)
            maps[role].setflags(write=False)
            meta[role] = {k: str(meta_str(attributes, k)) for k in attributes}
    return ChainResult(maps, exam.truth, meta)


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
