"""Flow plugins on synthetic ISMRMRD images: velocity images, background, unwrapping, report, errors."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from typing import Any

import ismrmrd
import numpy as np
import pytest
import torch
from PIL import Image

from plugins.mr.cine_accumulate import ecg_trigger_times_s
from plugins.mr.flow_background import FlowBackground, FlowBackgroundConfig
from plugins.mr.flow_common import FlowHeaderError, meta_value, velocity_encoding_from_header
from plugins.mr.flow_report import FlowReportConfig, FlowReportPlugin
from plugins.mr.flow_rr import mean_rr_s
from plugins.mr.flow_unwrap import FlowUnwrap, FlowUnwrapConfig
from plugins.mr.flow_velocity import FlowVelocity, FlowVelocityConfig
from plugins.runtime.items import Report
from plugins.runtime.plugin import ChainContext
from recon.phasecontrast.flow import beat_volumes, flow_curve
from tests.plugins.mr.flow_fixtures import complex_pair_images, flow_header, two_vessel_series

RR_S = 0.8


def _chain(items: Iterable[Any], context: ChainContext, unwrap: str = "temporal") -> list[Any]:
    stages = [
        FlowVelocity(FlowVelocityConfig(), context),
        FlowBackground(FlowBackgroundConfig(), context),
        FlowUnwrap(FlowUnwrapConfig(method=unwrap), context),  # type: ignore[arg-type]
        FlowReportPlugin(FlowReportConfig(heart_rate_bpm=60.0 / RR_S, n_vessels=2), context),
    ]
    stream: Iterable[Any] = items
    for stage in stages:
        stream = stage.run(stream)
    return list(stream)


def _velocity_stack(outputs: list[Any]) -> np.ndarray:
    vel = sorted(
        (im for im in outputs if isinstance(im, ismrmrd.Image) and meta_value(im, "PC_role") == "velocity"),
        key=lambda im: im.phase,
    )
    return np.stack([np.asarray(im.data)[0, 0] for im in vel])


def test_header_parsing_and_errors() -> None:
    enc = velocity_encoding_from_header(flow_header())
    assert (enc.venc_cm_per_s, enc.flow_direction) == (150.0, 1)
    with pytest.raises(FlowHeaderError, match="lack VENC_cm_per_s"):
        velocity_encoding_from_header(flow_header(venc_xml=""))
    two = (
        "<userParameterDouble><name>VENC_cm_per_s</name><value>150</value></userParameterDouble>"
        "<userParameterDouble><name>VENC_cm_per_s</name><value>100</value></userParameterDouble>"
    )
    with pytest.raises(FlowHeaderError, match=r"inconsistent VENC_cm_per_s values \[100.0, 150.0\]"):
        velocity_encoding_from_header(flow_header(venc_xml=two))
    with pytest.raises(FlowHeaderError, match="not a positive"):
        velocity_encoding_from_header(
            flow_header(
                venc_xml="<userParameterDouble><name>VENC_cm_per_s</name><value>-5</value></userParameterDouble>"
            )
        )
    with pytest.raises(FlowHeaderError, match="needs the ISMRMRD header"):
        FlowVelocity(FlowVelocityConfig(), ChainContext("flow"))


def test_chain_outputs_velocity_images_and_accurate_report() -> None:
    data = two_vessel_series(seed=3)
    context = ChainContext("flow", header=flow_header(n_phases=20))
    outputs = _chain(complex_pair_images(data, 150.0, np.random.default_rng(1), noise=0.005), context)

    images = [o for o in outputs if isinstance(o, ismrmrd.Image)]
    assert len(images) == 40  # magnitude + velocity per phase
    vel_image = next(im for im in images if meta_value(im, "PC_role") == "velocity")
    assert vel_image.image_type == ismrmrd.IMTYPE_PHASE
    assert meta_value(vel_image, "units") == "cm/s" and meta_value(vel_image, "scale") == "1"
    assert meta_value(vel_image, "VENC_cm_per_s") == "150"
    assert vel_image.data_type == ismrmrd.DATATYPE_FLOAT

    truth = torch.from_numpy(data["true_flow_velocity"])
    residual = _velocity_stack(outputs) - data["true_flow_velocity"]
    for key in ("vessel_0", "vessel_1"):  # background removed at the vessels
        assert abs(float(residual[:, data[key]].mean())) < 0.3

    reports = {o.filename: o for o in outputs if isinstance(o, Report)}
    assert set(reports) == {"flow_report.json", "flow_report.csv", "flow_report.png"}
    report = json.loads(reports["flow_report.json"].content)
    assert report["rr_s"] == pytest.approx(RR_S)
    by_label = {v["label"]: v for v in report["vessels"]}
    # one caudal vessel → descending aorta; a single cranial vessel is ambiguous (aorta or PA): unlabelled
    assert set(by_label) == {"vessel_0_0", "descending_aorta"}
    assert by_label["vessel_0_0"]["forward_direction_lps"] == pytest.approx([0.0, 0.0, 1.0])
    for key, label, sign in (("vessel_0", "vessel_0_0", 1.0), ("vessel_1", "descending_aorta", -1.0)):
        expected = beat_volumes(flow_curve(truth * sign, torch.from_numpy(data[key]), 4.0, RR_S), RR_S)
        got = by_label[label]["volumes"]
        assert got["net_ml"] == pytest.approx(expected.net_ml, rel=0.03)
        assert got["peak_velocity_cm_per_s"] == pytest.approx(expected.peak_velocity_cm_per_s, rel=0.05)
        assert abs(got["regurgitant_fraction_percent"] - expected.regurgitant_fraction_percent) < 3.0
    assert by_label["descending_aorta"]["orientation_sign"] == -1
    assert report["qp_qs"] is None and any("Qp:Qs" in n for n in report["notes"])

    rows = list(csv.DictReader(io.StringIO(reports["flow_report.csv"].content.decode())))
    assert len(rows) == 2 * 20
    png = Image.open(io.BytesIO(reports["flow_report.png"].content))
    assert png.format == "PNG" and png.size == (800, 480)


def test_aliased_series_unwrapped_by_the_chain() -> None:
    data = two_vessel_series(seed=4, noise_cm_per_s=1.0)
    venc = 80.0  # below the 110 cm/s peak of the first vessel
    header = flow_header(
        venc_xml=f"<userParameterDouble><name>VENC_cm_per_s</name><value>{venc}</value></userParameterDouble>"
    )
    outputs = _chain(
        complex_pair_images(data, venc, np.random.default_rng(2)), ChainContext("flow", header=header)
    )
    err = _velocity_stack(outputs) - data["true_flow_velocity"]
    vessel = data["vessel_0"]
    assert float(np.abs(err[:, vessel]).max()) < 15.0  # nothing left off by 2·VENC
    report = json.loads(
        next(o for o in outputs if isinstance(o, Report) and o.filename.endswith(".json")).content
    )
    aorta = next(v for v in report["vessels"] if v["label"] == "vessel_0_0")
    expected = beat_volumes(
        flow_curve(torch.from_numpy(data["true_flow_velocity"]), torch.from_numpy(vessel), 4.0, RR_S), RR_S
    )
    assert aorta["volumes"]["net_ml"] == pytest.approx(expected.net_ml, rel=0.05)


def test_rejects_real_images_and_bad_sets() -> None:
    context = ChainContext("flow", header=flow_header(n_phases=1))
    real = ismrmrd.Image.from_array(np.ones((1, 1, 4, 4), np.float32), transpose=False)
    with pytest.raises(ValueError, match="complex images"):
        list(FlowVelocity(FlowVelocityConfig(), context).run([real, _with_set(real, 1)]))
    with pytest.raises(ValueError, match="set=2"):
        list(FlowVelocity(FlowVelocityConfig(), context).run([_with_set(real, 2)]))


def _with_set(image: ismrmrd.Image, set_index: int) -> ismrmrd.Image:
    copy = ismrmrd.Image.from_array(np.asarray(image.data).copy(), transpose=False)
    copy.set = set_index
    return copy


def test_ecg_trigger_times_and_rr() -> None:
    data = np.zeros((5, 800), dtype=np.uint32)
    data[-1, [100, 101, 500, 501]] = 1  # two triggers 400 samples (1.0 s at 2.5 ms) apart
    wave = ismrmrd.Waveform.from_array(data)
    wave.sample_time_us = 2500.0
    wave.time_stamp = 400  # 1.0 s
    assert ecg_trigger_times_s(wave) == pytest.approx([1.25, 2.25])
    # an ectopic beat (0.5 s) and its compensatory pause (1.5 s) are left out of the mean
    assert mean_rr_s(np.array([0.0, 1.0, 2.02, 2.52, 4.02, 5.0])) == pytest.approx((1.0 + 1.02 + 0.98) / 3)
    assert math.isfinite(mean_rr_s(np.array([0.0, 0.9])))


def test_maxwell_option_removes_the_concomitant_field_offset() -> None:
    """Closed form (Bernstein 1998, Gz only): φ = γ ΔM_zz (x² + y²) / (8 B0), added to a constant background."""
    from tests.recon.phasecontrast.pc_synthetic import synthetic_series

    data = synthetic_series(
        np.random.default_rng(6), background_poly=(1.5, 0.0, 0.0, 0.0, 0.0, 0.0), noise_cm_per_s=0.5
    )
    delta_mzz = 2000.0  # (mT/m)²·ms
    coords_m = (np.arange(64) - 32) * 2e-3  # 2 mm pixels, centre pixel 32 at the isocentre
    r2 = coords_m[:, None] ** 2 + coords_m[None, :] ** 2
    phase = 2 * math.pi * 42.577478e6 * delta_mzz * 1e-9 * r2 / (8 * 1.5)
    data["velocity"] = data["velocity"] + (150.0 / math.pi) * phase[None]
    images = complex_pair_images(data, 150.0, np.random.default_rng(3))
    context = ChainContext("flow", header=flow_header())

    def corrected(moments: tuple[float, float, float, float, float] | None) -> np.ndarray:
        stages = [
            FlowVelocity(FlowVelocityConfig(), context),
            FlowBackground(
                FlowBackgroundConfig(polynomial_order=0, maxwell_moments_mt2_ms_per_m2=moments), context
            ),
        ]
        stream: Iterable[Any] = images
        for stage in stages:
            stream = stage.run(stream)
        return _velocity_stack(list(stream)) - data["true_flow_velocity"]

    assert float(np.abs(phase).max()) * 150.0 / math.pi > 5.0  # a real offset: > 5 cm/s at the edge
    body = data["body"]
    with_maxwell = corrected((0.0, 0.0, delta_mzz, 0.0, 0.0))
    without = corrected(None)
    assert abs(float(with_maxwell[:, body].mean(0).mean())) < 0.3
    assert float(np.abs(with_maxwell[:, body].mean(0)).max()) < 1.0
    assert float(np.abs(without[:, body].mean(0)).max()) > 2.0
