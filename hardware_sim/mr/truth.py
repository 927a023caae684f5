"""Ground truth of a simulated exam (never given to a chain) and its HDF5 file.

Axes: S slices, P output cardiac phases (centres at cardiac fraction (p + ½)/P of a nominal beat,
``phase_fractions``), E echoes, C coils, (Y, X) = (n_phase_encodes, n_readout) recon grid.  Images are
the noise-free transverse magnetisation (water M0 = 1 at 1.5 T, scaled by B0/1.5 T) without coil
weighting, band-limited exactly as a fully sampled recon sees it; a recon that normalises its coil
maps returns ``image · coil_rss`` up to one complex scale.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class MRTruth:
    """Ground truth; shapes and units per field.

    protocol: "cine" | "flow" | "dixon"; field_strength_t: B0 (T).
    phase_fractions: (P,) float64, cardiac fraction of each output phase centre.
    images: cine (S, P, Y, X), flow (S, 2, P, Y, X) [set 0 reference, set 1 velocity encoded, incl.
        the eddy-current phase], dixon (S, E, Y, X) at end-diastole; complex64, a.u.
    coil_maps: (S, C, Y, X) complex64 true sensitivities; coil_rss: (S, Y, X) float32 √Σ|C|².
    b0_map_hz: (S, Y, X) float32 off-resonance (Hz).
    body_mask: (S, Y, X) bool; labels: (S, P, Y, X) uint8 (:class:`~hardware_sim.mr.tissues.Tissue`).
    lv_mask, rv_mask: (S, P, Y, X) bool (blood pools, occupancy > ½; papillary muscles and trabeculae
        are myocardium); lv_myocardium_mask: (S, P, Y, X) bool LV myocardium incl. septum.
    lv_volume_ml, rv_volume_ml: (P,) float64 3-D blood-pool volumes of the model (ml, numerical, the
        ventricle below the base plane); lv_myocardium_volume_ml (P,) float64.
    lv_volume_stack_ml, rv_volume_stack_ml: (P,) float64 disc summation of the masks over the planned
        short-axis stack (Σ area × thickness; zeros for other protocols/views).
    lv_edv_ml, lv_esv_ml, rv_edv_ml, rv_esv_ml: volumes at contraction 0 / 1 of a normal beat (ml);
        lv_mass_g: LV myocardial mass at end-diastole (1.05 g/ml); mitral_regurgitant_ml: mitral
        regurgitant volume per beat (ml; LV stroke volume − aortic forward volume).
    Flow curves (cine and flow; (P,) float64 ml/s in the vessel's forward direction, else None):
        aorta_flow_ml_per_s, pa_flow_ml_per_s, descending_aorta_flow_ml_per_s,
        mitral_flow_ml_per_s, tricuspid_flow_ml_per_s, svc_flow_ml_per_s, ivc_flow_ml_per_s.
    end_diastolic_phase, end_systolic_phase: phase indices of max / min LV volume.
    r_wave_times_s: (B+1,) float64; rr_s: (B,) float64; ectopic_beats: (B,) bool.
    noise_covariance: (C, C) complex128 per k-space sample.
    slice_positions_mm, read_dirs, phase_dirs, slice_dirs: (S, 3) float64, LPS.
    time_stamp_origin_ticks: acquisition_time_stamp of exam time 0 (times above are s since then).
    Flow only (else None): velocity_cm_per_s (S, P, Y, X) float32 along the slice normal;
        eddy_phase_rad (S, Y, X) float32; aorta_mask, pa_mask (S, Y, X) bool lumen of the ascending aorta
        (without the arch) and of the pulmonary trunk (without its branches);
        aorta_forward_ml, aorta_regurgitant_ml, aorta_net_ml, pa_stroke_ml, qp_qs (float);
        aorta_peak_velocity_cm_per_s, pa_peak_velocity_cm_per_s (float, over a nominal beat).
    Dixon only (else None): water, fat (S, Y, X) float32 T1-weighted signals at TE = 0;
        fat_fraction (S, Y, X) float32 signal fat fraction; pdff (S, Y, X) float32 proton-density
        fat fraction (0 outside the body).
    Tissue characterisation (lge, molli, t2map, t2star; else None): images (S, E, Y, X) at the diastolic
        state the heart is frozen in, E = images of the series (LGE: 0 IR, 1 PSIR reference; MOLLI: in
        acquisition order; T2 map: per T2 preparation; T2*: per echo); t1_map_ms, t2_map_ms,
        t2star_map_ms (S, Y, X) float32 true relaxation times of the majority tissue of each pixel (LGE:
        after gadolinium; 0 in air); lesion_mask (S, Y, X) bool (lesion occupancy > ½); lesion: the lesion
        kind ("none", "subendocardial_scar", "transmural_scar", "oedema"); image_ti_ms (S, E) float64 time
        from the last preparation to each image's k-space centre line (MOLLI/LGE: the true TI; NaN none).
    """

    protocol: str
    field_strength_t: float
    phase_fractions: Array
    images: Array
    coil_maps: Array
    coil_rss: Array
    b0_map_hz: Array
    body_mask: Array
    labels: Array
    lv_mask: Array
    rv_mask: Array
    lv_volume_ml: Array
    rv_volume_ml: Array
    end_diastolic_phase: int
    end_systolic_phase: int
    r_wave_times_s: Array
    rr_s: Array
    ectopic_beats: Array
    noise_covariance: Array
    slice_positions_mm: Array
    read_dirs: Array
    phase_dirs: Array
    slice_dirs: Array
    time_stamp_origin_ticks: int
    lv_myocardium_mask: Array | None = None
    lv_myocardium_volume_ml: Array | None = None
    lv_volume_stack_ml: Array | None = None
    rv_volume_stack_ml: Array | None = None
    lv_edv_ml: float | None = None
    lv_esv_ml: float | None = None
    rv_edv_ml: float | None = None
    rv_esv_ml: float | None = None
    lv_mass_g: float | None = None
    mitral_regurgitant_ml: float | None = None
    descending_aorta_flow_ml_per_s: Array | None = None
    mitral_flow_ml_per_s: Array | None = None
    tricuspid_flow_ml_per_s: Array | None = None
    svc_flow_ml_per_s: Array | None = None
    ivc_flow_ml_per_s: Array | None = None
    velocity_cm_per_s: Array | None = None
    eddy_phase_rad: Array | None = None
    aorta_mask: Array | None = None
    pa_mask: Array | None = None
    aorta_flow_ml_per_s: Array | None = None
    pa_flow_ml_per_s: Array | None = None
    aorta_forward_ml: float | None = None
    aorta_regurgitant_ml: float | None = None
    aorta_net_ml: float | None = None
    pa_stroke_ml: float | None = None
    qp_qs: float | None = None
    aorta_peak_velocity_cm_per_s: float | None = None
    pa_peak_velocity_cm_per_s: float | None = None
    water: Array | None = None
    fat: Array | None = None
    fat_fraction: Array | None = None
    pdff: Array | None = None
    lesion: str = "none"
    t1_map_ms: Array | None = None
    t2_map_ms: Array | None = None
    t2star_map_ms: Array | None = None
    lesion_mask: Array | None = None
    image_ti_ms: Array | None = None

    def __post_init__(self) -> None:
        n_slices, n_y, n_x = self.coil_rss.shape
        if self.coil_maps.shape[0] != n_slices or self.coil_maps.shape[-2:] != (n_y, n_x):
            raise ValueError("coil_maps and coil_rss disagree")
        if self.images.shape[0] != n_slices or self.images.shape[-2:] != (n_y, n_x):
            raise ValueError(f"images shape {self.images.shape} does not match the recon grid")
        if self.labels.shape != self.lv_mask.shape or self.labels.shape[0] != n_slices:
            raise ValueError("labels and lv_mask disagree")
        n_coils = self.coil_maps.shape[1]
        if self.noise_covariance.shape != (n_coils, n_coils):
            raise ValueError("noise covariance does not match the coils")


def write_truth(truth: MRTruth, path: Path) -> None:
    """Write the truth to an HDF5 file: arrays as datasets, scalars as attributes."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "reconstream.mr_truth.v1"
        for fld in dataclasses.fields(truth):
            value = getattr(truth, fld.name)
            if value is None:
                continue
            if isinstance(value, np.ndarray):
                f.create_dataset(fld.name, data=value, compression="gzip" if value.size > 4096 else None)
            else:
                f.attrs[fld.name] = value


def read_truth(path: Path) -> MRTruth:
    """Load a truth file written by :func:`write_truth`."""
    values: dict[str, object] = {}
    with h5py.File(path, "r") as f:
        for fld in dataclasses.fields(MRTruth):
            if fld.name in f:
                values[fld.name] = np.asarray(f[fld.name][()])
            elif fld.name in f.attrs:
                raw = f.attrs[fld.name]
                values[fld.name] = raw.item() if isinstance(raw, np.generic) else raw
    values["protocol"] = str(values["protocol"])
    values["lesion"] = str(values.get("lesion", "none"))
    return MRTruth(**values)  # type: ignore[arg-type]
