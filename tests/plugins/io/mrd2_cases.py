"""MRD v2 test data made by mrd-python's own tools (``mrd.tools.phantom``), and the plain reference recon.

The reference never uses this project's code: it reads the file with ``mrd.BinaryMrdReader``, fills
k-space by the encoding counters, applies an inverse 2-D FFT, crops the readout oversampling and takes the
root-sum-of-squares over coils.
"""

from __future__ import annotations

from pathlib import Path

import ismrmrd
import mrd
import numpy as np
from mrd.tools import phantom

MATRIX = 64
N_COILS = 4
N_REPETITIONS = 2


def write_phantom(path: Path, matrix: int = MATRIX, n_repetitions: int = N_REPETITIONS) -> Path:
    """A Shepp-Logan MRD v2 stream by ``mrd.tools.phantom.generate`` (noise scans, 2× readout oversampling)."""
    with path.open("wb") as fh:
        phantom.generate(fh, matrix, N_COILS, 2, n_repetitions, 0.05)
    return path


def reference_images(path: Path) -> list[np.ndarray]:
    """Per repetition: ``(y, x)`` RSS of the inverse FFT of the file's k-space (oversampling cropped)."""
    with mrd.BinaryMrdReader(str(path)) as reader:
        header = reader.read_header()
        assert header is not None
        enc = header.encoding[0]
        n_ky = enc.encoded_space.matrix_size.y
        kspace: dict[int, np.ndarray] = {}
        for item in reader.read_data():
            acq = item.value
            if acq.head.flags & mrd.AcquisitionFlags.IS_NOISE_MEASUREMENT:
                continue
            rep = acq.head.idx.repetition or 0
            k = kspace.setdefault(rep, np.zeros((acq.data.shape[0], n_ky, acq.data.shape[1]), np.complex64))
            k[:, acq.head.idx.kspace_encode_step_1, :] = acq.data
    out = []
    for rep in sorted(kspace):
        coil_images = np.fft.fftshift(
            np.fft.ifft2(np.fft.ifftshift(kspace[rep], axes=(-2, -1)), axes=(-2, -1)), axes=(-2, -1)
        )
        n_x, n_recon = coil_images.shape[-1], enc.recon_space.matrix_size.x
        start = (n_x - n_recon) // 2
        out.append(np.sqrt((np.abs(coil_images[..., start : start + n_recon]) ** 2).sum(axis=0)))
    return out


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two images' pixels."""
    return float(np.corrcoef(np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel())[0, 1])


def images_of(images: list[ismrmrd.Image]) -> list[np.ndarray]:
    """``(y, x)`` pixels of 2-D images in the order given."""
    return [np.asarray(im.data, dtype=np.float64).reshape(im.data.shape[-2:]) for im in images]


def read_run_images(folder: Path) -> list[ismrmrd.Image]:
    """The images a run wrote to ``folder/images.h5``."""
    dset = ismrmrd.Dataset(str(folder / "images.h5"), "dataset", create_if_needed=False)
    try:
        groups = sorted(g for g in dset.list() if g.startswith("image_"))
        return [dset.read_image(g, i) for g in groups for i in range(dset.number_of_images(g))]
    finally:
        dset.close()
