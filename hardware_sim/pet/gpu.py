"""Photon transport and detection on a torch device (CUDA), vectorised over photons.

The same physics as the numba kernel :mod:`hardware_sim.pet.kernels` (Woodcock tracking, one
Klein–Nishina scatter with μ scaled by the cross-section at the new energy, cylinder entry, exponential
depth in the crystal, crystal cells with gaps, crystal efficiency, energy window), written as masked
tensor operations so that millions of photons are processed per kernel launch.  Randomness comes from
an explicit ``torch.Generator`` on the device.  ``tests/hardware_sim/test_pet_gpu.py`` checks that it
agrees statistically with the numba kernel (CPU torch always; CUDA where present).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from hardware_sim.pet.kernels import DetectorArrays
from hardware_sim.pet.raytrace import MuMap
from hardware_sim.pet.simulator import SPEED_OF_LIGHT_MM_PER_NS, Singles

if TYPE_CHECKING:
    from hardware_sim.pet.simulator import PETListModeSimulator

_ELECTRON_KEV = 511.0


class TorchTransport:
    """Transport model on ``device``: μ-map, detector constants and crystal efficiencies as tensors."""

    def __init__(
        self, mu_map: MuMap | None, detector: DetectorArrays, scatter: bool, device: torch.device
    ) -> None:
        self.device = device
        self.scatter = scatter
        mu = np.zeros((1, 1, 1), np.float32) if mu_map is None else mu_map.mu_per_mm
        self.mu = torch.as_tensor(mu, device=device).contiguous()
        self.shape = torch.tensor(mu.shape[::-1], device=device)  # (nx, ny, nz)
        self.lower = torch.as_tensor(np.zeros(3) if mu_map is None else mu_map.lower_xyz_mm, device=device)
        self.voxel = torch.as_tensor(np.ones(3) if mu_map is None else mu_map.voxel_xyz_mm, device=device)
        self.mu_max = 0.0 if mu_map is None else mu_map.mu_max_per_mm
        self.g = [float(v) for v in detector.geometry]
        self.n_per_ring, self.n_rings = detector.n_crystals_per_ring, detector.n_rings
        self.efficiencies = torch.as_tensor(detector.efficiencies, device=device)

    def _clip(self, p: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Entry and exit distance of each ray through the μ-map box (t0 >= t1: misses)."""
        upper = self.lower + self.shape.to(p.dtype) * self.voxel
        safe = torch.where(d.abs() < 1e-15, torch.full_like(d, 1e-15), d)
        ta, tb = (self.lower - p) / safe, (upper - p) / safe
        t0 = torch.minimum(ta, tb).amax(dim=1).clamp(min=0.0)
        t1 = torch.maximum(ta, tb).amin(dim=1)
        return t0, t1

    def track(
        self, p: torch.Tensor, d: torch.Tensor, scale: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        """Woodcock tracking; path length to the first interaction, ``inf`` for escaping photons."""
        stop = torch.full((p.shape[0],), math.inf, dtype=p.dtype, device=p.device)
        if self.mu_max <= 0.0 or p.shape[0] == 0:
            return stop
        t, t1 = self._clip(p, d)
        active = torch.nonzero(t < t1).squeeze(1)
        inverse_majorant = 1.0 / (scale * self.mu_max)
        nx, ny, nz = (int(v) for v in self.shape.tolist())
        while active.numel():
            step = torch.empty(active.numel(), dtype=p.dtype, device=p.device).exponential_(generator=gen)
            t[active] += step * inverse_majorant[active]
            inside = t[active] < t1[active]
            active = active[inside]
            point = p[active] + t[active, None] * d[active]
            index = ((point - self.lower) / self.voxel).long()
            ix, iy, iz = (
                index[:, 0].clamp(0, nx - 1),
                index[:, 1].clamp(0, ny - 1),
                index[:, 2].clamp(0, nz - 1),
            )
            accept = (
                torch.rand(active.numel(), dtype=p.dtype, device=p.device, generator=gen) * self.mu_max
                < self.mu[iz, iy, ix]
            )
            stop[active[accept]] = t[active[accept]]
            active = active[~accept]
        return stop

    def detect(
        self, p: torch.Tensor, d: torch.Tensor, energy: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Crystal id (-1: not detected) and path length to the interaction in the crystal."""
        g, n = self.g, p.shape[0]
        a = (d[:, 0] ** 2 + d[:, 1] ** 2).clamp(min=1e-12)
        b = p[:, 0] * d[:, 0] + p[:, 1] * d[:, 1]
        c = p[:, 0] ** 2 + p[:, 1] ** 2 - g[0] ** 2
        depth = torch.empty(n, dtype=p.dtype, device=p.device).exponential_(generator=gen) / g[8]
        path = (-b + torch.sqrt((b * b - a * c).clamp(min=0.0))) / a + depth
        q = p + path[:, None] * d
        position = torch.atan2(q[:, 1], q[:, 0]) * (self.n_per_ring / (2.0 * math.pi))
        index = torch.floor(position + 0.5)
        ring_position = q[:, 2] / g[3] + g[9]
        ring = torch.floor(ring_position + 0.5)
        ok = (q[:, 0] ** 2 + q[:, 1] ** 2 <= (g[0] + g[1]) ** 2) & ((position - index).abs() <= g[2])
        ok &= ((ring_position - ring).abs() * g[3] <= g[4]) & (ring >= 0) & (ring < self.n_rings)
        crystal = ring.clamp(0, self.n_rings - 1).long() * self.n_per_ring + torch.remainder(
            index.long(), self.n_per_ring
        )
        uniform = torch.rand(n, dtype=p.dtype, device=p.device, generator=gen)
        ok &= uniform < self.efficiencies[crystal].to(p.dtype)
        noise = torch.randn(n, dtype=p.dtype, device=p.device, generator=gen)
        measured = energy * (1.0 + g[5] * torch.sqrt(_ELECTRON_KEV / energy) * noise)
        ok &= (measured >= g[6]) & (measured <= g[7])
        return torch.where(ok, crystal, torch.full_like(crystal, -1)), path

    def compton(self, d: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """New direction and energy after a Klein–Nishina scatter of a 511 keV photon."""
        n = d.shape[0]
        cos_t = torch.empty(n, dtype=d.dtype, device=d.device)
        pending = torch.arange(n, device=d.device)
        while pending.numel():
            trial = torch.rand(pending.numel(), dtype=d.dtype, device=d.device, generator=gen) * 2.0 - 1.0
            ratio = 1.0 / (2.0 - trial)
            density = ratio**2 * (ratio + 1.0 / ratio - (1.0 - trial**2))
            accept = (
                torch.rand(pending.numel(), dtype=d.dtype, device=d.device, generator=gen) * 2.0 <= density
            )
            cos_t[pending[accept]] = trial[accept]
            pending = pending[~accept]
        use_z = d[:, 2].abs() < 0.9
        zero = torch.zeros_like(d[:, 0])
        first = torch.stack(
            [
                torch.where(use_z, d[:, 1], zero),
                torch.where(use_z, -d[:, 0], d[:, 2]),
                torch.where(use_z, zero, -d[:, 1]),
            ],
            1,
        )
        first = first / first.norm(dim=1, keepdim=True)
        second = torch.linalg.cross(d, first)
        azimuth = torch.rand(n, dtype=d.dtype, device=d.device, generator=gen) * (2.0 * math.pi)
        sin_t = torch.sqrt((1.0 - cos_t**2).clamp(min=0.0))
        new = (
            cos_t[:, None] * d
            + (sin_t * torch.cos(azimuth))[:, None] * first
            + (sin_t * torch.sin(azimuth))[:, None] * second
        )
        return new / new.norm(dim=1, keepdim=True), _ELECTRON_KEV / (2.0 - cos_t)

    def transport(
        self, p: torch.Tensor, d: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(crystal_id, path_mm, scattered)`` of 511 keV photons from ``p`` along ``d`` (float64 tensors)."""
        n = p.shape[0]
        crystal = torch.full((n,), -1, dtype=torch.long, device=p.device)
        path = torch.zeros(n, dtype=p.dtype, device=p.device)
        scattered = torch.zeros(n, dtype=torch.bool, device=p.device)
        stop = self.track(p, d, torch.ones(n, dtype=p.dtype, device=p.device), gen)
        free = torch.isinf(stop)
        crystal[free], path[free] = self.detect(
            p[free], d[free], torch.full_like(stop[free], _ELECTRON_KEV), gen
        )
        if not self.scatter:
            return crystal, path, scattered
        hit = torch.nonzero(~free).squeeze(1)
        q = p[hit] + stop[hit, None] * d[hit]
        new, energy = self.compton(d[hit], gen)
        escaped = torch.isinf(self.track(q, new, _kn_relative(energy), gen))
        second, extra = self.detect(q[escaped], new[escaped], energy[escaped], gen)
        chosen = hit[escaped]
        crystal[chosen], path[chosen] = second, stop[chosen] + extra
        scattered[chosen] = second >= 0
        return crystal, path, scattered


def _kn_relative(energy: torch.Tensor) -> torch.Tensor:
    def sigma(k: torch.Tensor) -> torch.Tensor:
        log_term = torch.log1p(2.0 * k)
        first = (1.0 + k) / k**2 * (2.0 * (1.0 + k) / (1.0 + 2.0 * k) - log_term / k)
        return first + log_term / (2.0 * k) - (1.0 + 3.0 * k) / (1.0 + 2.0 * k) ** 2

    return sigma(energy / _ELECTRON_KEV) / sigma(torch.ones_like(energy[:1]))


class TorchEmission:
    """Decay sampling and annihilation photon pairs on a torch device (mirrors
    :class:`hardware_sim.pet.emission.DecaySampler` and :mod:`hardware_sim.pet.physics`)."""

    def __init__(self, cumulative_bq: np.ndarray, centres_xyz_mm: np.ndarray, cone: np.ndarray, voxel_xyz_mm: np.ndarray, device: torch.device) -> None:  # fmt: skip
        self.cumulative = torch.as_tensor(cumulative_bq, dtype=torch.float64, device=device)
        self.centres = torch.as_tensor(centres_xyz_mm, dtype=torch.float64, device=device)
        self.cone = torch.as_tensor(cone, dtype=torch.float64, device=device)
        self.voxel = torch.as_tensor(voxel_xyz_mm, dtype=torch.float64, device=device)
        self.device = device

    def positions(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Emission points ``(n, 3)`` mm and direction cones ``(n,)`` of ``n`` decays."""
        targets = torch.rand(n, dtype=torch.float64, device=self.device, generator=gen) * self.cumulative[-1]
        voxel = torch.searchsorted(self.cumulative, targets, right=True).clamp(
            max=self.cumulative.numel() - 1
        )
        jitter = (
            torch.rand((n, 3), dtype=torch.float64, device=self.device, generator=gen) - 0.5
        ) * self.voxel
        return self.centres[voxel] + jitter, self.cone[voxel]

    def photon_pairs(self, points: torch.Tensor, cone: torch.Tensor, positron_range_mm: float, fwhm_rad: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """Annihilation points and the two photon directions ``(n, 3)`` each."""
        n = points.shape[0]

        def uniform(scale: float = 1.0) -> torch.Tensor:
            return torch.rand(n, dtype=torch.float64, device=self.device, generator=gen) * scale

        if positron_range_mm > 0:
            length = (
                torch.empty(n, 2, dtype=torch.float64, device=self.device).exponential_(generator=gen).sum(1)
            ) * (positron_range_mm / 2.0)
            points = points + _directions(uniform(2.0) - 1.0, uniform(2.0 * math.pi)) * length[:, None]
        first = _directions((uniform(2.0) - 1.0) * cone, uniform(2.0 * math.pi))
        second = -first
        if fwhm_rad > 0:
            sigma = fwhm_rad / (2.0 * math.sqrt(2.0 * math.log(2.0)))
            use_z = first[:, 2].abs() < 0.9
            zero = torch.zeros_like(first[:, 0])
            a = torch.stack(
                [
                    torch.where(use_z, first[:, 1], zero),
                    torch.where(use_z, -first[:, 0], first[:, 2]),
                    torch.where(use_z, zero, -first[:, 1]),
                ],
                1,
            )
            a = a / a.norm(dim=1, keepdim=True)
            b = torch.linalg.cross(first, a)
            deviation = torch.randn((n, 2), dtype=torch.float64, device=self.device, generator=gen) * sigma
            second = second + deviation[:, :1] * a + deviation[:, 1:] * b
            second = second / second.norm(dim=1, keepdim=True)
        return points, first, second


def _directions(cos_polar: torch.Tensor, azimuth: torch.Tensor) -> torch.Tensor:
    sin_polar = torch.sqrt((1.0 - cos_polar**2).clamp(min=0.0))
    return torch.stack([sin_polar * torch.cos(azimuth), sin_polar * torch.sin(azimuth), cos_polar], 1)


class TorchSinglesSource:
    """The simulator's singles stream computed on a torch device, chunk by chunk (see
    :class:`hardware_sim.pet.simulator.PETListModeSimulator`, ``config.device``)."""

    def __init__(self, simulator: PETListModeSimulator, device: str) -> None:
        self.device = torch.device(device)
        config, sampler = simulator.config, simulator.sampler
        self.config = config
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.emission = TorchEmission(
            sampler.cumulative, sampler.centres_xyz_mm, sampler.cone, sampler.voxel_xyz_mm, self.device
        )
        self.transport = TorchTransport(
            simulator.model.mu_map, simulator._detector, config.scatter, self.device
        )
        self.rate_per_ns = sampler.rate_bq * 1e-9
        self.decay_constant_per_ns = sampler.decay_constant_per_ns
        self.cumulative_events = 0.0
        self.single_sigma_ns = simulator._single_sigma_ns

    def _times_ns(self, n: int) -> torch.Tensor:
        steps = torch.empty(n, dtype=torch.float64, device=self.device).exponential_(generator=self.generator)
        cumulative = torch.cumsum(steps, 0) + self.cumulative_events
        self.cumulative_events = float(cumulative[-1])
        fraction = cumulative * (self.decay_constant_per_ns / self.rate_per_ns)
        if float(fraction[-1]) >= 1.0:
            raise ValueError("the source has decayed away before the requested number of decays")
        return -torch.log1p(-fraction) / self.decay_constant_per_ns

    def next_chunk(self, n: int) -> tuple[Singles, np.ndarray | None, float]:
        """Singles of the next ``n`` decays, their annihilation points (if event truth is kept), end time."""
        gen, config = self.generator, self.config
        times = self._times_ns(n)
        points, cone = self.emission.positions(n, gen)
        annihilation, first, second = self.emission.photon_pairs(
            points, cone, config.mean_positron_range_mm, config.non_collinearity_fwhm_rad, gen
        )
        crystal, path, scattered = self.transport.transport(
            torch.cat([annihilation, annihilation]), torch.cat([first, second]), gen
        )
        detected = torch.nonzero(crystal >= 0).squeeze(1)
        decay = detected % n
        jitter = (
            torch.randn(detected.numel(), dtype=torch.float64, device=self.device, generator=gen)
            * self.single_sigma_ns
        )
        arrival = times[decay] + path[detected] / SPEED_OF_LIGHT_MM_PER_NS + jitter
        arrival, order = torch.sort(arrival, stable=True)
        decay = decay[order]
        correlated = torch.bincount(decay, minlength=n)[decay] > 1
        singles = Singles(
            arrival.cpu().numpy(),
            crystal[detected][order].to(torch.int32).cpu().numpy(),
            decay.cpu().numpy(),
            scattered[detected][order].cpu().numpy(),
            correlated.cpu().numpy(),
        )
        kept = annihilation.cpu().numpy() if config.record_event_truth else None
        return singles, kept, float(times[-1])
