"""BART interoperability of the benchmark's reference helper (``benchmarks/bart_reference.py``).

The ``.cfl`` writer/reader round trip and the cine ↔ BART axis mapping run everywhere; the checks that
``bart fft -u`` (unitary, centred) equals ``recon.common.fft.fftc`` / ``ifftc`` and that ``bart ecalib`` +
``bart pics`` unfold a small fully determined case run only where Debian's ``bart`` is installed.
Tolerances fixed before running: complex64 round trip bit-exact; FFTs within 1e-5 of the norm.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.bart_reference import (
    bart_executable,
    bart_sense,
    bart_to_cine_images,
    calibration_kspace,
    cine_to_bart,
    read_cfl,
    run_bart,
    write_cfl,
)
from recon.common.fft import fftc, ifftc

needs_bart = pytest.mark.skipif(bart_executable() is None, reason="Debian's bart is not installed")


def _random(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def test_cfl_round_trip_is_exact_and_column_major(tmp_path: Path) -> None:
    x = _random((3, 4, 1, 5), seed=1)
    write_cfl(tmp_path / "x", x)
    assert (tmp_path / "x.hdr").read_text().splitlines()[1].split()[:5] == ["3", "4", "1", "5", "1"]
    raw = np.fromfile(tmp_path / "x.cfl", dtype=np.complex64)
    assert raw[1] == x[1, 0, 0, 0] and raw[3] == x[0, 1, 0, 0]  # first dimension fastest
    back = read_cfl(tmp_path / "x")
    assert back.shape == (3, 4, 1, 5, *([1] * 12))
    np.testing.assert_array_equal(back[:, :, :, :, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], x)


def test_read_cfl_rejects_a_size_mismatch(tmp_path: Path) -> None:
    write_cfl(tmp_path / "x", _random((4, 4), seed=2))
    (tmp_path / "x.hdr").write_text("# Dimensions\n4 5\n")
    with pytest.raises(ValueError, match="header says"):
        read_cfl(tmp_path / "x")


def test_cine_axes_map_to_bart_dims_and_back(tmp_path: Path) -> None:
    kspace = _random((7, 3, 6, 5), seed=3)  # (phases, coils, ky, kx)
    b = cine_to_bart(kspace)
    assert b.shape == (5, 6, 1, 3, 1, 1, 1, 1, 1, 1, 7)
    assert b[4, 2, 0, 1, 0, 0, 0, 0, 0, 0, 6] == kspace[6, 1, 2, 4]
    write_cfl(tmp_path / "k", b)
    # the file holds the C-order bytes of the cine array: no reordering is needed on either side
    np.testing.assert_array_equal(np.fromfile(tmp_path / "k.cfl", dtype=np.complex64), kspace.ravel())
    one_coil = cine_to_bart(kspace[:, :1])
    np.testing.assert_array_equal(bart_to_cine_images(read_cfl_like(one_coil)), kspace[:, 0])


def read_cfl_like(b: np.ndarray) -> np.ndarray:
    """``b`` padded to 16 dims in Fortran order, as :func:`read_cfl` returns it."""
    return b.reshape([*b.shape, *([1] * (16 - b.ndim))], order="F")


def test_calibration_kspace_places_the_block() -> None:
    block = _random((2, 4, 6), seed=4)
    out = calibration_kspace(block, 3, 10)
    assert out.shape == (1, 2, 10, 6)
    np.testing.assert_array_equal(out[0, :, 3:7], block)
    assert not out[0, :, :3].any() and not out[0, :, 7:].any()
    with pytest.raises(ValueError, match="outside"):
        calibration_kspace(block, 8, 10)


@needs_bart
@pytest.mark.parametrize("shape", [(6, 8), (5, 7), (16, 12)])
def test_bart_fft_equals_centred_orthonormal_fft(tmp_path: Path, shape: tuple[int, int]) -> None:
    x = _random(shape, seed=5)  # (y, x) → BART [x, y]
    write_cfl(tmp_path / "x", x.T)
    run_bart(["fft", "-u", "3", "x", "k"], tmp_path)
    run_bart(["fft", "-u", "-i", "3", "x", "ik"], tmp_path)
    k = read_cfl(tmp_path / "k").reshape(shape[::-1], order="F").T
    ik = read_cfl(tmp_path / "ik").reshape(shape[::-1], order="F").T
    scale = float(np.linalg.norm(x))
    assert np.linalg.norm(k - fftc(torch.from_numpy(x)).numpy()) <= 1e-5 * scale
    assert np.linalg.norm(ik - ifftc(torch.from_numpy(x)).numpy()) <= 1e-5 * scale


@needs_bart
def test_bart_sense_recovers_a_fully_sampled_series() -> None:
    """Fully sampled, noise-free, 4 coils: ``pics`` with a tiny λ returns ρ·(Σ|C|²)^½ up to ESPIRiT's
    phase, so |x̂| matches the root-sum-of-squares coil combination inside the object (within 2 %)."""
    ny, nx, n_phases = 24, 20, 3
    yy, xx = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    disc = ((yy / 0.7) ** 2 + (xx / 0.6) ** 2 <= 1.0).astype(np.float64)
    frames = np.stack([disc * (1.0 + 0.3 * p * np.exp(-((yy - 0.2) ** 2 + xx**2) / 0.05)) for p in range(3)])
    centres = [(-1.2, -1.2), (-1.2, 1.2), (1.2, -1.2), (1.2, 1.2)]
    maps = np.stack([np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0 + 1j * cx * yy) for cy, cx in centres])
    coil_images = torch.from_numpy(frames[:, None] * maps[None])
    kspace = fftc(coil_images).numpy().astype(np.complex64)
    calib = calibration_kspace(kspace.mean(axis=0)[:, ny // 2 - 6 : ny // 2 + 6], ny // 2 - 6, ny)
    result = bart_sense(kspace, calib, 1e-4, 30)
    assert result.images.shape == (n_phases, ny, nx)
    rss = np.sqrt((np.abs(coil_images.numpy()) ** 2).sum(axis=1))
    inside = (disc > 0) & (np.abs(yy) < 0.6) & (np.abs(xx) < 0.5)
    estimate, truth = np.abs(result.images)[:, inside], rss[:, inside]
    scale = float((estimate * truth).sum() / (estimate**2).sum())
    assert np.linalg.norm(scale * estimate - truth) <= 0.02 * np.linalg.norm(truth)
    assert result.ecalib_s > 0.0 and result.pics_s > 0.0
