"""The simulated ISMRMRD header: schema-complete, round-trips, carries the protocol's parameters."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing

import ismrmrd.xsd
import pytest

from hardware_sim.mr import MRExamConfig
from hardware_sim.mr.header import build_header


def _schema_errors(obj: object, path: str = "ismrmrdHeader") -> list[str]:
    """Check an xsdata object against the schema facts encoded in its dataclass fields:
    required elements present (non-optional annotation), list min/max occurrences, value types."""
    errors: list[str] = []
    hints = typing.get_type_hints(type(obj))
    for fld in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, fld.name)
        hint = hints[fld.name]
        optional = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
        where = f"{path}.{fld.name}"
        if value is None:
            if not optional:
                errors.append(f"{where} is required")
            continue
        if isinstance(value, list):
            if len(value) < fld.metadata.get("min_occurs", 0):
                errors.append(f"{where}: fewer than min_occurs")
            if "max_occurs" in fld.metadata and len(value) > fld.metadata["max_occurs"]:
                errors.append(f"{where}: more than max_occurs")
            items = value
        else:
            items = [value]
        for item in items:
            if dataclasses.is_dataclass(item):
                errors.extend(_schema_errors(item, where))
            elif not isinstance(item, int | float | str | bytes | enum.Enum):
                errors.append(f"{where}: unexpected type {type(item).__name__}")
    return errors


@pytest.mark.parametrize("protocol", ["cine", "flow", "dixon", "lge", "molli", "t2map", "t2star"])
@pytest.mark.parametrize("field_t", [1.5, 3.0])
def test_header_is_schema_complete_and_round_trips(protocol: str, field_t: float) -> None:
    header = build_header(MRExamConfig(protocol=protocol, field_strength_t=field_t))  # type: ignore[arg-type]
    assert _schema_errors(header) == []
    xml = ismrmrd.xsd.ToXML(header, encoding="utf-8")
    parsed = ismrmrd.xsd.CreateFromDocument(xml)  # strict parser: unknown elements fail
    assert parsed == header
    assert ismrmrd.xsd.ToXML(parsed, encoding="utf-8") == xml


def test_header_encoding_and_system_values() -> None:
    config = MRExamConfig(n_phases=25, acceleration=2, field_strength_t=3.0)
    header = build_header(config)
    enc = header.encoding[0]
    assert enc.encodedSpace.matrixSize.x == 384 and enc.reconSpace.matrixSize.x == 192
    assert enc.encodedSpace.matrixSize.y == 156
    assert enc.encodedSpace.fieldOfView_mm.x == pytest.approx(2 * enc.reconSpace.fieldOfView_mm.x)
    assert enc.encodingLimits.kspace_encoding_step_1.center == 78
    assert enc.encodingLimits.kspace_encoding_step_1.maximum == 155
    assert enc.encodingLimits.phase.maximum == 24
    assert enc.encodingLimits.slice.maximum == 10  # the default stack: 11 slices, mitral annulus to apex
    assert enc.trajectory == ismrmrd.xsd.trajectoryType.CARTESIAN
    assert enc.parallelImaging.accelerationFactor.kspace_encoding_step_1 == 2
    assert header.acquisitionSystemInformation.systemFieldStrength_T == 3.0
    assert header.acquisitionSystemInformation.receiverChannels == 16
    assert header.experimentalConditions.H1resonanceFrequency_Hz == pytest.approx(127.73e6, rel=1e-3)
    assert header.sequenceParameters.TR == [3.0]
    assert header.waveformInformation[0].waveformType == ismrmrd.xsd.waveformInformationTypeWaveformType.ECG


def test_flow_and_dixon_user_parameters() -> None:
    flow = build_header(MRExamConfig(protocol="flow", venc_cm_per_s=200.0))
    doubles = {p.name: p.value for p in flow.userParameters.userParameterDouble}
    longs = {p.name: p.value for p in flow.userParameters.userParameterLong}
    assert doubles["VENC_cm_per_s"] == 200.0
    assert longs["flow_direction"] == 1 and doubles["flow_direction"] == 1.0
    assert flow.encoding[0].encodingLimits.set.maximum == 1
    dixon = build_header(MRExamConfig(protocol="dixon", n_echoes=3, field_strength_t=1.5))
    doubles = {p.name: p.value for p in dixon.userParameters.userParameterDouble}
    tes = [doubles[f"echo_times_ms_{i}"] for i in range(3)]
    assert tes == dixon.sequenceParameters.TE
    assert tes[0] == pytest.approx(2.30, abs=0.02) and tes[1] == pytest.approx(4.61, abs=0.02)
    assert dixon.encoding[0].encodingLimits.contrast.maximum == 2


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="n_coils"):
        MRExamConfig(n_coils=4)
    with pytest.raises(ValueError, match="echo_times_ms"):
        MRExamConfig(protocol="dixon", n_echoes=2, echo_times_ms=(2.0, 1.0))
    with pytest.raises(ValueError, match="extra"):
        MRExamConfig(bogus=1)  # type: ignore[call-arg]


def test_cli_options_map_to_config() -> None:
    import argparse

    from hardware_sim.mr.cli import config_from_args, configure_parser

    parser = argparse.ArgumentParser()
    configure_parser(parser)
    assert config_from_args(parser.parse_args([])) == MRExamConfig()
    args = parser.parse_args(
        ["--protocol", "flow", "--field", "3", "--slices", "2", "--coils", "12", "--accel", "3", "--phases", "20",
         "--heart-rate", "72", "--seed", "5", "--arrhythmia", "ectopic", "--venc", "250", "--matrix", "128", "104"]
    )  # fmt: skip
    config = config_from_args(args)
    assert (config.protocol, config.field_strength_t, config.n_slices, config.n_coils) == ("flow", 3.0, 2, 12)
    assert (config.acceleration, config.n_phases, config.heart_rate_bpm, config.seed) == (3, 20, 72.0, 5)
    assert (config.arrhythmia, config.venc_cm_per_s, config.n_readout, config.n_phase_encodes) == (
        "ectopic",
        250.0,
        128,
        104,
    )
    with pytest.raises(ValueError, match="--coils 2: allowed 8 to 32"):
        config_from_args(parser.parse_args(["--coils", "2"]))
