"""Simulator options for the cine function cases (issue 16): heart condition, mitral regurgitation,
patient height in the header; the defaults are unchanged."""

from __future__ import annotations

import pytest

from hardware_sim.mr import anatomy
from hardware_sim.mr.config import MRExamConfig
from hardware_sim.mr.header import build_header
from hardware_sim.mr.heart_volumes import MYOCARDIAL_DENSITY_G_PER_ML, heart_volumes_ml
from hardware_sim.mr.model import aortic_forward_ml, heart_parameters


def _ed_es(config: MRExamConfig) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    params = heart_parameters(config)
    return (
        heart_volumes_ml(anatomy.heart_geometry(params, 0.0)),
        heart_volumes_ml(anatomy.heart_geometry(params, 1.0)),
    )


def test_defaults_unchanged() -> None:
    config = MRExamConfig()
    assert heart_parameters(config) == anatomy.HeartParameters()
    assert aortic_forward_ml(config) == pytest.approx(70.0)


def test_dilated_ventricle_has_a_low_ejection_fraction() -> None:
    ed, es = _ed_es(MRExamConfig(heart_condition="dilated"))
    assert ed[0] > 250.0
    assert 100.0 * (ed[0] - es[0]) / ed[0] < 35.0


def test_hypertrophic_ventricle_is_heavy_and_small() -> None:
    normal, _ = _ed_es(MRExamConfig())
    ed, es = _ed_es(MRExamConfig(heart_condition="hypertrophic"))
    assert MYOCARDIAL_DENSITY_G_PER_ML * ed[2] > 1.6 * MYOCARDIAL_DENSITY_G_PER_ML * normal[2]
    assert es[0] < 45.0 and 100.0 * (ed[0] - es[0]) / ed[0] > 60.0


def test_mitral_regurgitation_adds_to_the_lv_stroke_volume_only() -> None:
    config = MRExamConfig(mitral_regurgitant_volume_ml=30.0)
    assert heart_parameters(config).lv_sv_ml == pytest.approx(100.0)
    assert heart_parameters(config).rv_sv_ml == pytest.approx(70.0)
    assert aortic_forward_ml(config) == pytest.approx(70.0)


def test_header_has_height_and_weight() -> None:
    subject = build_header(MRExamConfig()).subjectInformation
    assert (subject.patientHeight_m, subject.patientWeight_kg) == (1.75, 75.0)
