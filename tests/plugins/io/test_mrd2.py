"""MRD v2 in and out: round trips with ISMRMRD v1 on simulator exams, mrd-python's phantom through ``run``,
format detection, and cut or corrupt streams."""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path
from typing import Any

import ismrmrd
import mrd
import numpy as np
import pytest

from hardware_sim.mr.config import MRExamConfig
from hardware_sim.mr.exam import simulate_exam
from plugins.cli import main
from plugins.io.ismrmrd_files import InputFormatError, header_to_xml, open_raw
from plugins.io.mr_header import mr_header
from plugins.io.mrd2_files import read_mrd2, write_mrd2
from plugins.io.mrd2_header import header_v1_to_v2
from plugins.runtime.items import StreamInterrupted
from tests.plugins.io.mrd2_cases import (
    correlation,
    images_of,
    read_run_images,
    reference_images,
    write_phantom,
)


@functools.cache
def _exam(protocol: str) -> tuple[Any, list[Any]]:
    config = MRExamConfig(
        protocol=protocol, n_slices=1, n_coils=8, n_readout=32, n_phase_encodes=32, n_phases=4, seed=3
    )
    exam = simulate_exam(config)
    return exam.header, list(exam.items())


def _head_bytes(item: Any) -> bytes:
    return bytes(item.getHead()) if hasattr(item, "getHead") else b""


@pytest.mark.parametrize("protocol", ["cine", "flow", "dixon"])
def test_v1_to_v2_to_v1_keeps_every_item_and_header_field(protocol: str, tmp_path: Path) -> None:
    header, items = _exam(protocol)
    path = tmp_path / f"{protocol}.mrd"
    assert write_mrd2(path, header, items) == len(items)
    back = read_mrd2(path)
    assert header_to_xml(back.header) == header_to_xml(header)
    returned = list(back.items)
    assert len(returned) == len(items)
    kinds = {type(i).__name__ for i in items}
    assert {"Acquisition", "Waveform"} <= kinds if protocol != "dixon" else "Acquisition" in kinds
    for original, copy in zip(items, returned, strict=True):
        assert type(copy) is type(original)
        assert _head_bytes(copy) == _head_bytes(original)  # every header field, flags and counters included
        assert np.array_equal(copy.data, original.data)
        if isinstance(original, ismrmrd.Acquisition):
            assert np.array_equal(copy.traj, original.traj)


def test_typed_header_is_the_same_from_v1_and_v2() -> None:
    header, _ = _exam("flow")
    from_v1, from_v2 = mr_header(header), mr_header(header_v1_to_v2(header))
    assert from_v1 == from_v2
    assert from_v1 is not None and from_v1.numbers("VENC_cm_per_s") == [150.0]
    dixon = mr_header(header_v1_to_v2(_exam("dixon")[0]))
    assert dixon is not None and len(dixon.echo_times_ms) == 2 and dixon.field_strength_t == 1.5


def test_image_round_trip_keeps_geometry_and_meta() -> None:
    from plugins.io.mrd2_items import image_from_v2, image_to_v2

    image = ismrmrd.Image.from_array(np.arange(12, dtype=np.float32).reshape(1, 1, 3, 4), transpose=False)
    image.position, image.read_dir, image.phase_dir = (1.0, 2.0, 3.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)
    image.slice, image.phase, image.image_series_index = 2, 5, 7
    meta = ismrmrd.Meta()
    meta["PC_role"] = "velocity"
    image.attribute_string = meta.serialize()
    back = image_from_v2(image_to_v2(image).value)
    assert bytes(back.getHead())[: ctypes.sizeof(ismrmrd.ImageHeader) - 4] == bytes(image.getHead())[:-4]
    assert np.array_equal(back.data, image.data)
    assert ismrmrd.Meta.deserialize(back.attribute_string)["PC_role"] == "velocity"


def test_mrd_python_phantom_reconstructs_through_run(tmp_path: Path) -> None:
    source = write_phantom(tmp_path / "phantom.bin")
    out = tmp_path / "run"
    assert (
        main(["run", "--chain", "cartesian", "--input", str(source), "--out", str(out), "--images-mrd2"]) == 0
    )
    images = images_of(read_run_images(out))
    references = reference_images(source)
    assert len(images) == len(references) == 2
    for image, reference in zip(images, references, strict=True):
        assert correlation(image, reference) >= 0.97
    with mrd.BinaryMrdReader(str(out / "images.mrd")) as reader:  # the images as MRD v2, read by mrd-python
        assert reader.read_header() is not None
        assert len(list(reader.read_data())) == 2


def test_foreign_formats_are_named_not_guessed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zipped = tmp_path / "scan.mrd"
    zipped.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    other_yardl = tmp_path / "other.bin"
    other_yardl.write_bytes(b'yardl\x01\x00\x00\x00\x20{"protocol":{"name":"Smurf"}}' + b"\0" * 8)
    for path, looks in ((zipped, "a ZIP archive"), (other_yardl, "protocol 'Smurf'")):
        status = main(["run", "--chain", "cartesian", "--input", str(path), "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert status == 2 and str(path) in err and looks in err, err


def test_cut_stream_keeps_complete_items_and_names_the_offset(tmp_path: Path) -> None:
    source = write_phantom(tmp_path / "phantom.bin", matrix=32, n_repetitions=1)
    data = source.read_bytes()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data[: len(data) * 3 // 4])
    items = list(open_raw(cut).items)
    assert isinstance(items[-1], StreamInterrupted) and "cut at byte" in items[-1].reason
    n_complete = len(items) - 1
    offset = int(items[-1].reason.split("cut at byte ")[1].split(":")[0])
    assert 0 < offset < len(data) * 3 // 4 and n_complete > 32
    converted = tmp_path / "cut.h5"
    assert main(["convert", "mrd2", str(cut), "--out", str(converted)]) == 6
    assert len([i for i in open_raw(converted).items if isinstance(i, ismrmrd.Acquisition)]) == n_complete


def test_corrupt_item_is_an_error_naming_file_and_offset(tmp_path: Path) -> None:
    source = write_phantom(tmp_path / "phantom.bin", matrix=32, n_repetitions=1)
    raw = read_mrd2(source)
    first = next(raw.items)
    assert isinstance(first, ismrmrd.Acquisition)
    list(raw.items)  # closes the file
    data = bytearray(source.read_bytes())
    marker = data.index(b'"}]}') + 4  # end of the schema JSON
    data[marker + 300] = 0x7F  # inside the header or first item: an impossible union tag or length
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputFormatError, match=r"bad\.bin: MRD v2 stream at byte \d+"):
        list(open_raw(bad).items)
