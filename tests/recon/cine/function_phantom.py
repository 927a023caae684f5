"""A fast image-domain short-axis cine stack for the function analysis: nested contracting ellipses.

Per slice (0 basal) and phase: a bright LV pool (radius shrinking towards the apex and in systole), a
dark myocardial ring of constant area, a 3 mm bright fat shell, a bright RV crescent on the septal
side, dark lung around, smoothed by half a pixel and with Gaussian noise.  The exact (pixel-centre)
masks come with it.  Not a physical simulation: a unit-test and benchmark input whose answer is known.
"""

from __future__ import annotations

from dataclasses import dataclass

import ismrmrd
import numpy as np
import numpy.typing as npt
from scipy import ndimage

BLOOD, MYOCARDIUM, FAT, LUNG, MEDIASTINUM = 1.0, 0.3, 1.2, 0.05, 0.35


@dataclass(frozen=True)
class RingStack:
    """``images`` (S, P, Y, X) float64; ``lv``, ``myocardium``, ``rv`` (S, P, Y, X) bool truth masks;
    ``pixel_mm``; ``slice_spacing_mm``; ``es_phase`` the phase of smallest LV."""

    images: npt.NDArray[np.float64]
    lv: npt.NDArray[np.bool_]
    myocardium: npt.NDArray[np.bool_]
    rv: npt.NDArray[np.bool_]
    pixel_mm: float
    slice_spacing_mm: float
    es_phase: int


def ring_stack(
    n_slices: int = 12,
    n_phases: int = 25,
    shape: tuple[int, int] = (156, 192),
    pixel_mm: float = 2.0,
    noise: float = 0.03,
    seed: int = 0,
) -> RingStack:
    """The phantom (see the module doc); volumes shrink by ≈ 55 % at phase ``n_phases // 3``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    cy, cx = shape[0] / 2 + 4.0, shape[1] / 2 + 10.0
    es = n_phases // 3
    phase = np.arange(n_phases)
    contraction = np.where(phase <= es, 0.5 - 0.5 * np.cos(np.pi * phase / es), 0.0)
    contraction = np.where(
        phase > es, 0.5 + 0.5 * np.cos(np.pi * (phase - es) / (n_phases - es)), contraction
    )
    out = np.zeros((n_slices, n_phases, *shape))
    masks = np.zeros((3, n_slices, n_phases, *shape), bool)
    for s in range(n_slices):
        taper = np.sqrt(max(0.0, 1.0 - (s / (n_slices + 0.5)) ** 2))
        for p in range(n_phases):
            r_blood = taper * 24.0 * np.sqrt(1.0 - 0.55 * contraction[p]) / pixel_mm
            r_epi = np.sqrt(r_blood**2 + (taper * 26.0 / pixel_mm) ** 2)
            r = np.hypot(yy - cy, xx - cx)
            rv_r = np.hypot((yy - cy) / 1.3, (xx - cx + r_epi + 8.0 / pixel_mm) / 0.75)
            rv = (rv_r < taper * 30.0 * (1.0 - 0.4 * contraction[p]) / pixel_mm) & (r > r_epi)
            lv, myo = r <= r_blood, (r > r_blood) & (r <= r_epi)
            fat = (r > r_epi) & (r <= r_epi + 3.0 / pixel_mm) & ~rv
            image = np.full(shape, LUNG)
            image[r < r_epi + 35.0 / pixel_mm] = MEDIASTINUM
            image[fat], image[rv], image[myo], image[lv] = FAT, BLOOD, MYOCARDIUM, BLOOD
            out[s, p] = ndimage.gaussian_filter(image, 0.5) + noise * rng.standard_normal(shape)
            masks[:, s, p] = lv, myo, rv
    return RingStack(out, masks[0], masks[1], masks[2], pixel_mm, 8.0, es)


def ring_images(stack: RingStack, series_index: int = 1) -> list[ismrmrd.Image]:
    """The stack as the ``cine_image`` stage emits it: uint16 magnitudes with ``DisplayScale`` meta,
    slice positions ``slice_spacing_mm`` apart along the slice normal, one image per slice and phase."""
    scale = 4095.0 / float(np.percentile(stack.images, 99.5))
    n_y, n_x = stack.images.shape[-2:]
    images = []
    for s in range(stack.images.shape[0]):
        for p in range(stack.images.shape[1]):
            pixels = np.clip(stack.images[s, p] * scale, 0, 65535).astype(np.uint16)
            image = ismrmrd.Image.from_array(pixels[None])
            image.field_of_view = (n_x * stack.pixel_mm, n_y * stack.pixel_mm, stack.slice_spacing_mm)
            image.position = (0.0, 0.0, stack.slice_spacing_mm * s)
            image.read_dir, image.phase_dir, image.slice_dir = (
                (1.0, 0.0, 0.0),
                (0.0, 1.0, 0.0),
                (0.0, 0.0, 1.0),
            )
            image.slice, image.phase, image.image_series_index = s, p, series_index
            meta = ismrmrd.Meta()
            meta["DisplayScale"] = f"{scale:.6g}"
            image.attribute_string = meta.serialize()
            images.append(image)
    return images
