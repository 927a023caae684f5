"""List-mode OSEM with subsets, resumable state, chunked event streaming and progress reporting.

Model of the expected counts of event e (its LOR and TOF bin):  ȳₑ = mₑ·(A x)ₑ + aₑ, with x the activity
(Bq/mm³, averaged over the frame), mₑ = T·gₑ·ηₑ·attₑ (frame duration, geometric factor, normalisation,
attenuation) and aₑ the expected randoms + scatter.  The list-mode EM update over subset s is

    x ← x / Sₛ · Σ_{e ∈ s} Aₑᵀ · 1/((A x)ₑ + bₑ),    bₑ = aₑ/mₑ,

with Sₛ = S/n_subsets and S = Σ_{all LORs} m_L A_Lᵀ 1 the (non-TOF) sensitivity image.  Events are dealt
to subsets round-robin (they are in time order, so each subset sees the whole frame) and streamed to the
kernel in chunks of ``chunk_size`` events, so memory stays bounded whatever the number of events.  Voxels
with negligible sensitivity are held at 0; the multiplicative update keeps the image non-negative.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from recon.tof.em_step import em_backprojection
from recon.tof.projector_common import GridLike, KernelChoice, grid_arrays
from recon.tof.tof_kernel import TOFParameters

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListModeEvents:
    """The prompts of one frame with their per-event model terms (event-major, length n_events).

    Attributes:
        crystal_id_1, crystal_id_2: (n,) int32 crystal ids.
        tof_bin: (n,) int16 TOF bins (ignored by non-TOF reconstructions).
        additive: (n,) float32 bₑ = (randoms + scatter)ₑ / mₑ, in projection units (Bq/mm³·mm).
        crystal_table: (n_crystals, 3) float32 LOR endpoints, scanner (x, y, z) mm.
    """

    crystal_id_1: torch.Tensor
    crystal_id_2: torch.Tensor
    tof_bin: torch.Tensor
    additive: torch.Tensor
    crystal_table: torch.Tensor

    def __post_init__(self) -> None:
        n = self.crystal_id_1.shape[0]
        for name in ("crystal_id_2", "tof_bin", "additive"):
            if tuple(getattr(self, name).shape) != (n,):
                raise ValueError(
                    f"ListModeEvents.{name} must have shape ({n},), got {tuple(getattr(self, name).shape)}"
                )
        if self.crystal_table.ndim != 2 or self.crystal_table.shape[1] != 3:
            raise ValueError("crystal_table must have shape (n_crystals, 3)")
        if n and bool((self.additive < 0).any()):
            raise ValueError("additive terms must be >= 0")

    @property
    def n_events(self) -> int:
        return int(self.crystal_id_1.shape[0])


@dataclass(frozen=True)
class OSEMSettings:
    """Parameters of a list-mode OSEM run.

    Attributes:
        n_iterations: full passes over the data (≥ 1).
        n_subsets: subsets per iteration (≥ 1).
        chunk_size: events sent to the kernel at once (bounds memory), ≥ 1.
        kernel: projector kernel ``auto | torch | numba | cuda``.
        min_sensitivity_fraction: voxels with S < this·max(S) are outside the FOV and held at 0.
        show_progress: tqdm progress bar (only when stderr is a terminal).
        progress_label: what the progress bar says it is counting (e.g. ``"lung μ trial 2"``).
    """

    n_iterations: int = 3
    n_subsets: int = 17
    chunk_size: int = 1 << 20
    kernel: KernelChoice | str = "auto"
    min_sensitivity_fraction: float = 1e-3
    show_progress: bool = True
    progress_label: str = "OSEM subsets"

    def __post_init__(self) -> None:
        if self.n_iterations < 1 or self.n_subsets < 1 or self.chunk_size < 1:
            raise ValueError("n_iterations, n_subsets and chunk_size must be >= 1")
        if not 0 <= self.min_sensitivity_fraction < 1:
            raise ValueError("min_sensitivity_fraction must be in [0, 1)")


@dataclass(frozen=True)
class OSEMState:
    """Where a reconstruction stands: resume by passing it back to :func:`list_mode_osem`.

    Attributes:
        image: current estimate, (z, y, x) float32, Bq/mm³.
        n_subset_updates_done: subset updates completed so far (iteration = this // n_subsets).
        history: mean image value after each completed iteration (a cheap convergence trace).
    """

    image: torch.Tensor
    n_subset_updates_done: int = 0
    history: tuple[float, ...] = field(default_factory=tuple)

    def save(self, path: Path) -> None:
        """Write the state (torch format) so that a later run can continue from it."""
        torch.save(
            {
                "image": self.image.cpu(),
                "n_subset_updates_done": self.n_subset_updates_done,
                "history": list(self.history),
            },
            path,
        )

    @classmethod
    def load(cls, path: Path) -> OSEMState:
        data = torch.load(path, weights_only=True)
        return cls(data["image"], int(data["n_subset_updates_done"]), tuple(data["history"]))


def _progress(total: int, enabled: bool, label: str = "OSEM subsets") -> Callable[[], None]:
    if not (enabled and sys.stderr.isatty()):
        return lambda: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="subset", leave=False)

    def tick() -> None:
        bar.update(1)
        if bar.n >= total:
            bar.close()

    return tick


def _subset_backprojection(
    x: torch.Tensor,
    events: ListModeEvents,
    subset: int,
    grid: GridLike,
    tof: TOFParameters | None,
    settings: OSEMSettings,
) -> torch.Tensor:
    device = x.device
    index = torch.arange(subset, events.n_events, settings.n_subsets, device=events.crystal_id_1.device)
    total = torch.zeros_like(x)
    for lo in range(0, index.numel(), settings.chunk_size):
        ev = index[lo : lo + settings.chunk_size]
        c1 = events.crystal_id_1[ev].to(device).long()
        c2 = events.crystal_id_2[ev].to(device).long()
        table = events.crystal_table.to(device)
        bins = events.tof_bin[ev].to(device) if tof is not None else None
        back, _ = em_backprojection(
            x, table[c1], table[c2], events.additive[ev].to(device), grid, tof, bins, settings.kernel
        )
        total += back.to(device)
    return total


def list_mode_osem(
    events: ListModeEvents,
    sensitivity: torch.Tensor,
    grid: GridLike,
    tof: TOFParameters | None,
    settings: OSEMSettings,
    state: OSEMState | None = None,
    n_subset_updates: int | None = None,
) -> OSEMState:
    """Run (or continue) list-mode OSEM; returns the new state.

    Args:
        events: prompts with their additive terms.
        sensitivity: S, (z, y, x), on the device to compute on (the image follows it).
        grid: the image grid.
        tof: TOF kernel, or ``None`` for a non-TOF reconstruction.
        settings: iterations, subsets, chunking, kernel.
        state: a previous state to continue from; ``None`` starts from a uniform image.
        n_subset_updates: stop after this many updates in this call (``None`` = until all iterations are done).
    """
    shape, _, _ = grid_arrays(grid)
    if tuple(sensitivity.shape) != shape:
        raise ValueError(f"sensitivity has shape {tuple(sensitivity.shape)}, grid expects {shape}")
    sens = sensitivity.to(torch.float32)
    support = sens > settings.min_sensitivity_fraction * float(sens.max())
    if state is None:
        state = OSEMState(_initial_image(events, sens, support))
    x = state.image.to(device=sens.device, dtype=torch.float32).clone()
    total = settings.n_iterations * settings.n_subsets
    todo = total - state.n_subset_updates_done if n_subset_updates is None else n_subset_updates
    todo = max(0, min(todo, total - state.n_subset_updates_done))
    tick = _progress(todo, settings.show_progress, settings.progress_label)
    history = list(state.history)
    subset_sens = torch.where(support, sens / settings.n_subsets, torch.ones_like(sens))
    done = state.n_subset_updates_done
    for _ in range(todo):
        subset = done % settings.n_subsets
        back = _subset_backprojection(x, events, subset, grid, tof, settings)
        x = torch.where(support, x * back / subset_sens, torch.zeros_like(x))
        done += 1
        tick()
        if done % settings.n_subsets == 0:
            history.append(float(x.mean()))
            log.info(
                "OSEM iteration %d/%d done (mean %.4g)",
                done // settings.n_subsets,
                settings.n_iterations,
                history[-1],
            )
    return replace(state, image=x, n_subset_updates_done=done, history=tuple(history))


def _initial_image(events: ListModeEvents, sens: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Uniform start whose expected total counts ≈ the number of events (a good scale for EM)."""
    n_support = int(support.sum())
    if n_support == 0:
        raise ValueError("the sensitivity image is zero everywhere: no LOR crosses the image")
    # Σ_L m_L (A x)_L = Σ_j S_j x_j for uniform x = c on the support: c = n_events / Σ S
    scale = max(events.n_events, 1) / float(sens[support].sum())
    return torch.where(support, torch.full_like(sens, scale), torch.zeros_like(sens))
