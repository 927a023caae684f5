"""Cylindrical PET scanner geometry and the PET image grid (shared by simulator and reconstruction).

Frame of reference ("scanner coordinates", mm): the origin is the centre of the detector cylinder
(isocentre), ``z`` runs along the scanner axis, ``x`` and ``y`` are transaxial.  For a patient lying
head-first supine these coincide with DICOM patient coordinates (LPS): ``+x`` towards the patient's
left, ``+y`` towards the posterior (down, towards the table), ``+z`` towards the head (superior).
Images use the axis order ``(z, y, x)``.

Crystals: crystal ``i`` of a ring sits at the azimuth ``phi_i = 2*pi*i / n_crystals_per_ring``
(crystal 0 on the ``+x`` axis, angles increase from ``+x`` towards ``+y``); ring ``r`` sits at
``z_r = (r - (n_rings - 1) / 2) * ring_spacing_mm``.  The crystal id is
``ring * n_crystals_per_ring + index_in_ring``.  The detection point of a crystal (the LOR endpoint)
lies on its central axis at ``ring_radius_mm + depth_of_interaction_mm`` from the scanner axis.

TOF convention: the signed distance ``d`` of the emission point from the LOR midpoint, measured
towards crystal 2 (``d = c * (t1 - t2) / 2``), is measured with a Gaussian error of standard deviation
:meth:`ScannerGeometry.tof_sigma_mm`; the event's TOF bin is
``round(d_measured / tof_bin_width_mm())`` clipped to ``±(n_tof_bins // 2)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Speed of light in mm per ps.
SPEED_OF_LIGHT_MM_PER_PS = 0.299792458
#: FWHM of a Gaussian in units of its standard deviation, 2*sqrt(2*ln 2).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class ScannerGeometry:
    """A cylindrical PET scanner made of rings of identical crystals.

    Attributes:
        name: short identifier (``"signa"``, ``"mmr"``, ``"small"``); stored in every list-mode batch.
        n_crystals_per_ring: crystals around one ring (> 2).
        n_rings: number of crystal rings along the axis (>= 1).
        ring_radius_mm: radius from the scanner axis to the crystal front face, mm.
        crystal_size_mm: crystal (transaxial, axial, radial depth), mm.
        ring_spacing_mm: axial pitch between ring centres, mm (>= axial crystal size).
        depth_of_interaction_mm: mean depth of interaction inside the crystal, mm, in
            ``[0, radial depth]``; places the LOR endpoint.
        tof_fwhm_ps: coincidence timing resolution (FWHM of the time difference), ps; ``None`` for a
            non-TOF scanner.
        tof_bin_width_ps: width of a TOF bin in coincidence time difference ``t1 - t2``, ps.
        n_tof_bins: number of TOF bins, odd; bin 0 is the LOR centre.  Exactly 1 for a non-TOF scanner.
        coincidence_window_ns: full width ``2*tau`` of the prompt coincidence window, ns.
        energy_window_kev: (lower, upper) energy thresholds, keV.
        energy_resolution_percent: FWHM energy resolution at 511 keV, percent.
    """

    name: str
    n_crystals_per_ring: int
    n_rings: int
    ring_radius_mm: float
    crystal_size_mm: tuple[float, float, float]
    ring_spacing_mm: float
    depth_of_interaction_mm: float
    tof_fwhm_ps: float | None
    tof_bin_width_ps: float
    n_tof_bins: int
    coincidence_window_ns: float
    energy_window_kev: tuple[float, float]
    energy_resolution_percent: float

    def __post_init__(self) -> None:
        _require(bool(self.name), "scanner name must not be empty")
        _require(
            self.n_crystals_per_ring > 2, f"n_crystals_per_ring must be > 2, got {self.n_crystals_per_ring}"
        )
        _require(self.n_rings >= 1, f"n_rings must be >= 1, got {self.n_rings}")
        _require(self.ring_radius_mm > 0, f"ring_radius_mm must be > 0, got {self.ring_radius_mm}")
        _require(
            len(self.crystal_size_mm) == 3 and all(s > 0 for s in self.crystal_size_mm),
            f"crystal_size_mm must be 3 positive sizes, got {self.crystal_size_mm}",
        )
        _require(
            self.ring_spacing_mm >= self.crystal_size_mm[1] - 1e-9,
            f"ring_spacing_mm {self.ring_spacing_mm} is smaller than the axial crystal size",
        )
        pitch_mm = 2.0 * math.pi * self.ring_radius_mm / self.n_crystals_per_ring
        _require(
            self.crystal_size_mm[0] <= pitch_mm + 1e-9,
            f"transaxial crystal size {self.crystal_size_mm[0]} mm exceeds the pitch {pitch_mm:.3f} mm",
        )
        _require(
            0.0 <= self.depth_of_interaction_mm <= self.crystal_size_mm[2],
            f"depth_of_interaction_mm must lie in [0, {self.crystal_size_mm[2]}], got {self.depth_of_interaction_mm}",
        )
        self._validate_tof()
        _require(self.coincidence_window_ns > 0, "coincidence_window_ns must be > 0")
        low, high = self.energy_window_kev
        _require(
            0 < low < 511.0 < high, f"energy_window_kev must bracket 511 keV, got {self.energy_window_kev}"
        )
        _require(0 < self.energy_resolution_percent < 100, "energy_resolution_percent must be in (0, 100)")

    def _validate_tof(self) -> None:
        _require(
            self.n_tof_bins >= 1 and self.n_tof_bins % 2 == 1,
            f"n_tof_bins must be odd, got {self.n_tof_bins}",
        )
        _require(self.tof_bin_width_ps > 0, f"tof_bin_width_ps must be > 0, got {self.tof_bin_width_ps}")
        if self.tof_fwhm_ps is None:
            _require(self.n_tof_bins == 1, "a non-TOF scanner (tof_fwhm_ps=None) must have n_tof_bins == 1")
        else:
            _require(self.tof_fwhm_ps > 0, f"tof_fwhm_ps must be > 0, got {self.tof_fwhm_ps}")

    @property
    def n_crystals(self) -> int:
        """Total number of crystals, ``n_rings * n_crystals_per_ring``."""
        return self.n_rings * self.n_crystals_per_ring

    @property
    def is_tof(self) -> bool:
        """True when the scanner measures time of flight."""
        return self.tof_fwhm_ps is not None

    @property
    def detection_radius_mm(self) -> float:
        """Distance of the LOR endpoints from the axis, ``ring_radius_mm + depth_of_interaction_mm``."""
        return self.ring_radius_mm + self.depth_of_interaction_mm

    @property
    def axial_fov_mm(self) -> float:
        """Axial extent covered by crystals, mm (from the first ring's edge to the last ring's edge)."""
        return (self.n_rings - 1) * self.ring_spacing_mm + self.crystal_size_mm[1]

    def crystal_azimuths_rad(self) -> np.ndarray:
        """Azimuth of each crystal within a ring, shape ``(n_crystals_per_ring,)``, float64, radians."""
        return 2.0 * np.pi * np.arange(self.n_crystals_per_ring, dtype=np.float64) / self.n_crystals_per_ring

    def ring_positions_z_mm(self) -> np.ndarray:
        """Axial centre of each ring, shape ``(n_rings,)``, float64, mm, centred on 0."""
        return (np.arange(self.n_rings, dtype=np.float64) - (self.n_rings - 1) / 2.0) * self.ring_spacing_mm

    def crystal_positions_mm(self) -> np.ndarray:
        """Detection point (front face + DOI) of every crystal, shape ``(n_crystals, 3)``, float32, (x, y, z) mm."""
        phi = self.crystal_azimuths_rad()
        radius = self.detection_radius_mm
        xy = np.stack([radius * np.cos(phi), radius * np.sin(phi)], axis=-1)
        z = self.ring_positions_z_mm()
        positions = np.empty((self.n_rings, self.n_crystals_per_ring, 3), dtype=np.float64)
        positions[:, :, :2] = xy[None, :, :]
        positions[:, :, 2] = z[:, None]
        return positions.reshape(-1, 3).astype(np.float32)

    def tof_sigma_mm(self) -> float:
        """Standard deviation of the measured emission position along the LOR, mm: ``c*FWHM/(2*2.355)``.

        Returns ``math.inf`` for a non-TOF scanner.
        """
        if self.tof_fwhm_ps is None:
            return math.inf
        return SPEED_OF_LIGHT_MM_PER_PS * self.tof_fwhm_ps / (2.0 * FWHM_PER_SIGMA)

    def tof_bin_width_mm(self) -> float:
        """Width of one TOF bin along the LOR, mm: ``c * tof_bin_width_ps / 2``."""
        return SPEED_OF_LIGHT_MM_PER_PS * self.tof_bin_width_ps / 2.0

    @property
    def max_tof_bin(self) -> int:
        """Largest TOF bin index, ``n_tof_bins // 2`` (bins run from ``-max_tof_bin`` to ``+max_tof_bin``)."""
        return self.n_tof_bins // 2

    def crystal_id(self, ring: np.ndarray, index_in_ring: np.ndarray) -> np.ndarray:
        """Crystal id from ring and in-ring index (int32, same shape as the inputs)."""
        return (np.asarray(ring) * self.n_crystals_per_ring + np.asarray(index_in_ring)).astype(np.int32)

    def ring_and_index(self, crystal_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of :meth:`crystal_id`: ``(ring, index_in_ring)`` as int32 arrays."""
        ids = np.asarray(crystal_id)
        return (ids // self.n_crystals_per_ring).astype(np.int32), (ids % self.n_crystals_per_ring).astype(
            np.int32
        )


def signa_like() -> ScannerGeometry:
    """GE Signa PET/MR-like TOF scanner: LBS 3.95 x 5.3 x 25 mm, 448 x 45 rings, Ø 62.4 cm, 390 ps."""
    return ScannerGeometry(
        name="signa",
        n_crystals_per_ring=448,
        n_rings=45,
        ring_radius_mm=312.0,
        crystal_size_mm=(3.95, 5.3, 25.0),
        ring_spacing_mm=250.0 / 45.0,
        depth_of_interaction_mm=8.3,  # mean depth of a truncated exponential, LBS attenuation length 11.5 mm
        tof_fwhm_ps=390.0,
        tof_bin_width_ps=89.0,
        n_tof_bins=45,
        coincidence_window_ns=4.57,
        energy_window_kev=(425.0, 650.0),
        energy_resolution_percent=10.5,
    )


def mmr_like() -> ScannerGeometry:
    """Siemens Biograph mMR-like non-TOF scanner: LSO 4 x 4 x 20 mm, 448 x 64 rings, radius 32.8 cm."""
    return ScannerGeometry(
        name="mmr",
        n_crystals_per_ring=448,
        n_rings=64,
        ring_radius_mm=328.0,
        crystal_size_mm=(4.0, 4.0, 20.0),
        ring_spacing_mm=258.0 / 64.0,
        depth_of_interaction_mm=7.2,  # mean depth of a truncated exponential, LSO attenuation length 11.4 mm
        tof_fwhm_ps=None,
        tof_bin_width_ps=5860.0,
        n_tof_bins=1,
        coincidence_window_ns=5.86,
        energy_window_kev=(430.0, 610.0),
        energy_resolution_percent=14.5,
    )


def small_test_scanner() -> ScannerGeometry:
    """A small TOF scanner (radius 150 mm, 128 crystals x 12 rings, 390 ps) for fast tests."""
    return ScannerGeometry(
        name="small",
        n_crystals_per_ring=128,
        n_rings=12,
        ring_radius_mm=150.0,
        crystal_size_mm=(7.0, 5.3, 20.0),
        ring_spacing_mm=5.56,
        depth_of_interaction_mm=7.2,
        tof_fwhm_ps=390.0,
        tof_bin_width_ps=89.0,
        n_tof_bins=25,
        coincidence_window_ns=4.57,
        energy_window_kev=(425.0, 650.0),
        energy_resolution_percent=10.5,
    )


_SCANNERS: dict[str, Callable[[], ScannerGeometry]] = {
    "signa": signa_like,
    "mmr": mmr_like,
    "small": small_test_scanner,
}


def scanner_names() -> tuple[str, ...]:
    """Names accepted by :func:`scanner_by_name`."""
    return tuple(_SCANNERS)


def scanner_by_name(name: str) -> ScannerGeometry:
    """Return the built-in scanner called ``name`` (``"signa"``, ``"mmr"`` or ``"small"``)."""
    try:
        factory = _SCANNERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown scanner {name!r}; known: {', '.join(_SCANNERS)}") from None
    return factory()


@dataclass(frozen=True)
class ImageGrid:
    """A regular PET image grid in scanner coordinates; image axes ``(z, y, x)``.

    Attributes:
        shape_zyx: number of voxels along (z, y, x), each >= 1.
        voxel_size_mm: voxel size along (z, y, x), mm, each > 0.
        origin_mm: scanner coordinates (z, y, x) of the centre of voxel ``[0, 0, 0]``, mm.
    """

    shape_zyx: tuple[int, int, int]
    voxel_size_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]

    def __post_init__(self) -> None:
        _require(
            len(self.shape_zyx) == 3 and all(int(n) >= 1 for n in self.shape_zyx),
            f"bad shape_zyx {self.shape_zyx}",
        )
        _require(
            len(self.voxel_size_mm) == 3 and all(s > 0 for s in self.voxel_size_mm),
            f"voxel_size_mm must be 3 positive sizes, got {self.voxel_size_mm}",
        )
        _require(len(self.origin_mm) == 3, f"origin_mm must have 3 entries, got {self.origin_mm}")

    @classmethod
    def centred(cls, shape_zyx: tuple[int, int, int], voxel_size_mm: tuple[float, float, float]) -> ImageGrid:
        """A grid whose centre is the scanner isocentre."""
        origin = tuple(-(n - 1) / 2.0 * s for n, s in zip(shape_zyx, voxel_size_mm, strict=True))
        return cls(tuple(int(n) for n in shape_zyx), tuple(float(s) for s in voxel_size_mm), origin)  # type: ignore[arg-type]

    @classmethod
    def for_scanner(cls, scanner: ScannerGeometry, voxel_size_mm: tuple[float, float, float]) -> ImageGrid:
        """A centred grid covering the axial field of view of ``scanner`` and, transaxially, the square
        bounding the circle of radius ``0.95 * ring_radius_mm``."""
        fov_xy_mm = 2.0 * 0.95 * scanner.ring_radius_mm
        n_z = max(1, round(scanner.axial_fov_mm / voxel_size_mm[0]))
        n_y = max(1, math.ceil(fov_xy_mm / voxel_size_mm[1]))
        n_x = max(1, math.ceil(fov_xy_mm / voxel_size_mm[2]))
        return cls.centred((n_z, n_y, n_x), voxel_size_mm)

    @property
    def n_voxels(self) -> int:
        """Total number of voxels."""
        return int(np.prod(self.shape_zyx))

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel, ml (= cm³)."""
        return float(np.prod(self.voxel_size_mm)) / 1000.0

    def axis_centres_mm(self, axis: int) -> np.ndarray:
        """Voxel-centre coordinates along one image axis (0 = z, 1 = y, 2 = x), float64, mm."""
        return self.origin_mm[axis] + self.voxel_size_mm[axis] * np.arange(
            self.shape_zyx[axis], dtype=np.float64
        )

    def voxel_centres_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Voxel-centre coordinates ``(z, y, x)``, each of shape ``shape_zyx``, float64, mm."""
        z, y, x = np.meshgrid(
            self.axis_centres_mm(0), self.axis_centres_mm(1), self.axis_centres_mm(2), indexing="ij"
        )
        return z, y, x

    def bounds_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) corner of the grid's outer voxel faces, (z, y, x) float64 arrays, mm."""
        origin = np.asarray(self.origin_mm, dtype=np.float64)
        size = np.asarray(self.voxel_size_mm, dtype=np.float64)
        shape = np.asarray(self.shape_zyx, dtype=np.float64)
        return origin - size / 2.0, origin + size * (shape - 0.5)

    def index_of_points(self, points_xyz_mm: np.ndarray) -> np.ndarray:
        """Voxel index ``(z, y, x)`` of points given as ``(n, 3)`` (x, y, z) mm; int64 ``(n, 3)``, -1 outside."""
        zyx = np.asarray(points_xyz_mm, dtype=np.float64)[:, ::-1]
        origin = np.asarray(self.origin_mm, dtype=np.float64)
        size = np.asarray(self.voxel_size_mm, dtype=np.float64)
        index = np.floor((zyx - origin) / size + 0.5).astype(np.int64)
        outside = np.any((index < 0) | (index >= np.asarray(self.shape_zyx)), axis=1)
        index[outside] = -1
        return index
