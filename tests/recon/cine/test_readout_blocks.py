"""Block kernels of the streaming readout stages against their definitions in recon.cine.noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.cine.noise import prewhiten, remove_readout_oversampling
from recon.cine.readout_blocks import OversamplingRemover, whiten_block

RTOL = 2e-6  # complex64 rounding, relative to the largest value of the block


def _complex(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def test_whiten_block_is_prewhiten_of_every_readout() -> None:
    rng = np.random.default_rng(0)
    w = np.tril(_complex(rng, 8, 8)) + 3 * np.eye(8, dtype=np.complex64)
    readouts = _complex(rng, 5, 8, 64)
    out = whiten_block(w, np.stack(list(readouts), axis=1))
    expected = prewhiten(torch.from_numpy(readouts), torch.from_numpy(w), coil_dim=-2).numpy()
    assert out.shape == (8, 5, 64)
    assert np.abs(out.transpose(1, 0, 2) - expected).max() <= RTOL * np.abs(expected).max()


SPLITS = (1, 2, 3, 5, 7, 16)  # readouts per block; a block holds what has arrived, so its size varies


@pytest.mark.parametrize(("n_coils", "n_samples"), [(4, 128), (16, 384)])
def test_whitened_readout_bits_do_not_depend_on_its_block(n_coils: int, n_samples: int) -> None:
    """A replayed session must reproduce the served images bit for bit, although its blocks differ (the
    4-coil case differed in the last bit with one product per block)."""
    rng = np.random.default_rng(n_coils)
    w = np.tril(_complex(rng, n_coils, n_coils)) + 3 * np.eye(n_coils, dtype=np.complex64)
    readouts = _complex(rng, 48, n_coils, n_samples)
    whole = whiten_block(w, np.stack(list(readouts), axis=1))
    for size in SPLITS:
        parts = [whiten_block(w, np.stack(list(readouts[i : i + size]), axis=1)) for i in range(0, 48, size)]
        assert np.array_equal(np.concatenate(parts, axis=1), whole), f"blocks of {size} readouts"


@pytest.mark.parametrize(("n_coils", "n_samples"), [(4, 128), (16, 384)])
def test_cropped_readout_bits_do_not_depend_on_its_block(n_coils: int, n_samples: int) -> None:
    rng = np.random.default_rng(n_samples)
    readouts = list(_complex(rng, 48, n_coils, n_samples))
    remover = OversamplingRemover(n_samples, 2)
    whole = remover(readouts)
    for size in SPLITS:
        parts = [remover(readouts[i : i + size]) for i in range(0, 48, size)]
        assert np.array_equal(np.concatenate(parts), whole), f"blocks of {size} readouts"


@pytest.mark.parametrize(("n_samples", "factor"), [(384, 2), (512, 2), (96, 4), (12, 3), (10, 2), (9, 3)])
def test_oversampling_remover_is_the_definition(n_samples: int, factor: int) -> None:
    rng = np.random.default_rng(n_samples)
    remover = OversamplingRemover(n_samples, factor, max_plans=2)
    for n_readouts in (4, 1, 12, 4, 7):  # more block sizes than plans: plans are rebuilt, never mixed up
        block = _complex(rng, n_readouts, 3, n_samples)
        expected = remove_readout_oversampling(torch.from_numpy(block).to(torch.complex128), factor).numpy()
        out = remover(list(block))
        assert out.shape == (n_readouts, 3, n_samples // factor) and out.dtype == np.complex64
        assert np.abs(out - expected).max() <= RTOL * np.abs(expected).max()
    assert remover.fast == (n_samples % 2 == 0 and (n_samples // factor) % 2 == 0)


def test_oversampling_remover_refuses_a_length_the_factor_does_not_divide() -> None:
    with pytest.raises(ValueError, match="not divisible"):
        OversamplingRemover(10, 3)
    with pytest.raises(ValueError, match=r"\(coils, 8\)"):
        OversamplingRemover(8, 2)([np.zeros((2, 6), np.complex64)])
