"""ISMRMRD HDF5 and stream-file round trips, with a non-ASCII patient name."""

from __future__ import annotations

from pathlib import Path

import ismrmrd
import ismrmrd.xsd
import numpy as np
import pytest

from plugins.io.ismrmrd_files import InputFormatError, header_to_xml, open_raw, parse_header, write_raw


def make_header() -> ismrmrd.xsd.ismrmrdHeader:
    space = ismrmrd.xsd.encodingSpaceType(
        matrixSize=ismrmrd.xsd.matrixSizeType(x=32, y=16, z=1),
        fieldOfView_mm=ismrmrd.xsd.fieldOfViewMm(x=300.0, y=150.0, z=8.0),
    )
    enc = ismrmrd.xsd.encodingType(
        encodedSpace=space,
        reconSpace=space,
        encodingLimits=ismrmrd.xsd.encodingLimitsType(),
        trajectory=ismrmrd.xsd.trajectoryType.CARTESIAN,
    )
    return ismrmrd.xsd.ismrmrdHeader(
        subjectInformation=ismrmrd.xsd.subjectInformationType(patientName="Sørensen^Åse"),
        experimentalConditions=ismrmrd.xsd.experimentalConditionsType(H1resonanceFrequency_Hz=63_870_000),
        encoding=[enc],
    )


def make_items(rng: np.random.Generator) -> list[object]:
    items: list[object] = []
    for line in range(4):
        data = (rng.standard_normal((2, 32)) + 1j * rng.standard_normal((2, 32))).astype(np.complex64)
        acq = ismrmrd.Acquisition.from_array(data)
        acq.idx.kspace_encode_step_1 = line
        acq.acquisition_time_stamp = 10 * line
        items.append(acq)
        if line == 1:
            wav = ismrmrd.Waveform.from_array(np.arange(10, dtype=np.uint32).reshape(2, 5))
            wav.time_stamp = 15
            items.append(wav)
    return items


@pytest.mark.parametrize("suffix", [".h5", ".bin"])
def test_round_trip(tmp_path: Path, rng: np.random.Generator, suffix: str) -> None:
    header = make_header()
    items = make_items(rng)
    path = tmp_path / f"raw{suffix}"
    assert write_raw(path, header, items) == len(items)
    raw = open_raw(path)
    back = list(raw.items)
    assert raw.header.subjectInformation.patientName == "Sørensen^Åse"
    assert [type(i).__name__ for i in back] == [type(i).__name__ for i in items]  # time order kept
    for a, b in zip(items, back, strict=True):
        assert np.array_equal(np.asarray(a.data), np.asarray(b.data))  # type: ignore[attr-defined]
    assert back[0].idx.kspace_encode_step_1 == 0 and back[-1].idx.kspace_encode_step_1 == 3  # type: ignore[attr-defined]


def test_header_xml_is_utf8_and_parses_back() -> None:
    xml = header_to_xml(make_header())
    assert "Sørensen" in xml
    assert parse_header(xml.encode("utf-8")).subjectInformation.patientName == "Sørensen^Åse"


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="no such file"):
        open_raw(tmp_path / "missing.h5")
    bad = tmp_path / "junk.bin"
    bad.write_bytes(b"\x03\x00\xff\xff\xff\x7fnot xml")
    with pytest.raises(InputFormatError, match="junk.bin"):
        list(open_raw(bad).items)
    text = tmp_path / "x.txt"
    text.write_text("hello\n")
    with pytest.raises(InputFormatError, match="x.txt: not a raw-data file .* a text file starting 'hello'"):
        open_raw(text)
    with pytest.raises(InputFormatError, match="invalid ISMRMRD XML header"):
        parse_header(b"<ismrmrdHeader><nonsense/></ismrmrdHeader")
