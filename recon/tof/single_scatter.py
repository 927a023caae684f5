"""Single scatter simulation (SSS): the shape of the scatter over LORs from the μ-map and an activity estimate.

The model of Watson, Newport & Casey (1996) and Ollinger (1996), as scanners compute it.  For a detector pair
(A, B) the expected single-scatter coincidences are a sum over scatter points S in the body (volume V_S,
attenuation μ_S):

    S_AB ∝ Σ_S V_S μ_S · K(θ) · ε(E') · g_SA g_SB · [ I_SA · e^(−L_SA − r·L_SB) + I_SB · e^(−L_SB − r·L_SA) ]

* I_SD = ∫_S^D λ ds: the activity on the segment from S to detector D (Bq/mm³·mm); the annihilation lies
  there, one photon reaches D unscattered, the other travels to S and scatters toward the other detector.
* L_SD = ∫_S^D μ ds at 511 keV; the scattered photon, of energy E' < 511 keV, is attenuated by μ(E') ≈
  r(E')·μ(511) with r the ratio of Klein–Nishina total cross sections (Compton scattering dominates in
  tissue at these energies).
* θ: scatter angle, cos θ = −u_SA · u_SB (u unit vectors from S); E' = 511 / (2 − cos θ) keV.
* K(θ): the Klein–Nishina differential cross section (per electron, relative); μ_S/σ_total turns μ into an
  electron density, a constant factor absorbed by the scale.
* ε(E'): probability that a photon of energy E' is recorded inside the energy window, for the scanner's
  energy resolution (FWHM at 511 keV, scaling as 1/√E); ε(511) is common to both photons and dropped.
* g_SD = cos γ_D / |S − D|²: the solid angle of detector D seen from S (γ_D the incidence angle on its
  face; the crystal area is a constant factor).

The absolute scale is not modelled (it is fitted on the tails, :mod:`recon.tof.scatter`).  Not modelled:
multiple scatter (its shape is close to a broadened single scatter; the tail fit absorbs its mean), the
energy dependence of the crystal's stopping power, scatter from activity or matter outside the image grid.

Sampling, as in the references: scatter points on a coarse lattice (``scatter_point_spacing_mm``) where the
μ-map is above ``mu_threshold_per_mm``; line integrals on the image down-sampled to about
``line_voxel_mm``; detectors on a coarse regular lattice of crystals (about ``detector_spacing_mm`` apart
around the ring, ``detector_axial_spacing_mm`` along the axis, end rings included).  A crystal pair's value is the bilinear
interpolation (azimuth, axial position of each crystal) of the lattice pairs' values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numba
import numpy as np
import torch

from recon.tof.geometry import FWHM_PER_SIGMA, ImageGrid, ScannerGeometry
from recon.tof.lor_model import SCINTILLATOR_MU_PER_MM
from recon.tof.tof_kernel import TOFParameters, tof_bin_weights

ELECTRON_REST_KEV = 511.0


@dataclass(frozen=True)
class SSSSettings:
    """Sampling of the single scatter simulation (see the module docstring).

    Attributes:
        scatter_point_spacing_mm: finest lattice spacing of the scatter points, mm; widened (× 1.25 at a time)
            until at most ``max_scatter_points`` lie in the body (the cost is ∝ points × detector pairs).
        max_scatter_points: see above (a torso in a Signa-like ring: ≈ 6000 points at 20 mm, 600 at ≈ 45 mm).
        line_voxel_mm: voxel size of the down-sampled images used for the line integrals, mm.
        profile_step_mm: step of the activity profiles along S → D that place scattered events in TOF bins, mm;
            0: half the TOF kernel's σ, at least ``line_voxel_mm`` (finer than the TOF resolution resolves).
        detector_spacing_mm: target spacing of the detector lattice around the ring, mm.
        detector_axial_spacing_mm: target axial spacing of the detector lattice (end rings included), mm.
        mu_threshold_per_mm: scatter points where the (pooled) μ exceeds this, 1/mm (0.001 /mm = 0.01 /cm:
            soft tissue, bone and lung are in, air is out).
    """

    scatter_point_spacing_mm: float = 20.0
    max_scatter_points: int = 600
    line_voxel_mm: float = 4.0
    profile_step_mm: float = 0.0
    detector_spacing_mm: float = 25.0
    detector_axial_spacing_mm: float = 40.0
    mu_threshold_per_mm: float = 0.001


def klein_nishina_total_relative(energy_kev: np.ndarray) -> np.ndarray:
    """σ_KN(E) / σ_KN(511 keV): Klein–Nishina total cross section per electron, relative to 511 keV."""

    def total(k: np.ndarray) -> np.ndarray:
        a = np.log1p(2.0 * k)
        return (
            (1.0 + k) / k**2 * (2.0 * (1.0 + k) / (1.0 + 2.0 * k) - a / k)
            + a / (2.0 * k)
            - (1.0 + 3.0 * k) / (1.0 + 2.0 * k) ** 2
        )

    return total(np.asarray(energy_kev, np.float64) / ELECTRON_REST_KEV) / total(np.array(1.0))


def klein_nishina_differential(cos_theta: np.ndarray) -> np.ndarray:
    """dσ/dΩ of a 511 keV photon at scatter angle θ, relative (1 at θ = 0): P²(P + 1/P − sin²θ)/2, P = E'/E."""
    c = np.asarray(cos_theta, np.float64)
    p = 1.0 / (2.0 - c)
    return p * p * (p + 1.0 / p - (1.0 - c * c)) / 2.0


def energy_window_efficiency(energy_kev: np.ndarray, scanner: ScannerGeometry) -> np.ndarray:
    """Probability that a photon of ``energy_kev`` is measured inside the scanner's energy window
    (Gaussian energy resolution, FWHM ``energy_resolution_percent`` at 511 keV scaling as 1/√E)."""
    energy = np.asarray(energy_kev, np.float64)
    sigma = energy * scanner.energy_resolution_percent / 100.0 / FWHM_PER_SIGMA * np.sqrt(511.0 / energy)
    low, high = scanner.energy_window_kev
    erf = np.vectorize(math.erf)
    return 0.5 * (
        erf((high - energy) / (math.sqrt(2.0) * sigma)) - erf((low - energy) / (math.sqrt(2.0) * sigma))
    )


@dataclass(frozen=True)
class AngleTables:
    """K(θ)·ε(E') and r(E') tabulated on ``n`` equal steps of cos θ ∈ [−1, 1] (linear interpolation)."""

    kernel: np.ndarray
    ratio: np.ndarray

    @classmethod
    def for_scanner(cls, scanner: ScannerGeometry, n: int = 2001) -> AngleTables:
        cos_theta = np.linspace(-1.0, 1.0, n)
        energy = ELECTRON_REST_KEV / (2.0 - cos_theta)
        kernel = klein_nishina_differential(cos_theta) * energy_window_efficiency(energy, scanner)
        return cls(kernel, klein_nishina_total_relative(energy))


@dataclass(frozen=True)
class DetectorLattice:
    """The detectors at which SSS is computed: a regular lattice of crystal positions.

    Attributes:
        positions_mm: (n_axial · n_azimuthal, 3) detection points (x, y, z), index = axial · n_azimuthal + azim.
        n_azimuthal, n_axial: lattice size.
        crystal_step: crystals between azimuthal lattice points.
        z_mm: (n_axial,) axial positions, mm.
    """

    positions_mm: np.ndarray
    n_azimuthal: int
    n_axial: int
    crystal_step: float
    z_mm: np.ndarray

    @classmethod
    def for_scanner(
        cls, scanner: ScannerGeometry, spacing_mm: float, axial_spacing_mm: float
    ) -> DetectorLattice:
        n = scanner.n_crystals_per_ring
        circumference = 2.0 * math.pi * scanner.detection_radius_mm
        n_azimuthal = max(8, min(n, round(circumference / spacing_mm)))
        rings = scanner.ring_positions_z_mm()
        axial_fov = rings[-1] - rings[0]
        n_axial = max(2, math.ceil(axial_fov / axial_spacing_mm) + 1) if scanner.n_rings > 1 else 1
        z = np.linspace(rings[0], rings[-1], n_axial)
        phi = 2.0 * math.pi * np.arange(n_azimuthal) / n_azimuthal
        r = scanner.detection_radius_mm
        xy = np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)
        positions = np.concatenate([np.column_stack([xy, np.full(n_azimuthal, zz)]) for zz in z])
        return cls(positions, n_azimuthal, n_axial, n / n_azimuthal, z)

    def neighbours(self, scanner: ScannerGeometry, crystal_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Interpolation (lattice index, weight) of each crystal, both ``(n, 8)``: cubic (Catmull–Rom, 4 lattice
        detectors) around the ring, linear (2) along the axis."""
        ring, index = scanner.ring_and_index(crystal_id)
        a = index / self.crystal_step
        a0 = np.floor(a).astype(np.int64)
        f = a - a0
        f2, f3 = f * f, f * f * f
        around = np.stack(
            [(-f3 + 2 * f2 - f) / 2, (3 * f3 - 5 * f2 + 2) / 2, (-3 * f3 + 4 * f2 + f) / 2, (f3 - f2) / 2],
            axis=1,
        )
        columns = (a0[:, None] + np.arange(-1, 3)[None, :]) % self.n_azimuthal
        if self.n_axial > 1:
            z = scanner.ring_positions_z_mm()[ring]
            q = np.clip((z - self.z_mm[0]) / (self.z_mm[1] - self.z_mm[0]), 0.0, self.n_axial - 1)
        else:
            q = np.zeros(ring.shape)
        q0 = np.minimum(np.floor(q).astype(np.int64), max(self.n_axial - 2, 0))
        fq = q - q0
        q1 = np.minimum(q0 + 1, self.n_axial - 1)
        n = self.n_azimuthal
        idx = np.concatenate([q0[:, None] * n + columns, q1[:, None] * n + columns], axis=1)
        w = np.concatenate([(1 - fq)[:, None] * around, fq[:, None] * around], axis=1)
        return idx, w


def _pooled(image: torch.Tensor, factors: tuple[int, int, int]) -> torch.Tensor:
    """Mean over blocks of ``factors`` voxels (zero-padded at the far edges), (z, y, x), float32 unless float64."""
    pad = [(-n) % f for n, f in zip(image.shape, factors, strict=True)]
    dtype = torch.float64 if image.dtype == torch.float64 else torch.float32
    padded = torch.nn.functional.pad(image.to(dtype), (0, pad[2], 0, pad[1], 0, pad[0]))
    return torch.nn.functional.avg_pool3d(padded[None, None], factors, stride=factors)[0, 0]


def _coarse_grid(grid: ImageGrid, factors: tuple[int, int, int], shape: tuple[int, ...]) -> ImageGrid:
    size = tuple(v * f for v, f in zip(grid.voxel_size_mm, factors, strict=True))
    origin = tuple(
        o - v / 2.0 + s / 2.0 for o, v, s in zip(grid.origin_mm, grid.voxel_size_mm, size, strict=True)
    )
    return ImageGrid(tuple(int(n) for n in shape), size, origin)  # type: ignore[arg-type]


def _factors(grid: ImageGrid, target_mm: float) -> tuple[int, int, int]:
    return tuple(max(1, round(target_mm / v)) for v in grid.voxel_size_mm)  # type: ignore[return-value]


@dataclass(frozen=True)
class ScatterPoints:
    """Scatter points: positions (n, 3) x, y, z mm and weights V_S·μ_S (mm³/mm)."""

    positions_mm: np.ndarray
    weights: np.ndarray


def scatter_points(grid: ImageGrid, mu_per_mm: torch.Tensor, settings: SSSSettings) -> ScatterPoints:
    """The scatter points inside the body (see the module docstring): one per lattice cell whose mean μ exceeds
    the threshold, at the cell's μ-weighted centroid (a cell the body's edge cuts puts its point inside the
    body, not at the cell centre in the air), weighted by the cell's ∫μ dV; the lattice widened until at most
    ``settings.max_scatter_points`` remain."""
    spacing = settings.scatter_point_spacing_mm
    while True:
        points = _lattice_points(grid, mu_per_mm, spacing, settings.mu_threshold_per_mm)
        if points.positions_mm.shape[0] <= settings.max_scatter_points:
            return points
        spacing *= 1.25


def _lattice_points(
    grid: ImageGrid, mu_per_mm: torch.Tensor, spacing_mm: float, threshold_per_mm: float
) -> ScatterPoints:
    factors = _factors(grid, spacing_mm)
    mu = mu_per_mm.cpu().to(torch.float64)
    pooled = _pooled(mu, factors).numpy()
    inside = pooled > threshold_per_mm
    centres = [torch.from_numpy(c) for c in grid.voxel_centres_mm()]  # z, y, x
    centroid_zyx = [(_pooled(mu * c, factors).numpy()[inside] / pooled[inside]) for c in centres]
    positions = np.column_stack([centroid_zyx[2], centroid_zyx[1], centroid_zyx[0]])
    cell_volume = float(np.prod(grid.voxel_size_mm)) * float(np.prod(factors))
    return ScatterPoints(positions, pooled[inside] * cell_volume)


def _segment_samples(
    image: torch.Tensor,
    grid: ImageGrid,
    points: np.ndarray,
    detectors: np.ndarray,
    line_voxel_mm: float,
    step: float,
) -> Iterator[np.ndarray]:
    """For each point S, the image on successive ``step`` (mm) pieces of every segment S → D: ``(n_detectors, K)``
    float32, image unit · mm (midpoint rule: trilinear samples at (k + ½)·step from S of the image down-sampled to
    ``line_voxel_mm``, zero outside it and beyond D).

    The midpoint rule starts exactly at S.  A Joseph projection of the segment (samples on the voxel planes it
    crosses, each weighted by a full step) counts the voxel around S with a full step when S lies on a voxel
    centre, as the lattice centroids do: it put 2–5 % more scatter on the central LORs of Ø 120–150 mm cylinders,
    relative to their tails, than the Monte Carlo.
    """
    factors = _factors(grid, line_voxel_mm)
    pooled = _pooled(image.cpu(), factors)
    coarse = _coarse_grid(grid, factors, tuple(pooled.shape))
    lower, upper = coarse.bounds_mm()
    reach = float(np.linalg.norm(upper - lower))  # no segment runs longer than this inside the grid
    n_steps = max(1, math.ceil(reach / step))
    # x, y, z of a point → grid_sample's normalised coordinates (align_corners: index 0 → −1, n − 1 → +1)
    origin_xyz = torch.tensor(coarse.origin_mm[::-1], dtype=torch.float32)
    extent = np.maximum(np.asarray(coarse.shape_zyx) - 1, 1)
    scale_xyz = torch.tensor(
        (2.0 / (np.asarray(coarse.voxel_size_mm) * extent))[::-1].copy(), dtype=torch.float32
    )
    volume = pooled[None, None].to(torch.float32)
    distances = torch.from_numpy((np.arange(n_steps) + 0.5) * step).to(torch.float32)
    for point in points:
        vectors = detectors - point
        length = np.linalg.norm(vectors, axis=1)
        n_used = min(n_steps, math.ceil(float(length.max()) / step))  # samples beyond every D stay 0
        unit = torch.from_numpy(vectors / length[:, None]).to(torch.float32)
        start = (torch.from_numpy(point).to(torch.float32) - origin_xyz) * scale_xyz - 1.0
        normalised = start + (unit * scale_xyz)[:, None, :] * distances[None, :n_used, None]  # (D, K', 3)
        values = torch.nn.functional.grid_sample(
            volume, normalised[None, None], align_corners=True, padding_mode="zeros"
        )
        samples = np.zeros((detectors.shape[0], n_steps), np.float32)
        samples[:, :n_used] = values[0, 0, 0].numpy() * step
        samples[(np.arange(n_steps)[None, :] + 0.5) * step > length[:, None]] = 0.0
        yield samples


def _line_integrals(
    image: torch.Tensor, grid: ImageGrid, points: np.ndarray, detectors: np.ndarray, line_voxel_mm: float
) -> np.ndarray:
    """∫ image ds from every point to every detector, (n_points, n_detectors) float64 (image unit · mm)."""
    step = min(_coarse_voxel_mm(grid, line_voxel_mm))
    samples = _segment_samples(image, grid, points, detectors, line_voxel_mm, step)
    return np.stack([s.sum(axis=1, dtype=np.float64) for s in samples])


def _emission_profiles(
    activity: torch.Tensor,
    grid: ImageGrid,
    points: np.ndarray,
    detectors: np.ndarray,
    line_voxel_mm: float,
    step: float,
) -> np.ndarray:
    """Activity on successive ``step`` (mm) pieces of every segment S → D, (n_points, n_detectors, K) float32,
    Bq/mm³ · mm (:func:`_segment_samples`)."""
    return np.stack(list(_segment_samples(activity, grid, points, detectors, line_voxel_mm, step)))


def _coarse_voxel_mm(grid: ImageGrid, line_voxel_mm: float) -> tuple[float, ...]:
    return tuple(v * f for v, f in zip(grid.voxel_size_mm, _factors(grid, line_voxel_mm), strict=True))


def _position_to_bins(
    tof: TOFParameters | None, half_range_mm: float, fine_mm: float
) -> tuple[float, np.ndarray]:
    """(first fine position, M): M[j, b] = probability that an event at apparent LOR position x_j = x₀ + j·fine
    is recorded in TOF bin b − K (:func:`recon.tof.tof_kernel.tof_bin_weights`); one bin for non-TOF."""
    n_fine = 2 * math.ceil(half_range_mm / fine_mm) + 1
    x0 = -(n_fine // 2) * fine_mm
    if tof is None:
        return x0, np.ones((n_fine, 1))
    x = torch.from_numpy(x0 + fine_mm * np.arange(n_fine))[:, None]
    bins = torch.arange(-tof.max_bin, tof.max_bin + 1)[None, :]
    return x0, tof_bin_weights(x.to(torch.float64), bins, tof).numpy()


@numba.njit(cache=True)
def _point_detector_geometry(points, detectors, mu_depth):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Unit vectors S → D (n_s, n_d, 3), distances |SD| (mm) and detection factors
    cos γ_D · (1 − exp(−μ_scint·depth / cos γ_D)) / |SD|² (1/mm²; ``mu_depth`` = μ_scint·depth)."""
    n_s, n_d = points.shape[0], detectors.shape[0]
    unit = np.empty((n_s, n_d, 3))
    dist = np.empty((n_s, n_d))
    g = np.empty((n_s, n_d))
    for s in range(n_s):
        for d in range(n_d):
            dx = detectors[d, 0] - points[s, 0]
            dy = detectors[d, 1] - points[s, 1]
            dz = detectors[d, 2] - points[s, 2]
            r2 = dx * dx + dy * dy + dz * dz
            r = math.sqrt(r2)
            unit[s, d, 0] = dx / r
            unit[s, d, 1] = dy / r
            unit[s, d, 2] = dz / r
            dist[s, d] = r
            rho = math.sqrt(detectors[d, 0] ** 2 + detectors[d, 1] ** 2)
            cos_gamma = max(abs(dx * detectors[d, 0] + dy * detectors[d, 1]) / (r * rho), 1e-3)
            g[s, d] = cos_gamma * (1.0 - math.exp(-mu_depth / cos_gamma)) / r2
    return unit, dist, g


@numba.njit(cache=True, parallel=True, fastmath=True)
def _pair_scatter(
    pair_a,
    pair_b,
    weights,
    unit,
    dist,
    g,
    profiles,
    k_first,
    k_last,
    log_att,
    kernel_table,
    ratio_table,
    step,
    x0,
    fine_per_step,
    fine,
    to_bins,
    bin_first,
    bin_count,
    n_d,
):  # type: ignore[no-untyped-def]  # pragma: no cover
    """SSS of every ordered detector pair by TOF bin, (n_d, n_d, n_bins) float32 (module docstring).

    For pair (A, B) and scatter point S, an annihilation at distance ℓ from S on S–A (photon 1 to A, photon 2
    via S to B) appears at x = (|SA| − |SB|)/2 − ℓ from the LOR midpoint toward B; one on S–B at
    x = (|SA| − |SB|)/2 + ℓ.  The apparent positions are histogrammed on the fine grid (``fine_per_step``
    cells per profile step) and turned into TOF bins (``to_bins[j, bin_first[j] + i]``, i < ``bin_count[j]``).
    Only the profile samples ``k_first[s, d]..k_last[s, d]`` (those inside the body) are visited.
    """
    n_s = weights.shape[0]
    n_fine = to_bins.shape[0]
    n_bins = to_bins.shape[1]
    n_tab = kernel_table.shape[0]
    out = np.zeros((n_d, n_d, n_bins), np.float32)
    for p in numba.prange(pair_a.shape[0]):
        a = pair_a[p]
        b = pair_b[p]
        histogram = np.zeros(n_fine)
        lo = n_fine
        hi = -1
        for s in range(n_s):
            c = -(
                unit[s, a, 0] * unit[s, b, 0] + unit[s, a, 1] * unit[s, b, 1] + unit[s, a, 2] * unit[s, b, 2]
            )
            t = (c + 1.0) * 0.5 * (n_tab - 1)
            i = min(int(t), n_tab - 2)
            f = t - i
            k = kernel_table[i] * (1.0 - f) + kernel_table[i + 1] * f
            r = ratio_table[i] * (1.0 - f) + ratio_table[i + 1] * f
            common = weights[s] * k * g[s, a] * g[s, b]
            if common <= 0.0:
                continue
            w_a = common * math.exp(-log_att[s, a] - r * log_att[s, b])
            w_b = common * math.exp(-log_att[s, b] - r * log_att[s, a])
            centre = 0.5 * (dist[s, a] - dist[s, b])
            # side A: x = centre − (kk + ½)·step, so j falls by fine_per_step per sample
            j0 = math.floor((centre - 0.5 * step - x0) / fine + 0.5)
            for kk in range(k_first[s, a], k_last[s, a] + 1):
                j = min(max(j0 - fine_per_step * kk, 0), n_fine - 1)
                histogram[j] += w_a * profiles[s, a, kk]
                lo = min(lo, j)
                hi = max(hi, j)
            j0 = math.floor((centre + 0.5 * step - x0) / fine + 0.5)
            for kk in range(k_first[s, b], k_last[s, b] + 1):
                j = min(max(j0 + fine_per_step * kk, 0), n_fine - 1)
                histogram[j] += w_b * profiles[s, b, kk]
                lo = min(lo, j)
                hi = max(hi, j)
        for j in range(lo, hi + 1):
            h = histogram[j]
            if h == 0.0:
                continue
            for i in range(bin_count[j]):
                q = bin_first[j] + i
                v = h * to_bins[j, q]
                out[a, b, q] += v
                out[b, a, n_bins - 1 - q] += v  # B → A: positions (and bins) change sign
    return out


def _sample_ranges(profiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last index of the non-zero samples of each profile, (n_s, n_d) int64 (last < first: none)."""
    nonzero = profiles > 0
    any_nonzero = nonzero.any(axis=2)
    first = np.where(any_nonzero, nonzero.argmax(axis=2), 0)
    last = np.where(any_nonzero, profiles.shape[2] - 1 - nonzero[..., ::-1].argmax(axis=2), -1)
    return first.astype(np.int64), last.astype(np.int64)


def _bin_support(to_bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First TOF bin and number of bins with a non-zero weight for every fine position."""
    nonzero = to_bins > 0
    first = nonzero.argmax(axis=1)
    last = to_bins.shape[1] - 1 - nonzero[:, ::-1].argmax(axis=1)
    return first.astype(np.int64), np.where(nonzero.any(axis=1), last - first + 1, 0).astype(np.int64)


@dataclass(frozen=True)
class SingleScatter:
    """SSS on a detector lattice by TOF bin, to be interpolated to crystal pairs.

    Attributes:
        lattice: the detectors.
        pairs: (n_d, n_d, n_bins) float32 relative expected scatter of each ordered lattice pair (A → B) in TOF
            bin ``index − n_bins // 2`` (arbitrary unit; scaled by the tail fit); one bin for non-TOF.
        n_scatter_points: scatter points used.
    """

    lattice: DetectorLattice
    pairs: np.ndarray
    n_scatter_points: int

    def _interpolated(
        self,
        scanner: ScannerGeometry,
        crystal_id_1: torch.Tensor,
        crystal_id_2: torch.Tensor,
        lookup: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> torch.Tensor:
        """Σ w₁w₂ · lookup(lattice 1, lattice 2) over both crystals' 8 lattice neighbours, clipped at 0.

        Cubic around the ring: the scatter falls off steeply with the LOR's distance from the object, and
        linear interpolation across the 25 mm lattice over-estimated that fall-off (by 10 % summed over the tails
        of a Ø 96 mm cylinder on the ``small`` scanner, up to 50 % 40 mm outside it), log-linear under-estimated
        it by as much.
        """
        i1, w1 = self.lattice.neighbours(scanner, crystal_id_1.cpu().numpy())
        i2, w2 = self.lattice.neighbours(scanner, crystal_id_2.cpu().numpy())
        values = np.zeros(i1.shape[0])
        for j in range(i1.shape[1]):
            for k in range(i2.shape[1]):
                values += w1[:, j] * w2[:, k] * lookup(i1[:, j], i2[:, k])
        return torch.from_numpy(np.maximum(values, 0.0)).to(crystal_id_1.device)

    def for_crystal_pairs(
        self, scanner: ScannerGeometry, crystal_id_1: torch.Tensor, crystal_id_2: torch.Tensor
    ) -> torch.Tensor:
        """Relative expected scatter of crystal pairs, all TOF bins together, (n,) float64."""
        total = self.pairs.sum(axis=2, dtype=np.float64)
        return self._interpolated(scanner, crystal_id_1, crystal_id_2, lambda a, b: total[a, b])

    def for_events(
        self,
        scanner: ScannerGeometry,
        crystal_id_1: torch.Tensor,
        crystal_id_2: torch.Tensor,
        tof_bin: torch.Tensor,
    ) -> torch.Tensor:
        """Relative expected scatter of crystal pairs in the given TOF bins, (n,) float64."""
        n_bins = self.pairs.shape[2]
        bins = np.clip(tof_bin.cpu().numpy().astype(np.int64) + n_bins // 2, 0, n_bins - 1)
        return self._interpolated(scanner, crystal_id_1, crystal_id_2, lambda a, b: self.pairs[a, b, bins])


def single_scatter(
    scanner: ScannerGeometry,
    grid: ImageGrid,
    mu_per_mm: torch.Tensor,
    activity: torch.Tensor,
    tof: TOFParameters | None,
    settings: SSSSettings | None = None,
) -> SingleScatter:
    """SSS of ``activity`` (z, y, x) Bq/mm³ in the μ-map ``mu_per_mm`` (z, y, x) 1/mm on ``grid``, by the TOF
    bins of ``tof`` (one bin when ``None``)."""
    settings = settings or SSSSettings()
    lattice = DetectorLattice.for_scanner(
        scanner, settings.detector_spacing_mm, settings.detector_axial_spacing_mm
    )
    points = scatter_points(grid, mu_per_mm, settings)
    n_d = lattice.positions_mm.shape[0]
    n_bins = 1 if tof is None else tof.n_tof_bins
    if points.positions_mm.shape[0] == 0:
        return SingleScatter(lattice, np.zeros((n_d, n_d, n_bins), np.float32), 0)
    positions = points.positions_mm.astype(np.float64)
    detectors = lattice.positions_mm.astype(np.float64)
    log_att = _line_integrals(mu_per_mm, grid, positions, detectors, settings.line_voxel_mm)
    tables = AngleTables.for_scanner(scanner)
    if tof is None:  # one bin: the whole segment's activity is one sample, its position irrelevant
        profiles = _line_integrals(activity, grid, positions, detectors, settings.line_voxel_mm)[..., None]
        step, fine_per_step = 1.0, 1
    else:
        step = settings.profile_step_mm or max(settings.line_voxel_mm, tof.sigma_mm / 2.0)
        profiles = _emission_profiles(activity, grid, positions, detectors, settings.line_voxel_mm, step)
        fine_per_step = math.ceil(2.0 * step / tof.bin_width_mm)  # fine cells ≤ half a TOF bin
    fine = step / fine_per_step
    x0, to_bins = _position_to_bins(tof, 2.0 * scanner.detection_radius_mm, fine)
    profiles = np.maximum(profiles, 0.0).astype(np.float32)
    k_first, k_last = _sample_ranges(profiles)
    bin_first, bin_count = _bin_support(to_bins)
    pair_a, pair_b = np.triu_indices(n_d, k=1)
    mu_depth = SCINTILLATOR_MU_PER_MM * scanner.crystal_size_mm[2]
    unit, dist, g = _point_detector_geometry(positions, detectors, mu_depth)
    pairs = _pair_scatter(
        pair_a, pair_b, points.weights, unit, dist, g, profiles, k_first, k_last, log_att, tables.kernel,
        tables.ratio, step, x0, fine_per_step, fine, to_bins, bin_first, bin_count, n_d,
    )  # fmt: skip
    return SingleScatter(lattice, pairs, int(positions.shape[0]))
