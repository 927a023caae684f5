"""Fit a phantom to a scanner: a uniform geometric scale when the phantom is wider than the scanner's field of view.

The NEMA IEC body phantom (with its table, 32 cm wide) and the torso (with arms, table and coil, 58 cm wide)
are built for clinical bores; the ``small`` test scanner (ring radius 150 mm) cannot take them.  Instead of
refusing, :func:`fit_to_scanner` shrinks the phantom's geometry by one factor ``s`` about the isocentre (voxel
size and origin × s): shapes, proportions, activity concentrations (Bq/ml) and attenuation coefficients are
kept, so lengths through matter, volumes (× s³) and the total activity (× s³) shrink.  A phantom that already
fits is returned unchanged (``s = 1``).

A phantom fits when its activity lies within the transaxial FOV (0.95 × ring radius) and its attenuating
material (table, coils) within the bore (the ring radius): the clinical scanners take both phantoms as built.
One that does not is shrunk until every voxel with activity or attenuation lies within
:data:`FIT_RADIUS_FRACTION` of the FOV radius.  The axial extent is not constrained (activity outside the axial
FOV is real and only costs simulation time).  The factor is recorded in the truth file
(``/phantom`` attribute ``geometry_scale``) and logged.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from hardware_sim.pet.phantoms import PETPhantom
from recon.tof.geometry import ImageGrid, ScannerGeometry

logger = logging.getLogger(__name__)

#: Phantoms are scaled so that their transaxial extent is at most this fraction of the FOV radius.
FIT_RADIUS_FRACTION = 0.85
#: Transaxial FOV radius as a fraction of the ring radius (the simulator's and the recon's default).
FOV_RADIUS_FRACTION = 0.95


def transaxial_extent_mm(phantom: PETPhantom, what: str = "any") -> float:
    """Largest distance from the scanner axis of any voxel corner with activity (``what="activity"``),
    attenuation (``"mu"``) or either (``"any"``), mm."""
    active, attenuating = phantom.activity_bq_per_ml > 0, phantom.mu_per_cm > 0
    occupied = {"activity": active, "mu": attenuating}.get(what, active | attenuating)
    if not occupied.any():
        return 0.0
    in_plane = occupied.any(axis=0)
    grid = phantom.grid
    y = grid.axis_centres_mm(1)[:, None]
    x = grid.axis_centres_mm(2)[None, :]
    half_diagonal = 0.5 * float(np.hypot(grid.voxel_size_mm[1], grid.voxel_size_mm[2]))
    return float(np.hypot(y, x)[in_plane].max()) + half_diagonal


def fit_scale(phantom: PETPhantom, scanner: ScannerGeometry) -> float:
    """1 when ``phantom`` fits ``scanner`` (see the module), else the factor s < 1 that brings it within
    :data:`FIT_RADIUS_FRACTION` of the FOV radius."""
    fov_mm = FOV_RADIUS_FRACTION * scanner.ring_radius_mm
    if transaxial_extent_mm(phantom, "activity") <= fov_mm and transaxial_extent_mm(phantom, "mu") <= (
        scanner.ring_radius_mm
    ):
        return 1.0
    target_mm = FIT_RADIUS_FRACTION * fov_mm
    return min(1.0, target_mm / transaxial_extent_mm(phantom))


def scaled_phantom(phantom: PETPhantom, scale: float) -> PETPhantom:
    """``phantom`` with its geometry scaled by ``scale`` about the isocentre (arrays unchanged, weight × s³)."""
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"phantom scale must be in (0, 1], got {scale}")
    if scale == 1.0:
        return phantom
    g = phantom.grid
    grid = ImageGrid(
        g.shape_zyx,
        (g.voxel_size_mm[0] * scale, g.voxel_size_mm[1] * scale, g.voxel_size_mm[2] * scale),
        (g.origin_mm[0] * scale, g.origin_mm[1] * scale, g.origin_mm[2] * scale),
    )
    return replace(phantom, grid=grid, weight_kg=phantom.weight_kg * scale**3)


def fit_to_scanner(phantom: PETPhantom, scanner: ScannerGeometry) -> tuple[PETPhantom, float]:
    """(``phantom`` scaled to fit ``scanner``, the scale used); logs a warning when it had to be scaled."""
    scale = fit_scale(phantom, scanner)
    if scale < 1.0:
        logger.warning(
            "phantom %r (%.0f mm from the axis) is wider than scanner %r allows (%.0f mm): geometry scaled × %.3f",
            phantom.name,
            transaxial_extent_mm(phantom),
            scanner.name,
            FIT_RADIUS_FRACTION * FOV_RADIUS_FRACTION * scanner.ring_radius_mm,
            scale,
        )
    return scaled_phantom(phantom, scale), scale
