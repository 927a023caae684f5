"""Image quality without a truth: SNR, ghosting ratio and sharpness of each magnitude series of a run.

For data from a real scanner there is no truth file; a sweep then scores points with these numbers
(:func:`score_without_truth`).  Each is computed per image (slice and frame) and averaged over the series:

* **SNR** (two-region method): mean of the object (pixels above 20 % of the image's 99th percentile)
  divided by the standard deviation of the background (the four corner squares, each 1/8 of the image
  side), times 0.655 for the Rayleigh distribution of magnitude noise in the background.
* **ghosting ratio** (%): mean of the background in the phase-encoding direction (the bands above and
  below the object, across its width) minus the mean of the background in the readout direction (the bands
  left and right of it), over the object's mean; phase encoding is along image rows (axis 0) as the chains
  write it.  Higher means more ghosting.
* **sharpness**: mean gradient magnitude (central differences, pixel units) of the 2 % strongest edges,
  over the object's mean.  Higher means crisper edges.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from plugins.compare import read_run

RAYLEIGH_FACTOR = 0.655


def _corner_background(image: np.ndarray) -> np.ndarray:
    n_y, n_x = image.shape
    by, bx = max(2, n_y // 8), max(2, n_x // 8)
    corners = [image[:by, :bx], image[:by, -bx:], image[-by:, :bx], image[-by:, -bx:]]
    return np.concatenate([c.ravel() for c in corners])


def image_scores(image: np.ndarray, quantum: float = 0.0) -> dict[str, float]:
    """SNR, ghosting ratio (%) and sharpness of one 2-D magnitude image (see the module docstring).

    ``quantum``: the step of an integer image (1); the background's standard deviation is then at least
    the rounding noise ``quantum / √12`` (a background rounded to zero gives a finite, lower-bound SNR)."""
    image = np.abs(np.asarray(image, dtype=np.float64))
    scale = float(np.percentile(image, 99)) or 1.0
    obj = image > 0.2 * scale
    if obj.sum() < 16:
        return {"snr": float("nan"), "ghosting_percent": float("nan"), "sharpness": float("nan")}
    signal = float(image[obj].mean())
    noise = max(float(_corner_background(image).std()), quantum / np.sqrt(12.0))
    rows, cols = np.flatnonzero(obj.any(axis=1)), np.flatnonzero(obj.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1], cols[0], cols[-1]
    pe_bands = np.concatenate(
        [image[: max(top - 2, 1), left : right + 1].ravel(), image[bottom + 3 :, left : right + 1].ravel()]
    )
    ro_bands = np.concatenate(
        [image[top : bottom + 1, : max(left - 2, 1)].ravel(), image[top : bottom + 1, right + 3 :].ravel()]
    )
    ghost = (
        100.0 * (pe_bands.mean() - ro_bands.mean()) / signal
        if pe_bands.size and ro_bands.size
        else float("nan")
    )
    gy, gx = np.gradient(image)
    gradient = np.hypot(gy, gx).ravel()
    strongest = np.sort(gradient)[-max(1, gradient.size // 50) :]
    return {
        "snr": RAYLEIGH_FACTOR * signal / noise if noise > 0 else float("inf"),
        "ghosting_percent": float(ghost),
        "sharpness": float(strongest.mean() / signal),
    }


def score_without_truth(run_dir: Path) -> dict[str, Any]:
    """Per magnitude series of the run: the mean of each score over its images, and the image count."""
    series, _reports = read_run(Path(run_dir))
    out: dict[str, Any] = {}
    for index, images in series.items():
        rows = []
        for image in images:
            data = np.asarray(image.data)
            if (
                np.iscomplexobj(data) or data.ndim < 2 or data.min() < 0
            ):  # signed maps (velocity) are not scored
                continue
            plane = data.reshape(-1, *data.shape[-2:])
            quantum = 1.0 if np.issubdtype(data.dtype, np.integer) else 0.0
            rows += [image_scores(p, quantum) for p in plane]
        if rows:
            out[str(index)] = {
                key: float(np.nanmean([r[key] for r in rows]))
                for key in ("snr", "ghosting_percent", "sharpness")
            } | {"n_images": len(rows)}
    return {"series": out}
