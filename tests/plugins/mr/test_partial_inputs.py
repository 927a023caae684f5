"""Partial data are still data: a Dixon exam cut inside a slice gives the complete slices' images and
names the cut slice (the μ-map then lacks it, and says so downstream)."""

from __future__ import annotations

import json
from pathlib import Path

import ismrmrd
import pytest

from plugins.io.protocol import encode_message
from plugins.runtime.chain import parse_chain
from plugins.runtime.items import StreamInterrupted
from plugins.runtime.session import run_to_folder

DIXON_TOML = """
description = "Dixon images only (the MR part of the petmr chain)"
[[stage]]
plugin = "cine_noise_adjust"
[[stage]]
plugin = "cine_remove_oversampling"
[[stage]]
plugin = "dixon_recon"
"""


def test_dixon_cut_inside_a_slice_reconstructs_the_complete_slices(tmp_path: Path) -> None:
    pytest.importorskip("hardware_sim.mr.exam")
    from hardware_sim.mr import MRExamConfig, simulate_exam

    exam = simulate_exam(
        MRExamConfig(protocol="dixon", n_slices=3, n_coils=8, n_readout=48, n_phase_encodes=48, seed=5)
    )
    items = list(exam.items())
    in_slice_2 = [
        i
        for i, item in enumerate(items)
        if isinstance(item, ismrmrd.Acquisition) and int(item.idx.slice) == 2
    ]
    cut = in_slice_2[len(in_slice_2) // 2]
    assert len(encode_message(items[cut])) > 0
    marker = StreamInterrupted("test: cut inside slice 2", cut)
    summary = run_to_folder(
        parse_chain(DIXON_TOML, name="dixon", source="test"),
        [*items[:cut], marker],
        tmp_path / "out",
        header=exam.header,
        device="cpu",
    )
    assert summary.interrupted == "test: cut inside slice 2"
    (unit,) = summary.incomplete
    assert unit["stage"] == "dixon_recon" and unit["kind"] == "slice" and unit["index"] == 2
    note = json.loads((tmp_path / "out" / "incomplete.json").read_text())
    assert note["incomplete_units"][0]["index"] == 2
    dataset = ismrmrd.Dataset(str(tmp_path / "out" / "images.h5"), "dataset", create_if_needed=False)
    try:
        slices = {
            int(dataset.read_image(group, k).slice)
            for group in dataset.list()
            if group.startswith("image_")
            for k in range(dataset.number_of_images(group))
        }
    finally:
        dataset.close()
    assert slices == {0, 1}


def test_a_chain_that_accepts_none_of_the_input_is_an_error_naming_both(tmp_path: Path) -> None:
    """PET list mode given to the cine chain: not "0 images" and exit 0, but a one-line error."""
    import numpy as np

    from plugins.runtime.chain import load_chain
    from plugins.runtime.session import NothingAccepted
    from recon.tof.listmode import ListModeBatch

    batch = ListModeBatch(
        np.arange(4, dtype=np.int32),
        np.arange(4, dtype=np.int32) + 600,
        np.zeros(4, np.int16),
        np.ones(4, bool),
        np.arange(4, dtype=np.uint32),
        "small",
        0,
        True,
    )
    with pytest.raises(NothingAccepted) as caught:
        run_to_folder(load_chain("cine"), [batch, batch], tmp_path / "out", device="cpu")
    text = str(caught.value)
    assert text.startswith("chain 'cine': no stage accepted any input item (arrived: ListModeBatch ×2;")
    assert "Acquisition" in text and "\n" not in text
