"""Configuration of one simulated MR exam (a pydantic model: typed, validated, documented).

Every field has a unit in its name or description, a default and an allowed range.  Fields whose
sensible default depends on the protocol (TR, flip angle, echo times, field of view) default to
``None`` and are resolved by the ``effective_*`` properties.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hardware_sim.mr.anatomy import HeartParameters
from hardware_sim.mr.tissue_sequences import (
    ECHO_TIME_MS,
    FLIP_DEG,
    PIXEL_BANDWIDTH_HZ,
    T2STAR_ECHO_TIMES_MS,
    TISSUE_PROTOCOLS,
    TR_MS,
    VIEWS_PER_SEGMENT,
)

Protocol = Literal["cine", "flow", "dixon", "lge", "molli", "t2map", "t2star"]
Lesion = Literal["none", "subendocardial_scar", "transmural_scar", "oedema"]
MID_VENTRICULAR_STACK_START_MM = 30.0
"""Default first-slice offset of the tissue-characterisation protocols: one mid-ventricular short axis."""
DEFAULT_LESION = {"lge": "subendocardial_scar", "t2map": "oedema"}
View = Literal["short_axis", "four_chamber", "three_chamber", "two_chamber"]


class MRExamConfig(BaseModel):
    """Everything that defines a simulated exam; deterministic for a given ``seed``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    protocol: Protocol = Field(
        "cine",
        description="cine (bSSFP), flow (phase contrast), dixon (multi-echo GRE), lge (IR FLASH with PSIR "
        "reference, post-gadolinium), molli (5(3)3 T1 mapping), t2map (T2-prepared bSSFP), t2star (multi-echo GRE)",
    )
    field_strength_t: Literal[1.5, 3.0] = Field(1.5, description="main field B0 in tesla")  # type: ignore[valid-type]
    n_slices: int = Field(
        12,
        ge=1,
        le=64,
        description="number of 2D slices (default by protocol: cine short axis covers mitral annulus to apex "
        "= 11 at 8 mm, long-axis view 1; flow 2 planes = ascending aorta + pulmonary trunk; dixon 12)",
    )
    view: View = Field(
        "short_axis",
        description="cine orientation planned from the LV long axis: short_axis stack, four_chamber, "
        "three_chamber (LVOT) or two_chamber",
    )
    n_coils: int = Field(16, ge=8, le=32, description="number of receive channels")
    acceleration: int = Field(2, ge=1, le=8, description="undersampling factor R along phase encode")
    n_calibration_lines: int = Field(24, ge=0, le=64, description="fully sampled central ky lines (ACS)")
    undersampling: Literal["regular", "variable_density"] = Field(
        "regular",
        description="regular (GRAPPA/SENSE) or pseudo-random variable density changing per frame (CS)",
    )
    n_readout: int = Field(
        192, ge=16, le=512, description="recon matrix along readout (raw has oversampling×)"
    )
    n_phase_encodes: int = Field(156, ge=16, le=512, description="phase-encode lines of the full k-space")
    readout_oversampling: Literal[2] = Field(
        2, description="readout oversampling factor (raw samples per recon column)"
    )
    partial_fourier: float = Field(
        1.0, ge=0.625, le=1.0, description="fraction of ky acquired (early lines omitted)"
    )
    n_phases: int = Field(
        25, ge=1, le=100, description="cardiac phases announced to the recon (retrospective)"
    )
    heart_rate_bpm: float = Field(60.0, ge=30.0, le=180.0, description="mean heart rate in beats per minute")
    rr_variability_percent: float = Field(
        2.0, ge=0.0, le=30.0, description="beat-to-beat RR std (percent of mean)"
    )
    arrhythmia: Literal["none", "ectopic", "afib"] = Field("none", description="rhythm disturbance")
    ectopic_fraction: float = Field(
        0.1, ge=0.0, le=0.5, description="fraction of premature beats (ectopic only)"
    )
    tr_ms: float | None = Field(
        None, gt=1.0, le=20.0, description="repetition time in ms (None: protocol default)"
    )
    flip_angle_deg: float | None = Field(
        None, gt=0.0, le=90.0, description="flip angle in degrees (None: default)"
    )
    venc_cm_per_s: float = Field(150.0, ge=10.0, le=600.0, description="velocity encoding (flow) in cm/s")
    n_echoes: int = Field(2, ge=2, le=3, description="echoes per TR (dixon)")
    echo_times_ms: tuple[float, ...] | None = Field(
        None, description="dixon echo times in ms (None: opposed/in-phase)"
    )
    stroke_volume_ml: float = Field(
        70.0, ge=20.0, le=150.0, description="net systemic stroke volume Qs per beat, ml"
    )
    shunt_qp_qs: float = Field(1.0, ge=0.5, le=3.0, description="pulmonary to systemic flow ratio Qp:Qs")
    aortic_regurgitant_fraction: float = Field(0.0, ge=0.0, le=0.6, description="aortic regurgitant fraction")
    heart_condition: Literal["normal", "dilated", "hypertrophic"] = Field(
        "normal",
        description="LV phenotype: normal (ESV 60 ml, myocardium 110 ml), dilated low-EF (ESV 210 ml, "
        "myocardium 160 ml) or hypertrophic (ESV 40 ml, myocardium 200 ml); stroke volumes unchanged",
    )
    mitral_regurgitant_volume_ml: float = Field(
        0.0,
        ge=0.0,
        le=80.0,
        description="mitral regurgitant volume per beat, ml (LV stroke volume = aortic forward volume + this)",
    )
    fov_mm: tuple[float, float] | None = Field(
        None, description="recon field of view (readout, phase) in mm (None: protocol default)"
    )
    slice_thickness_mm: float = Field(8.0, ge=2.0, le=20.0, description="slice thickness, mm")
    stack_start_mm: float = Field(
        0.0,
        ge=0.0,
        le=80.0,
        description="short-axis stack: distance from the mitral annulus (end-diastole) to the first slice's "
        "basal face, mm (0: the stack starts at the annulus)",
    )
    slice_gap_mm: float = Field(
        0.0, ge=0.0, le=60.0, description="gap between neighbouring slices, mm (spacing = thickness + gap)"
    )
    views_per_segment: int | None = Field(
        None, ge=1, le=64, description="ky lines per segment, one segment per beat (None: cine 8, flow 3)"
    )
    inter_slice_pause_s: float = Field(
        2.0, ge=0.0, le=30.0, description="pause between slices (breathing), s"
    )
    snr_scale: float = Field(
        1.0, ge=0.05, le=20.0, description="multiplies every image SNR of the physical noise model"
    )
    noise_std: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="test override: white noise std per k-space sample, a.u. (None: physical model)",
    )
    noise_seed: int | None = Field(
        None, ge=0, description="seed of the receiver noise alone (None: from seed), for noise-difference SNR"
    )
    cardiac_motion: bool = Field(True, description="False freezes the heart at end-diastole (test aid)")
    motion_sampling_ms: float = Field(10.0, gt=0.5, le=10.0, description="motion sampling interval, ms")
    seed: int = Field(0, ge=0, description="seed of every random draw of the exam")
    lesion: Lesion | None = Field(
        None,
        description="LV lesion in the LAD territory (lge/molli/t2map/t2star): none, subendocardial_scar, "
        "transmural_scar or oedema (None: lge subendocardial_scar, t2map oedema, else none)",
    )
    inversion_time_ms: float | None = Field(
        None, ge=50.0, le=700.0, description="LGE inversion time to the k-space centre, ms (None: nulls "
        "remote myocardium of the default sequence, 240 ms at 1.5 T, 270 ms at 3 T)",
    )  # fmt: skip
    myocardial_t2star_ms: float | None = Field(
        None,
        ge=2.0,
        le=60.0,
        description="myocardial T2* override (iron overload < 10 ms), ms (None: tissue table)",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_slices(cls, data: object) -> object:
        """n_slices not given: what a technologist plans for the protocol (see the field's doc)."""
        if isinstance(data, dict) and data.get("n_slices") is None:
            protocol, view = data.get("protocol", "cine"), data.get("view", "short_axis")
            spacing = float(data.get("slice_thickness_mm") or 8.0) + float(data.get("slice_gap_mm") or 0.0)
            if protocol == "cine":
                n = math.ceil(HeartParameters().lv_length_ed_mm / spacing) if view == "short_axis" else 1
            elif protocol in TISSUE_PROTOCOLS:
                n = 1
            else:
                n = 2 if protocol == "flow" else 12
            data = {**data, "n_slices": min(n, 64)}
        if (
            isinstance(data, dict)
            and data.get("protocol") in TISSUE_PROTOCOLS
            and "stack_start_mm" not in data
        ):
            data = {**data, "stack_start_mm": MID_VENTRICULAR_STACK_START_MM}
        return data

    @model_validator(mode="after")
    def _check_consistency(self) -> MRExamConfig:
        if self.n_readout % 2 or self.n_phase_encodes % 2:
            raise ValueError("n_readout and n_phase_encodes must be even")
        if self.n_calibration_lines > self.n_phase_encodes:
            raise ValueError("n_calibration_lines exceeds n_phase_encodes")
        if self.echo_times_ms is not None and self.protocol in TISSUE_PROTOCOLS:
            raise ValueError(
                "echo_times_ms is only for dixon (tissue-characterisation protocols use their own)"
            )
        if self.echo_times_ms is not None:
            if len(self.echo_times_ms) != self.n_echoes:
                raise ValueError(
                    f"echo_times_ms has {len(self.echo_times_ms)} entries, n_echoes={self.n_echoes}"
                )
            if any(b <= a for a, b in zip(self.echo_times_ms, self.echo_times_ms[1:], strict=False)):
                raise ValueError("echo_times_ms must increase")
        if self.fov_mm is not None and min(self.fov_mm) <= 50.0:
            raise ValueError("fov_mm entries must exceed 50 mm")
        return self

    @property
    def slice_spacing_mm(self) -> float:
        """Centre-to-centre distance of neighbouring slices, mm."""
        return self.slice_thickness_mm + self.slice_gap_mm

    @property
    def effective_tr_ms(self) -> float:
        """Repetition time in ms (protocol default when ``tr_ms`` is None)."""
        if self.tr_ms is not None:
            return self.tr_ms
        if self.protocol in TR_MS:
            return TR_MS[self.protocol]
        if self.protocol == "cine":
            return 3.0
        if self.protocol == "flow":
            return 5.0
        return round(self.effective_echo_times_ms[-1] + 2.0, 3)

    @property
    def effective_flip_angle_deg(self) -> float:
        """Flip angle in degrees (protocol default when ``flip_angle_deg`` is None)."""
        if self.flip_angle_deg is not None:
            return self.flip_angle_deg
        if self.protocol in FLIP_DEG:
            return FLIP_DEG[self.protocol]
        return {"cine": 60.0, "flow": 15.0, "dixon": 10.0}[self.protocol]

    @property
    def effective_echo_times_ms(self) -> tuple[float, ...]:
        """Echo times in ms; for dixon defaults to opposed-/in-phase (/opposed) for the field."""
        if self.protocol == "cine":
            return (self.effective_tr_ms / 2.0,)
        if self.protocol == "flow":
            return (2.5,)
        if self.protocol == "t2star":
            return T2STAR_ECHO_TIMES_MS
        if self.protocol in ECHO_TIME_MS:
            return (ECHO_TIME_MS[self.protocol],)
        if self.echo_times_ms is not None:
            return self.echo_times_ms
        # main fat peak at -3.4 ppm: opposed phase at half a period, in phase at one period
        period_ms = 1e3 / (3.4e-6 * 42.577478518e6 * self.field_strength_t)
        if self.n_echoes == 2:
            return (round(0.5 * period_ms, 3), round(period_ms, 3))
        return (round(0.5 * period_ms, 3), round(period_ms, 3), round(1.5 * period_ms, 3))

    @property
    def effective_views_per_segment(self) -> int:
        """ky lines per segment (per heartbeat); flow acquires each as a reference/encoded pair.

        Defaults: cine 8 (8 × 3 ms = 24 ms per frame); flow 3, i.e. 3 × 2 × 5 ms = 30 ms temporal
        resolution as in clinical aortic-flow protocols.  With 4 (40 ms) the retrospective binning mixes
        the dark diastolic and the bright, fast systolic blood at the onset and end of ejection, and since
        the phase of a sum is magnitude-weighted the default exam's aortic net flow came out +6 % high.
        """
        if self.views_per_segment is not None:
            return self.views_per_segment
        if self.protocol in VIEWS_PER_SEGMENT:
            return VIEWS_PER_SEGMENT[self.protocol]
        return 3 if self.protocol == "flow" else 8

    @property
    def pixel_bandwidth_hz(self) -> float:
        """Receiver bandwidth per recon pixel, Hz (readout duration = 1 / bandwidth)."""
        return {"cine": 930.0, "flow": 450.0, "dixon": 1000.0, **PIXEL_BANDWIDTH_HZ}[self.protocol]

    @property
    def dwell_time_us(self) -> float:
        """Time between raw (oversampled) readout samples, µs."""
        return 1e6 / (self.pixel_bandwidth_hz * self.n_readout * self.readout_oversampling)

    @property
    def effective_lesion(self) -> str:
        """The lesion simulated (``lesion`` or the protocol default)."""
        return self.lesion if self.lesion is not None else DEFAULT_LESION.get(self.protocol, "none")

    @property
    def effective_inversion_time_ms(self) -> float:
        """LGE inversion time to the k-space centre line, ms."""
        if self.inversion_time_ms is not None:
            return self.inversion_time_ms
        # Null of remote myocardium (post-contrast T1 450 / 500 ms) for the shipped segmented readout
        # (24 views of 25° every 8 ms, centre in the middle, inversion every other beat at 60 bpm), from
        # the Bloch simulation of hardware_sim.mr.tissue_sequences: the pulses before the centre line pull
        # Mz up, so the null comes before T1·ln 2 (312 / 347 ms).  Clinical TIs 10-15 min after
        # gadolinium at 1.5 T: ≈ 250-300 ms (set with a TI scout; Kellman & Arai, JCMR 2012).
        return 240.0 if self.field_strength_t == 1.5 else 270.0

    @property
    def effective_fov_mm(self) -> tuple[float, float]:
        """Recon field of view (readout, phase) in mm."""
        if self.fov_mm is not None:
            return self.fov_mm
        readout_mm = 450.0 if self.protocol == "dixon" else 400.0
        return (readout_mm, readout_mm * self.n_phase_encodes / self.n_readout)
