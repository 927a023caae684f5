"""``reconstream simulate mr`` as the README documents it: every protocol at both field strengths and every
cine view, run as written at reduced size; the outputs are read back and checked against the options."""

from __future__ import annotations

from pathlib import Path

import ismrmrd
import numpy as np
import pytest

from hardware_sim.mr import read_truth
from hardware_sim.mr.tissues import Tissue
from plugins.cli import main
from plugins.io.ismrmrd_files import open_raw

SMALL = ["--coils", "8", "--matrix", "64", "52", "--phases", "4", "--slices", "1"]


def _simulate(tmp_path: Path, *options: str) -> tuple[Path, Path]:
    out = tmp_path / "new_folder" / "exam.h5"
    assert main(["simulate", "mr", *options, *SMALL, "--out", str(out)]) == 0
    return out, out.with_suffix(".truth.h5")


@pytest.mark.parametrize("field", ["1.5", "3"])
@pytest.mark.parametrize("protocol", ["cine", "flow", "dixon"])
def test_every_protocol_at_both_fields(tmp_path: Path, protocol: str, field: str) -> None:
    raw_path, truth_path = _simulate(tmp_path, "--protocol", protocol, "--field", field)
    raw = open_raw(raw_path)
    assert float(raw.header.acquisitionSystemInformation.systemFieldStrength_T) == pytest.approx(float(field))
    acquisitions = [item for item in raw.items if isinstance(item, ismrmrd.Acquisition)]
    assert len(acquisitions) > 20 and all(a.data.shape == (8, 128) for a in acquisitions)
    truth = read_truth(truth_path)
    assert (truth.protocol, truth.field_strength_t) == (protocol, float(field))
    assert truth.images.shape[0] == 1 and np.abs(truth.images).max() > 0
    if protocol == "flow":  # the single plane is planned on the ascending aorta
        assert truth.aorta_mask is not None and truth.aorta_mask[0].sum() > 5


@pytest.mark.parametrize(
    ("view", "chambers"),
    [
        ("short_axis", {Tissue.LV_BLOOD, Tissue.RV_BLOOD}),
        ("four_chamber", {Tissue.LV_BLOOD, Tissue.RV_BLOOD, Tissue.LA_BLOOD, Tissue.RA_BLOOD}),
        ("three_chamber", {Tissue.LV_BLOOD, Tissue.LA_BLOOD, Tissue.LVOT_BLOOD}),
        ("two_chamber", {Tissue.LV_BLOOD, Tissue.LA_BLOOD}),
    ],
)
def test_every_cine_view(tmp_path: Path, view: str, chambers: set[Tissue]) -> None:
    _, truth_path = _simulate(tmp_path, "--protocol", "cine", "--view", view)
    truth = read_truth(truth_path)
    assert chambers <= set(np.unique(truth.labels).tolist())
