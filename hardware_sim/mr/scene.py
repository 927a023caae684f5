"""Complex transverse magnetisation of a slice on an in-plane grid, at a cardiac state.

``SignalModel`` turns a tissue and the local off-resonance into the signal of every *contrast* of
the protocol (cine: 1; flow: 2 = reference, velocity-encoded; dixon: one per echo).  ``GridScene``
paints the structures of :mod:`hardware_sim.mr.anatomy` with those signals onto a grid of points:
static structures and vessels once (``base``), the heart and the vessel velocities per call of
:meth:`GridScene.image`.  Signals scale with B0 / 1.5 T (magnetisation ∝ B0).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from hardware_sim.mr import anatomy
from hardware_sim.mr.anatomy import HeartParameters, Points
from hardware_sim.mr.config import MRExamConfig
from hardware_sim.mr.fields import b0_map_hz, eddy_current_phase_rad
from hardware_sim.mr.flow import velocity_profile_cm_per_s
from hardware_sim.mr.heart_shapes import HEART_TISSUES, structure_table
from hardware_sim.mr.paint_kernel import paint_heart
from hardware_sim.mr.signal import (
    bssfp_signal,
    fat_spectrum_factor,
    inflow_gain,
    multi_echo_gre_signal,
    spoiled_gre_signal,
)
from hardware_sim.mr.tissue_sequences import TISSUE_PROTOCOLS, SliceTiming, centre_signals
from hardware_sim.mr.tissue_states import (
    lesion_kind,
    lesion_occupancy,
    lesion_properties,
    post_contrast_properties,
)
from hardware_sim.mr.tissues import (
    FAT_PEAK_AMPLITUDES,
    FAT_RELAXATION_MS,
    Tissue,
    TissueProperties,
    fat_peak_frequencies_hz,
    tissue_properties,
)
from hardware_sim.mr.vessels import VESSEL_TREE, Vessel, axis_distance_mm, through_plane_cosine

Complex = npt.NDArray[np.complex64]
_LUT_SIZE = 512


class SignalModel:
    """Per-tissue signal of each contrast as a function of off-resonance (Hz).

    Tissue-characterisation protocols (:data:`TISSUE_PROTOCOLS`) need the slice's event train
    (``timing``, from :meth:`for_slice`): their signals come from its Bloch simulation
    (:func:`hardware_sim.mr.tissue_sequences.centre_signals`), with the lesion, gadolinium (LGE) and
    myocardial T2* override of :mod:`hardware_sim.mr.tissue_states`.
    """

    def __init__(self, config: MRExamConfig, timing: SliceTiming | None = None) -> None:
        self.config = config
        self.timing = timing
        self.protocol = config.protocol
        self.field_t = float(config.field_strength_t)
        self.tr_ms = config.effective_tr_ms
        self.flip_deg = config.effective_flip_angle_deg
        self.echo_times_ms = config.effective_echo_times_ms
        self.venc_cm_per_s = config.venc_cm_per_s
        self.slice_thickness_mm = config.slice_thickness_mm
        self.properties = tissue_properties(self.field_t)
        self.lesion = config.effective_lesion
        native = self.properties
        if self.protocol == "lge":
            self.properties = post_contrast_properties(native, self.field_t)
        if config.myocardial_t2star_ms is not None:
            myo = self.properties[Tissue.MYOCARDIUM]
            self.properties = {
                **self.properties,
                Tissue.MYOCARDIUM: replace(myo, t2star_ms=config.myocardial_t2star_ms),
            }
        kind = lesion_kind(self.lesion)
        self.lesion_properties: TissueProperties | None = None
        if kind is not None:
            lesion = lesion_properties(kind, native, self.field_t, self.protocol == "lge")
            self.lesion_properties = replace(lesion, t2star_ms=self.properties[Tissue.MYOCARDIUM].t2star_ms)
        self.scale = self.field_t / 1.5
        self.n_contrasts = {"cine": 1, "flow": 2, "dixon": len(self.echo_times_ms), "lge": 2, "molli": 8,
                            "t2map": 4, "t2star": len(self.echo_times_ms)}[self.protocol]  # fmt: skip
        self._char_tables: dict[tuple[float, float], npt.NDArray[np.complex128]] = {}
        self._char_phase_cache: tuple[npt.NDArray[np.float32], Complex] | None = None
        self._lut_period_hz = 1e3 / self.tr_ms
        self._lut_df = (np.arange(_LUT_SIZE) / _LUT_SIZE - 0.5) * self._lut_period_hz
        self._fat_peaks_hz = fat_peak_frequencies_hz(self.field_t)
        self._tables: dict[Tissue, Complex] = {}
        self._phase_cache: tuple[npt.NDArray[np.float32], Complex] | None = None

    def _bssfp_table(self, tissue: Tissue) -> Complex:
        """bSSFP signal of a tissue (water + multi-peak fat) tabulated over one off-resonance period."""
        if tissue not in self._tables:
            prop = self.properties[tissue]
            table = (1.0 - prop.fat_fraction) * bssfp_signal(
                prop.t1_ms, prop.t2_ms, self.flip_deg, self.tr_ms, self._lut_df
            )
            if prop.fat_fraction > 0.0:
                t1f, t2f, _ = FAT_RELAXATION_MS[self.field_t]
                for a, f in zip(FAT_PEAK_AMPLITUDES, self._fat_peaks_hz, strict=True):
                    table = table + prop.fat_fraction * a * bssfp_signal(
                        t1f, t2f, self.flip_deg, self.tr_ms, self._lut_df + f
                    )
            self._tables[tissue] = table.astype(np.complex64)
        return self._tables[tissue]

    def _lut_taps(
        self, df_hz: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        """(i0, i1, w) of the periodic linear interpolation over one period of off-resonance."""
        pos = (df_hz * np.float32(_LUT_SIZE / self._lut_period_hz) + np.float32(_LUT_SIZE / 2)) % np.float32(
            _LUT_SIZE
        )
        i0 = pos.astype(np.int32)
        w = pos - i0
        i1 = i0 + 1
        i1[i1 == _LUT_SIZE] = 0
        return i0, i1, w

    def _lut(self, table: Complex, df_hz: npt.NDArray[np.float32]) -> Complex:
        """Periodic linear interpolation of a table over one period of off-resonance."""
        i0, i1, w = self._lut_taps(df_hz)
        return table[i0] * (1.0 - w) + table[i1] * w

    def _off_resonance_phase(self, b0_hz: npt.NDArray[np.float32]) -> Complex:
        """exp(i2π·Δf·TE) per contrast (cached for the last B0 map seen)."""
        cached = self._phase_cache
        if cached is not None and cached[0] is b0_hz:
            return cached[1]
        tes = [self.echo_times_ms[0 if self.protocol == "flow" else c] for c in range(self.n_contrasts)]
        phase = np.stack([np.float32(2e-3 * np.pi * te) * b0_hz for te in tes])
        factor = np.empty(phase.shape, np.complex64)
        factor.real, factor.imag = np.cos(phase), np.sin(phase)
        self._phase_cache = (b0_hz, factor)  # keeps b0 alive, so identity cannot be reused
        return factor

    def for_slice(self, timing: SliceTiming | None) -> SignalModel:
        """The model of one slice (tissue-characterisation protocols: its event train), else ``self``."""
        if self.protocol not in TISSUE_PROTOCOLS:
            return self
        return SignalModel(self.config, timing)

    def _char_table(self, t1_ms: float, t2_ms: float) -> npt.NDArray[np.complex128]:
        """Centre-line signals of the slice's event train ``(n_contrasts, n_lut or 1)`` (cached)."""
        key = (t1_ms, t2_ms)
        if key not in self._char_tables:
            if self.timing is None:
                raise ValueError(f"the {self.protocol} signal needs the slice timing (SignalModel.for_slice)")
            bssfp = self.protocol in ("molli", "t2map")
            off = self._lut_df if bssfp else np.zeros(1)
            self._char_tables[key] = centre_signals(self.timing, t1_ms, t2_ms, off)
        return self._char_tables[key]

    def _lut_stack(self, tables: Complex, df_hz: npt.NDArray[np.float32]) -> Complex:
        """:meth:`_lut` of every row of ``tables`` ``(n, _LUT_SIZE)`` at once → ``(n, *df.shape)``."""
        i0, i1, w = self._lut_taps(df_hz)
        return tables[:, i0] * (1.0 - w) + tables[:, i1] * w

    def _char_component(self, t1_ms: float, t2_ms: float, t2star_ms: float, b0_hz: npt.NDArray[np.float32],
                        fat: bool) -> Complex:  # fmt: skip
        """Signal of one water or fat component ``(n_contrasts, *b0.shape)``."""
        table = self._char_table(t1_ms, t2_ms)
        if self.protocol in ("molli", "t2map"):  # all contrasts at once, one interpolation per frequency
            lut = table.astype(np.complex64)
            if not fat:
                return self._lut_stack(lut, b0_hz)
            # The table covers one period 1/TR and wraps (as the bSSFP cine LUT does); the α/2 start-up
            # makes the transient bSSFP signal not exactly 1/TR-periodic, so a fat peak beyond ±1/(2TR)
            # is an approximation (kept: the accuracy tests and their recorded figures rest on it).
            out = np.zeros((self.n_contrasts, *b0_hz.shape), np.complex64)
            for a, f in zip(FAT_PEAK_AMPLITUDES, self._fat_peaks_hz, strict=True):
                out += np.float32(a) * self._lut_stack(lut, b0_hz + np.float32(f))
            return out
        phase = self._char_phase(b0_hz)
        out = np.empty((self.n_contrasts, *b0_hz.shape), np.complex64)
        for c in range(self.n_contrasts):
            te = self.echo_times_ms[c if self.protocol == "t2star" else 0]
            value = table[0 if self.protocol == "t2star" else c, 0] * np.exp(-te / t2star_ms)
            if fat:
                value *= fat_spectrum_factor(self.field_t, te)
            np.multiply(np.complex64(value), phase[c], out=out[c])
        return out

    def _char_phase(self, b0_hz: npt.NDArray[np.float32]) -> Complex:
        """exp(i2π·Δf·TE) of every image of a GRE protocol (LGE: both images at the one TE), computed once per
        B0 map (every tissue component reuses it)."""
        cached = self._char_phase_cache
        if cached is not None and cached[0] is b0_hz:
            return cached[1]
        tes = [self.echo_times_ms[c if self.protocol == "t2star" else 0] for c in range(self.n_contrasts)]
        factor = np.stack([np.exp(1j * np.float32(2e-3 * np.pi * te) * b0_hz) for te in tes]).astype(
            np.complex64
        )
        self._char_phase_cache = (b0_hz, factor)  # keeps b0 alive, so identity cannot be reused
        return factor

    def _char_signal(self, prop: TissueProperties, b0_hz: npt.NDArray[np.float32]) -> Complex:
        amp = np.float32(prop.proton_density * self.scale)
        out = np.float32(1.0 - prop.fat_fraction) * self._char_component(
            prop.t1_ms, prop.t2_ms, prop.t2star_ms, b0_hz, fat=False
        )
        if prop.fat_fraction > 0.0:
            t1f, t2f, t2sf = FAT_RELAXATION_MS[self.field_t]
            out += np.float32(prop.fat_fraction) * self._char_component(t1f, t2f, t2sf, b0_hz, fat=True)
        return (amp * out).astype(np.complex64)

    def lesion_signal(self, b0_hz: npt.NDArray[np.float32]) -> Complex | None:
        """Signal of the lesion ``(n_contrasts, *b0.shape)``, None without one."""
        if self.lesion_properties is None:
            return None
        return self._char_signal(self.lesion_properties, b0_hz)

    def tissue_signal(self, tissue: Tissue, b0_hz: npt.NDArray[np.float32]) -> Complex:
        """Signal ``(n_contrasts, *b0.shape)`` complex64 of a tissue at each off-resonance."""
        prop = self.properties[tissue]
        if self.protocol in TISSUE_PROTOCOLS:
            return self._char_signal(prop, b0_hz)
        amp = np.float32(prop.proton_density * self.scale)
        if self.protocol == "cine":
            return (amp * self._lut(self._bssfp_table(tissue), b0_hz))[None]
        fat_relax = FAT_RELAXATION_MS[self.field_t]
        factor = self._off_resonance_phase(b0_hz)
        out = np.empty((self.n_contrasts, *b0_hz.shape), dtype=np.complex64)
        for c in range(self.n_contrasts):
            te = self.echo_times_ms[0 if self.protocol == "flow" else c]
            base = multi_echo_gre_signal(prop, fat_relax, self.field_t, self.flip_deg, self.tr_ms, te)
            out[c] = np.complex64(amp * base) * factor[c]
        return out


def blood_gre_magnitude(model: SignalModel) -> float:
    """Reference magnitude of arterial blood in the flow protocol (for tests)."""
    p = model.properties[Tissue.AORTA_BLOOD]
    return (
        p.proton_density
        * model.scale
        * spoiled_gre_signal(p.t1_ms, p.t2star_ms, model.flip_deg, model.tr_ms, 2.5)
    )


@dataclass(frozen=True)
class FlowRates:
    """Flows at one instant, ml/s in each vessel's forward direction, by flow key (see
    :class:`hardware_sim.mr.vessels.Vessel`); a missing key means no flow."""

    ml_per_s: dict[str, float] = field(default_factory=dict)

    def of(self, key: str) -> float:
        """Flow of one vessel's curve, ml/s."""
        return self.ml_per_s.get(key, 0.0)


@dataclass(frozen=True)
class VesselPixels:
    """Where a vessel crosses a grid: ``occupancy`` (*shape) float32, ``axis_r_mm`` distance to the centre
    line and ``cosine`` (forward flow · slice normal), both float32 at the pixels with occupancy > 0."""

    vessel: Vessel
    occupancy: npt.NDArray[np.float32]
    inside: npt.NDArray[np.bool_]
    axis_r_mm: npt.NDArray[np.float32]
    cosine: npt.NDArray[np.float32]


def vessel_pixels(points: Points, normal: npt.NDArray[np.float64], edge_mm: float) -> list[VesselPixels]:
    """The vessels of :data:`VESSEL_TREE` that cross a grid of patient points."""
    out = []
    for vessel in VESSEL_TREE:
        r, nearest = axis_distance_mm(vessel, points)
        occ = anatomy.occupancy(r - np.float32(vessel.radius_mm), edge_mm)
        inside = occ > 0
        if inside.any():
            cos = through_plane_cosine(vessel, nearest[inside], normal)
            out.append(VesselPixels(vessel, occ, inside, r[inside], cos))
    return out


class GridScene:
    """The painted slice on one grid of points (fine grid, box or truth grid)."""

    def __init__(
        self,
        model: SignalModel,
        points: Points,
        in_plane_mm: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]],
        slice_index: int,
        slice_normal: npt.NDArray[np.float64],
        heart: HeartParameters,
        edge_mm: float,
    ) -> None:
        self.model, self.points, self.heart, self.edge_mm = model, points, heart, edge_mm
        self._signals: dict[Tissue, Complex] = {}
        self._vessel_image: Complex | None = None
        self._heart_signals: Complex | None = None
        self._heart_flat: tuple[npt.NDArray[np.float32], ...] = ()
        self._lesion_signal: Complex | None = None
        self.b0_hz = b0_map_hz(points, model.field_t)
        self.heart_points = anatomy.to_heart_frame(points)
        self.eddy = None
        if model.protocol == "flow":
            self.eddy = np.exp(1j * eddy_current_phase_rad(*in_plane_mm, slice_index)).astype(np.complex64)
        self.base = self._paint(
            np.zeros((model.n_contrasts, *points[0].shape), np.complex64), anatomy.static_structures()
        )
        self.vessels = vessel_pixels(points, slice_normal, edge_mm)

    def _signal(self, tissue: Tissue) -> Complex:
        if tissue not in self._signals:
            self._signals[tissue] = self.model.tissue_signal(tissue, self.b0_hz)
        return self._signals[tissue]

    def _paint(
        self, image: Complex, structures: list[tuple[Tissue, anatomy.DistanceFunction]], heart: bool = False
    ) -> Complex:
        pts = self.heart_points if heart else self.points
        for tissue, distance in structures:
            occ = anatomy.occupancy(distance(pts), self.edge_mm)
            if not occ.any():
                continue
            image += occ * (self._signal(tissue) - image)
        return image

    def _through_plane(self, flows: FlowRates) -> list[npt.NDArray[np.float32]]:
        """Per vessel, the velocity along the slice normal (cm/s) at its pixels (``VesselPixels.inside``)."""
        return [
            velocity_profile_cm_per_s(flows.of(vp.vessel.flow), vp.vessel.radius_mm, vp.axis_r_mm) * vp.cosine
            for vp in self.vessels
        ]

    def velocity_cm_per_s(self, flows: FlowRates) -> npt.NDArray[np.float32]:
        """Through-plane velocity along the slice normal (cm/s) in the vessel pixels (0 elsewhere)."""
        return self._velocity_map(self._through_plane(flows))

    def _velocity_map(self, through_plane: list[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
        v = np.zeros(self.points[0].shape, np.float32)
        for vp, velocity in zip(self.vessels, through_plane, strict=True):
            v[vp.inside] = velocity
        return v

    def _with_vessels(self) -> Complex:
        if self._vessel_image is None:
            image = self.base.copy()
            for vp in self.vessels:
                image += vp.occupancy * (self._signal(vp.vessel.tissue) - image)
            self._vessel_image = image
        return self._vessel_image

    def static_image(self) -> Complex:
        """Image without the heart and without flow (the part of the slice that never changes)."""
        image = self._with_vessels().copy()
        if self.eddy is not None:
            image[1] *= self.eddy
        return image

    def _flowing(self, flows: FlowRates | None) -> Complex:
        image = self._with_vessels().copy()
        if self.model.protocol == "flow" and flows is not None:
            through_plane = self._through_plane(flows)
            self._add_inflow(image, through_plane)
            v = self._velocity_map(through_plane)
            moving = v != 0
            image[1][moving] *= np.exp(1j * np.float32(np.pi / self.model.venc_cm_per_s) * v[moving])
        return image

    def _add_inflow(self, image: Complex, through_plane: list[npt.NDArray[np.float32]]) -> None:
        """Brighten the blood of each vessel by its through-plane inflow (spoiled GRE, both encodings)."""
        m = self.model
        for vp, velocity in zip(self.vessels, through_plane, strict=True):
            t1 = m.properties[vp.vessel.tissue].t1_ms
            gain = inflow_gain(t1, m.flip_deg, m.tr_ms, m.slice_thickness_mm, velocity)
            extra = (vp.occupancy[vp.inside] * (gain - 1.0)).astype(np.float32)
            blood = self._signal(vp.vessel.tissue)
            for c in range(m.n_contrasts):
                image[c][vp.inside] += extra * blood[c][vp.inside]

    def image(self, contraction: float, flows: FlowRates | None) -> Complex:
        """``(n_contrasts, *shape)`` complex64 at a contraction state and vessel flows."""
        image = self._flowing(flows)
        if self._heart_signals is None:
            self._heart_signals = np.ascontiguousarray(
                np.stack([self._signal(t).reshape(self.model.n_contrasts, -1) for t in HEART_TISSUES])
            )
            self._heart_flat = tuple(np.ascontiguousarray(h.ravel()) for h in self.heart_points)
        geometry = anatomy.heart_geometry(self.heart, contraction)
        hu, hv, hw = self._heart_flat
        flat = image.reshape(self.model.n_contrasts, -1)
        table = structure_table(geometry)
        paint_heart(flat, hu, hv, hw, table, geometry.w_base_mm, self._heart_signals, self.edge_mm)
        self._paint_lesion(image, geometry)
        if self.eddy is not None:
            image[1] *= self.eddy
        return image

    def _paint_lesion(self, image: Complex, geometry: anatomy.HeartGeometry) -> None:
        """Replace the lesion's fraction of each point by the lesion signal (tissue characterisation)."""
        if self.model.lesion_properties is None:
            return
        if self._lesion_signal is None:
            self._lesion_signal = self.model.lesion_signal(self.b0_hz)
        occ = lesion_occupancy(self.heart_points, geometry, self.model.lesion, self.edge_mm)
        if occ.any() and self._lesion_signal is not None:
            image += occ * (self._lesion_signal - image)

    def image_reference(self, contraction: float, flows: FlowRates | None) -> Complex:
        """:meth:`image` painted with the numpy distance functions of :mod:`anatomy` (for tests)."""
        image = self._flowing(flows)
        geometry = anatomy.heart_geometry(self.heart, contraction)
        image = self._paint(image, anatomy.heart_structures(geometry), heart=True)
        self._paint_lesion(image, geometry)
        if self.eddy is not None:
            image[1] *= self.eddy
        return image
