"""Synthetic ISMRMRD inputs for the flow plugin tests: header and complex image pairs (closed form)."""

from __future__ import annotations

import math

import ismrmrd
import ismrmrd.xsd
import numpy as np

from tests.recon.phasecontrast.pc_synthetic import synthetic_series


def flow_header(
    venc_xml: str = "<userParameterDouble><name>VENC_cm_per_s</name><value>150</value></userParameterDouble>",
    n_phases: int = 20,
    fov_mm: float = 128.0,
    matrix: int = 64,
) -> ismrmrd.xsd.ismrmrdHeader:
    """A schema-valid header with the flow user parameters given as XML (empty string: none)."""
    xml = f"""<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">
  <acquisitionSystemInformation><systemFieldStrength_T>1.5</systemFieldStrength_T></acquisitionSystemInformation>
  <experimentalConditions><H1resonanceFrequency_Hz>63870000</H1resonanceFrequency_Hz></experimentalConditions>
  <encoding>
    <encodedSpace><matrixSize><x>{2 * matrix}</x><y>{matrix}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>{2 * fov_mm}</x><y>{fov_mm}</y><z>8</z></fieldOfView_mm></encodedSpace>
    <reconSpace><matrixSize><x>{matrix}</x><y>{matrix}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>{fov_mm}</x><y>{fov_mm}</y><z>8</z></fieldOfView_mm></reconSpace>
    <encodingLimits>
      <phase><minimum>0</minimum><maximum>{n_phases - 1}</maximum><center>0</center></phase>
      <set><minimum>0</minimum><maximum>1</maximum><center>0</center></set>
    </encodingLimits>
    <trajectory>cartesian</trajectory>
  </encoding>
  <userParameters>{venc_xml}<userParameterLong><name>flow_direction</name><value>1</value></userParameterLong></userParameters>
</ismrmrdHeader>"""
    return ismrmrd.xsd.CreateFromDocument(xml)


def axial_geometry(image: ismrmrd.Image) -> None:
    """Axial slice at the isocentre: x along L, y along P, normal +z (head) in LPS."""
    image.read_dir = (1.0, 0.0, 0.0)
    image.phase_dir = (0.0, 1.0, 0.0)
    image.slice_dir = (0.0, 0.0, 1.0)
    image.field_of_view = (128.0, 128.0, 8.0)


def complex_pair_images(
    data: dict[str, np.ndarray],
    venc_cm_per_s: float,
    rng: np.random.Generator,
    noise: float = 0.0,
    slice_index: int = 0,
) -> list[ismrmrd.Image]:
    """Coil-combined complex images of set 0 and set 1 per phase, interleaved as a recon would emit them.

    The reference carries an arbitrary smooth object phase, the encoded image adds π·v/VENC.
    """
    n_phases, ny, nx = data["velocity"].shape
    yy, xx = np.mgrid[0:ny, 0:nx] / max(ny, nx)
    object_phase = 1.3 * yy - 0.8 * xx + 0.4
    images = []
    for p in range(n_phases):
        mag = data["magnitude"][p]
        ref = mag * np.exp(1j * object_phase)
        enc = ref * np.exp(1j * math.pi * data["velocity"][p] / venc_cm_per_s)
        for set_index, pixels in ((0, ref), (1, enc)):
            noisy = pixels + noise * (rng.standard_normal((ny, nx)) + 1j * rng.standard_normal((ny, nx)))
            im = ismrmrd.Image.from_array(noisy.astype(np.complex64)[None, None], transpose=False)
            im.slice, im.phase, im.set = slice_index, p, set_index
            axial_geometry(im)
            images.append(im)
    return images


def two_vessel_series(seed: int, n_phases: int = 20, noise_cm_per_s: float = 1.5) -> dict[str, np.ndarray]:
    """Ascending-aorta-like vessel (cranial, +) and a descending one (caudal, −) with a background offset."""
    vessels = ((24.0, 26.0, 6.0, 110.0, 0.1), (44.0, 40.0, 4.5, -70.0, 0.0))
    return synthetic_series(
        np.random.default_rng(seed),
        n_phases=n_phases,
        vessels=vessels,
        noise_cm_per_s=noise_cm_per_s,
        non_polynomial_cm_per_s=0.2,
    )
