"""PET phantoms: geometry, activity ratios and μ values at 511 keV."""

from __future__ import annotations

import numpy as np
import pytest

from hardware_sim.mr.anatomy import thorax_label_map
from hardware_sim.pet.phantoms import (
    NEMA_SPHERE_DIAMETERS_MM,
    PETPhantom,
    nema_iec_phantom,
    nema_sphere_centres_mm,
    point_source_phantom,
    uniform_cylinder_phantom,
)
from hardware_sim.pet.torso import (
    MR_TISSUE_TO_LABEL,
    TORSO_LABELS,
    TORSO_SUV,
    mean_contraction,
    torso_phantom,
)


@pytest.fixture(scope="module")
def nema() -> PETPhantom:
    return nema_iec_phantom(voxel_size_mm=2.0)


def test_nema_spheres_volumes_and_contrast(nema: PETPhantom) -> None:
    background = nema.activity_bq_per_ml[nema.label_mask("water")]
    assert np.all(background == pytest.approx(5300.0))
    for diameter, centre in zip(NEMA_SPHERE_DIAMETERS_MM, nema_sphere_centres_mm(), strict=True):
        mask = nema.label_mask(f"sphere_{diameter:.0f}mm")
        volume_ml = mask.sum() * nema.grid.voxel_volume_ml
        assert volume_ml == pytest.approx(
            np.pi / 6 * (diameter / 10) ** 3, rel=0.25 if diameter < 20 else 0.08
        )
        assert np.all(nema.activity_bq_per_ml[mask] == pytest.approx(4 * 5300.0))
        z, y, x = nema.grid.voxel_centres_mm()
        assert [x[mask].mean(), y[mask].mean(), z[mask].mean()] == pytest.approx(list(centre), abs=1.0)
    # background volume of the IEC body phantom ≈ 9.7 l
    assert nema.weight_kg == pytest.approx(9.7, rel=0.05)


def test_nema_materials(nema: PETPhantom) -> None:
    lung = nema.label_mask("lung_insert")
    assert nema.activity_bq_per_ml[lung].max() == 0.0
    assert (
        0.026 <= nema.mu_per_cm[lung].min()
        and nema.mu_per_cm[lung].max() <= 0.034
        and nema.mu_per_cm[lung].std() > 0
    )
    assert np.all(nema.mu_per_cm[nema.label_mask("water")] == pytest.approx(0.096))
    table = nema.label_mask("table")
    assert table.any() and nema.activity_bq_per_ml[table].max() == 0.0
    # partial-volume table: its vertical μ·length is the design's 2 × 2 mm skins (0.14–0.16 /cm) + 26 mm core
    # (0.004–0.008 /cm), i.e. 0.066–0.085, at any voxel size (point sampling lost the skins at 4 mm)
    centre = (nema.grid.shape_zyx[0] // 2, slice(None), nema.grid.shape_zyx[2] // 2)
    vertical = (
        float(np.where(table[centre], nema.mu_per_cm[centre], 0.0).sum()) * nema.grid.voxel_size_mm[1] / 10
    )
    assert 0.066 <= vertical <= 0.085
    # the table is under the phantom (posterior, +y)
    _, y, _ = nema.grid.voxel_centres_mm()
    assert y[table].min() > y[nema.label_mask("water")].max()


def test_torso_tissues_vary_within_their_ranges_and_uptake_follows_suv() -> None:
    torso = torso_phantom(voxel_size_mm=5.0)
    expected = {
        "soft_tissue": (0.096, 0.099), "fat": (0.086, 0.091), "lung": (0.020, 0.040),
        "cancellous_bone": (0.110, 0.130), "cortical_bone": (0.150, 0.172),
    }  # fmt: skip
    for name, (low, high) in expected.items():
        mu = torso.mu_per_cm[torso.label_mask(name)]
        assert mu.size > 10 and low - 1e-6 <= mu.min() and mu.max() <= high + 1e-6 and mu.std() > 0, name
    suv_unit = 370e6 * 2 ** (-3600 / 6586.2) / 75e3
    for name, suv in TORSO_SUV.items():
        values = torso.activity_bq_per_ml[torso.label_mask(name)]
        assert np.allclose(values, suv * suv_unit, rtol=1e-5), name
    myocardium = torso.activity_bq_per_ml[torso.label_mask("myocardium")].mean()
    assert myocardium > 3 * torso.activity_bq_per_ml[torso.label_mask("blood")].mean()
    # arms reach beyond a 500 mm MR field of view; table and coil attenuate but carry no activity
    _, y, x = torso.grid.voxel_centres_mm()
    assert np.abs(x[torso.labels > 0]).max() > 250.0
    for name in ("table", "coil"):
        mask = torso.label_mask(name)
        assert mask.any() and torso.activity_bq_per_ml[mask].max() == 0 and torso.mu_per_cm[mask].min() > 0
    coil = torso.label_mask("coil")
    assert y[coil].max() < 0  # anterior
    # patient left is +x: the heart lies left of the midline, the liver right
    assert x[torso.label_mask("myocardium")].mean() > 0 > x[torso.label_mask("liver")].mean()


def test_torso_anatomy_is_the_mr_thorax() -> None:
    """One anatomy: away from the PET-only additions (lesions, coil, table) every voxel carries the PET label
    of the MR thorax's tissue at its centre (heart at the time-averaged contraction)."""
    torso = torso_phantom(voxel_size_mm=6.0)
    z, y, x = np.meshgrid(*(torso.grid.axis_centres_mm(a) for a in range(3)), indexing="ij")
    mr = thorax_label_map(np.stack([x, y, z], axis=-1), mean_contraction())
    expected = np.array([TORSO_LABELS.index(MR_TISSUE_TO_LABEL[t]) for t in sorted(MR_TISSUE_TO_LABEL)])[mr]
    pet_only = np.isin(torso.labels, [TORSO_LABELS.index(n) for n in ("lesion", "coil", "table")])
    assert np.array_equal(torso.labels[~pet_only], expected[~pet_only])
    assert 0.2 < mean_contraction() < 0.5  # between end-diastole (0) and end-systole (1)
    # the MR-invisible hardware lies outside the body: nothing anatomical was overwritten by coil or table
    assert np.all(expected[torso.label_mask("coil") | torso.label_mask("table")] == 0)


def test_simple_phantoms() -> None:
    cylinder = uniform_cylinder_phantom(radius_mm=50.0, length_mm=100.0, voxel_size_mm=2.0)
    assert cylinder.total_activity_bq == pytest.approx(5000.0 * np.pi * 25.0 * 10.0, rel=0.03)
    point = point_source_phantom((10.0, -20.0, 4.0), activity_bq=1e6, voxel_size_mm=2.0, half_extent_mm=40.0)
    assert point.total_activity_bq == pytest.approx(1e6)
    z, y, x = point.grid.voxel_centres_mm()
    hot = point.activity_bq_per_ml > 0
    assert [x[hot][0], y[hot][0], z[hot][0]] == pytest.approx([10.0, -20.0, 4.0], abs=1.0)
    with pytest.raises(ValueError, match="outside"):
        point_source_phantom((100.0, 0.0, 0.0), half_extent_mm=40.0)


@pytest.mark.parametrize("voxel_mm", [2.0, 4.0, 5.0])
def test_table_attenuation_does_not_depend_on_the_voxel_size(voxel_mm: float) -> None:
    phantom = nema_iec_phantom(voxel_size_mm=voxel_mm)
    table = phantom.label_mask("table")
    # (z, x) μ·length through the table along y, cm⁻¹·cm
    columns = np.where(table, phantom.mu_per_cm, 0.0).sum(axis=1) * voxel_mm / 10.0
    inside = columns[:, np.abs(phantom.grid.axis_centres_mm(2)) < 150.0]
    assert 0.066 <= float(inside.mean()) <= 0.085
