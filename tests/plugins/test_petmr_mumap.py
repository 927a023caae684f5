"""The μ-map plugin: DixonVolume → PETMuMap (+ images) on the PET grid, ordering against PET frames."""

from __future__ import annotations

import ismrmrd
import numpy as np
import pytest
from pydantic import ValidationError

from plugins.mr.dixon_items import DixonVolume
from plugins.pet.items import PETFrame, PETMuMap
from plugins.pet.petmr_mumap import PetMrMuMap, PetMrMuMapConfig
from plugins.runtime.plugin import ChainContext
from recon.petmr_ac.dixon_common import DixonResult, fat_fraction_map
from recon.petmr_ac.grid import axis_aligned_grid, grid_from_pet_image_grid
from recon.tof.listmode import ListModeBatch


def _dixon_volume() -> DixonVolume:
    """A water cylinder (r 100 mm) with a 12 mm fat shell (r 112 mm) and a lung-like void, 40 mm long."""
    grid = axis_aligned_grid((10, 80, 80), (4.0, 3.5, 3.5), (-18.0, -140.0, -140.0))
    z, y, x = np.meshgrid(*[np.arange(n) for n in grid.shape_zyx], indexing="ij")
    pts = grid.index_to_patient(np.stack([z, y, x], axis=-1))
    r = np.hypot(pts[..., 1], pts[..., 2])
    lung = np.hypot(pts[..., 1] + 10.0, pts[..., 2] - 40.0) < 35.0
    water = np.where(r < 100, 1.0, 0.0) * ~lung
    fat = np.where((r >= 100) & (r < 112), 2.0, 0.0)
    w, f = water.astype(np.complex64), fat.astype(np.complex64)
    result = DixonResult(w, f, np.zeros(grid.shape_zyx, np.float32), fat_fraction_map(w, f, 0.01))
    return DixonVolume(result, grid, 1.5, (1.2e-3, 2.4e-3, 3.6e-3), "multi-echo", measurement_uid=7)


def _frame() -> PETFrame:
    n = 10
    batch = ListModeBatch(
        np.arange(n, dtype=np.int32),
        np.arange(n, dtype=np.int32) + 20,
        np.zeros(n, np.int16),
        np.ones(n, bool),
        np.arange(n, dtype=np.uint32),
        "small",
        0,
        True,
    )
    return PETFrame(batch, 0, 1)


def _plugin(**overrides: object) -> PetMrMuMap:
    cfg = PetMrMuMapConfig(scanner="small", voxel_size_mm=4.0, truncation_completion=False, **overrides)
    return PetMrMuMap(cfg, ChainContext("petmr"))


def test_mumap_values_and_images() -> None:
    outputs = list(_plugin(pet_fwhm_mm=0.0, table=False).run([_dixon_volume()]))
    mu_maps = [o for o in outputs if isinstance(o, PETMuMap)]
    assert len(mu_maps) == 1
    mu = mu_maps[0]
    grid = grid_from_pet_image_grid(mu.grid)
    centre = grid.patient_to_index(np.array([0.0, -60.0, -40.0]))  # soft tissue, (z, y, x) mm
    shell = grid.patient_to_index(np.array([0.0, 0.0, 106.0]))
    lung = grid.patient_to_index(np.array([0.0, -10.0, 40.0]))
    outside = grid.patient_to_index(np.array([0.0, 0.0, 130.0]))
    value = {
        k: float(mu.mu_per_cm[tuple(np.rint(v).astype(int))])
        for k, v in (("soft", centre), ("fat", shell), ("lung", lung), ("air", outside))
    }
    assert value == pytest.approx({"soft": 0.100, "fat": 0.086, "lung": 0.018, "air": 0.0}, abs=1e-6)
    images = [o for o in outputs if isinstance(o, ismrmrd.Image)]
    assert len(images) == mu.grid.shape_zyx[0]
    meta = ismrmrd.Meta.deserialize(images[0].attribute_string)
    assert meta["Unit"] == "1/cm" and "absent" in meta["BoneClass"]


def test_frames_before_the_mumap_are_held_back() -> None:
    frame = _frame()
    outputs = list(_plugin().run([frame, "passthrough", _dixon_volume()]))
    kinds = [type(o).__name__ for o in outputs]
    assert kinds.index("PETMuMap") < kinds.index("PETFrame")
    assert "str" in kinds  # unrelated items pass


def test_frames_without_dixon_are_released_at_the_end() -> None:
    outputs = list(_plugin().run([_frame()]))
    assert [type(o).__name__ for o in outputs] == ["PETFrame"]


def test_table_is_added() -> None:
    outputs = list(_plugin(table=True, table_top_y_mm=120.0).run([_dixon_volume()]))
    mu = next(o for o in outputs if isinstance(o, PETMuMap))
    grid = grid_from_pet_image_grid(mu.grid)
    inside_table = grid.patient_to_index(np.array([0.0, 135.0, 0.0]))
    assert float(mu.mu_per_cm[tuple(np.rint(inside_table).astype(int))]) == pytest.approx(0.025, rel=1e-3)


def test_config_is_validated() -> None:
    with pytest.raises(ValidationError, match="unknown scanner"):
        PetMrMuMapConfig(scanner="nonesuch")
    with pytest.raises(ValidationError):
        PetMrMuMapConfig(lung_mu_per_cm=-0.01)
    with pytest.raises(ValidationError):
        PetMrMuMapConfig(soft_tissue_mu_per_cm_typo=0.1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="low < high"):
        PetMrMuMapConfig(lung_mu_bounds_per_cm=(0.05, 0.01))
