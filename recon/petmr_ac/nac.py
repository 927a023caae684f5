"""A quick non-attenuation-corrected (NAC) PET image for the body outline of truncation completion.

The NAC image is a short TOF list-mode OSEM on a coarse grid (no attenuation, no scatter) of a subsample of
the frame's prompts, made with the reconstruction of :mod:`recon.tof.reconstruct`; its only use is the
outline of the body, arms included, which the MR field of view may cut off.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from recon.tof.geometry import ImageGrid, ScannerGeometry
from recon.tof.listmode import ListModeBatch, PETAcquisitionInfo
from recon.tof.reconstruct import ReconstructionParameters, reconstruct_frame

logger = logging.getLogger(__name__)


def subsample_events(batch: ListModeBatch, max_events: int) -> ListModeBatch:
    """Every k-th event (prompts and delayeds alike, so the randoms fraction is kept) with ≤ ``max_events``."""
    if batch.n_events <= max_events:
        return batch
    step = int(np.ceil(batch.n_events / max_events))
    mask = np.zeros(batch.n_events, dtype=bool)
    mask[::step] = True
    return batch.select(mask)


def nac_image(
    batch: ListModeBatch,
    info: PETAcquisitionInfo,
    scanner: ScannerGeometry,
    grid: ImageGrid,
    n_iterations: int = 2,
    n_subsets: int = 4,
    max_events: int = 2_000_000,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """NAC activity (arbitrary units) on ``grid``, (z, y, x) float32, from ≤ ``max_events`` events."""
    events = subsample_events(batch, max_events)
    params = ReconstructionParameters(
        n_iterations=n_iterations,
        n_subsets=n_subsets,
        scatter=False,
        post_filter_fwhm_mm=0.0,
        max_sensitivity_pairs=2_000_000,
    )
    logger.info(
        "NAC image for truncation completion: %d of %d events, grid %s",
        events.n_events,
        batch.n_events,
        grid.shape_zyx,
    )
    result = reconstruct_frame(events, info, scanner, grid, None, params, device)
    return np.asarray(result.activity_bq_per_ml.detach().cpu().numpy(), dtype=np.float32)
