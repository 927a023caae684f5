"""Reading an ISMRMRD HDF5 dataset: the project's block reader against the ``ismrmrd`` package's row reader.

2 000 acquisitions of 16 coils × 384 samples (a cine slice's worth of readouts).  ``ratio`` = our read time /
the library's ``Dataset.read_acquisition`` loop over the same file, timed in the same run (below 1: faster).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ismrmrd
import numpy as np
import pytest

from benchmarks.conftest import record_ratio
from plugins.io.ismrmrd_files import open_raw, write_raw
from tests.plugins.io.test_ismrmrd_files import make_header

N_ACQUISITIONS, N_COILS, N_SAMPLES = 2000, 16, 384


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    acqs = []
    for i in range(N_ACQUISITIONS):
        data = rng.standard_normal((N_COILS, N_SAMPLES)) + 1j * rng.standard_normal((N_COILS, N_SAMPLES))
        acq = ismrmrd.Acquisition.from_array(data.astype(np.complex64))
        acq.acquisition_time_stamp = i
        acqs.append(acq)
    path = tmp_path_factory.mktemp("io") / "raw.h5"
    write_raw(path, make_header(), acqs)
    return path


def _library_read(path: Path) -> int:
    dset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    try:
        return sum(1 for i in range(dset.number_of_acquisitions()) if dset.read_acquisition(i) is not None)
    finally:
        dset.close()


def test_read_hdf5_dataset(benchmark: Any, dataset: Path) -> None:
    n = benchmark.pedantic(lambda: sum(1 for _ in open_raw(dataset).items), rounds=3, warmup_rounds=1)
    assert n == N_ACQUISITIONS
    record_ratio(benchmark, lambda: _library_read(dataset), "ismrmrd.Dataset.read_acquisition loop", rounds=3)
    benchmark.extra_info["per_acquisition_us"] = benchmark.stats.stats.median / N_ACQUISITIONS * 1e6
