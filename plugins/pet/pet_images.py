"""Geometry and container of the PET chain's output images (``ismrmrd.Image`` volumes, grids, frame info).

Split from :mod:`plugins.pet.tof_recon`, which re-exports these names.
"""

from __future__ import annotations

import ismrmrd
import numpy as np

from plugins.pet.items import PETFrame
from recon.tof.geometry import ImageGrid, ScannerGeometry
from recon.tof.listmode import PETAcquisitionInfo


def info_from_time_stamps(frame: PETFrame) -> PETAcquisitionInfo:
    """What can be said of ``frame`` without a :class:`PETAcquisitionInfo`: its start and duration from the
    event time stamps (ms), isotope unknown (F-18 half-life for decay correction), no dose, unit weight, no
    crystal efficiencies."""
    t = frame.events.time_ms
    return PETAcquisitionInfo(
        frame.events.scanner,
        float(t[0]) / 1000.0 if t.size else 0.0,
        max(float(t[-1]) - float(t[0]), 1.0) / 1000.0 if t.size else 1.0,
        "unknown",
        6586.2,
        0.0,
        0.0,
        1.0,
    )


def image_grid_for(
    scanner: ScannerGeometry, voxel_size_mm: float, transaxial_fov_mm: float | None
) -> ImageGrid:
    """The reconstruction grid: the scanner's axial FOV and a square transaxial FOV, centred."""
    if transaxial_fov_mm is None:
        return ImageGrid.for_scanner(scanner, (voxel_size_mm,) * 3)
    n_xy = max(1, int(np.ceil(transaxial_fov_mm / voxel_size_mm)))
    n_z = max(1, round(scanner.axial_fov_mm / voxel_size_mm))
    return ImageGrid.centred((n_z, n_xy, n_xy), (voxel_size_mm,) * 3)


def volume_image(
    volume: np.ndarray,
    grid: ImageGrid,
    meta: dict[str, str],
    series_index: int,
    frame_index: int,
    meta_lists: dict[str, list[str]] | None = None,
) -> ismrmrd.Image:
    """One 3-D float32 ``ismrmrd.Image`` (matrix x, y, z) with position (volume centre), directions and FOV;
    ``meta_lists`` adds multi-valued attributes (e.g. ``QualityWarning``)."""
    image = ismrmrd.Image.from_array(np.ascontiguousarray(volume, dtype=np.float32))
    image.image_type = ismrmrd.IMTYPE_MAGNITUDE
    nz, ny, nx = grid.shape_zyx
    vz, vy, vx = grid.voxel_size_mm
    centre_zyx = [
        grid.origin_mm[i] + (n - 1) / 2.0 * v
        for i, (n, v) in enumerate(zip(grid.shape_zyx, grid.voxel_size_mm, strict=True))
    ]
    image.position = (float(centre_zyx[2]), float(centre_zyx[1]), float(centre_zyx[0]))
    image.read_dir = (1.0, 0.0, 0.0)
    image.phase_dir = (0.0, 1.0, 0.0)
    image.slice_dir = (0.0, 0.0, 1.0)
    image.field_of_view = (nx * vx, ny * vy, nz * vz)
    image.image_series_index = series_index
    image.image_index = frame_index + 1
    image.repetition = frame_index
    attributes = ismrmrd.Meta()
    for key, value in meta.items():
        attributes[key] = value
    for key, values in (meta_lists or {}).items():
        attributes[key] = list(values)
    image.attribute_string = attributes.serialize()
    return image


def axial_coverage_warning(mu_grid: ImageGrid, grid: ImageGrid) -> str:
    """A warning when the μ-map's grid ends inside the PET image's axial extent (no attenuation there), else ""."""
    mu_low, mu_high = (float(corner[0]) for corner in mu_grid.bounds_mm())  # z of the outer faces
    low, high = (float(corner[0]) for corner in grid.bounds_mm())
    if mu_low <= low + 1e-6 and mu_high >= high - 1e-6:
        return ""
    return (
        f"the μ-map covers z {max(mu_low, low):.0f}..{min(mu_high, high):.0f} mm of the PET image's "
        f"{low:.0f}..{high:.0f} mm: no attenuation correction outside it, values there read far too low"
    )
