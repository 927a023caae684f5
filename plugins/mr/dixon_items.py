"""Items that travel from the Dixon reconstruction to the μ-map stage."""

from __future__ import annotations

from dataclasses import dataclass

from recon.petmr_ac.dixon_common import DixonResult
from recon.petmr_ac.grid import VoxelGrid


@dataclass(frozen=True)
class DixonVolume:
    """A separated Dixon volume with its location in patient coordinates.

    Attributes:
        result: water, fat, fat fraction and field map, each (z, y, x) on ``grid``.
        grid: the MR image grid (patient coordinates, LPS mm).
        field_strength_t: B0 of the acquisition (T).
        echo_times_s: the echo times used (s).
        method: ``"two-point"`` or ``"multi-echo"``.
        measurement_uid: ISMRMRD measurement uid of the source data.
        last_readout_time_stamp: ``acquisition_time_stamp`` of the last readout (2.5 ms ticks).
    """

    result: DixonResult
    grid: VoxelGrid
    field_strength_t: float
    echo_times_s: tuple[float, ...]
    method: str
    measurement_uid: int = 0
    last_readout_time_stamp: int = 0

    def __post_init__(self) -> None:
        if self.result.water.shape != self.grid.shape_zyx:
            raise ValueError(
                f"Dixon maps {self.result.water.shape} do not match the grid {self.grid.shape_zyx}"
            )
        if self.method not in ("two-point", "multi-echo"):
            raise ValueError(f"method must be 'two-point' or 'multi-echo', got {self.method!r}")
