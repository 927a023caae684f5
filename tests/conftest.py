"""Shared fixtures: seeded generators, a CUDA skip marker."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest
import torch


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def torch_gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture(scope="session", autouse=True)
def _empty_pet_calibration_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test reads the PET calibration files of the machine it runs on (``calibration_file = "auto"``)."""
    from plugins.pet.calibration_file import CALIBRATION_DIR_ENV

    before = os.environ.get(CALIBRATION_DIR_ENV)
    os.environ[CALIBRATION_DIR_ENV] = str(tmp_path_factory.mktemp("pet_calibration"))
    yield
    if before is None:
        os.environ.pop(CALIBRATION_DIR_ENV, None)
    else:
        os.environ[CALIBRATION_DIR_ENV] = before
