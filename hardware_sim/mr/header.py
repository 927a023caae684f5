"""The ISMRMRD XML header of a simulated exam (``ismrmrd.xsd`` dataclasses).

Everything a scanner would put there and nothing from the truth: field strength and ¹H frequency,
sequence parameters (TR, TE list, flip angle), the encoded (oversampled) and recon spaces, encoding
limits (ky with its centre, slices, sets, echoes, the announced number of cardiac phases), the
parallel-imaging acceleration, coil labels, the ECG waveform description and, for flow, the user
parameters ``VENC_cm_per_s``, ``flow_direction`` (+1: velocity along the slice normal is positive) and
``flow_plane_vessels`` (which vessel each slice was planned on, comma-separated per slice).
"""

from __future__ import annotations

import ismrmrd.xsd as xsd

from hardware_sim.mr.config import MRExamConfig
from hardware_sim.mr.sampling import first_acquired_line
from hardware_sim.mr.tissue_sequences import (
    LGE_REFERENCE_FLIP_DEG,
    MOLLI_BLOCKS,
    N_CONTRASTS,
    T2_PREPARATIONS_MS,
    TISSUE_PROTOCOLS,
)
from hardware_sim.mr.tissue_sequences import SEQUENCE_TYPES as TISSUE_SEQUENCE_TYPES
from hardware_sim.mr.tissues import larmor_frequency_hz

ECG_WAVEFORM_ID = 0
"""ISMRMRD waveform id of the ECG (0 by the ISMRMRD convention)."""
SEQUENCE_TYPES = {"cine": "TrueFISP", "flow": "FLASH_PC", "dixon": "GRE_multiecho", **TISSUE_SEQUENCE_TYPES}


def _limit(maximum: int, centre: int = 0, minimum: int = 0) -> xsd.limitType:
    return xsd.limitType(minimum=minimum, maximum=maximum, center=centre)


def _encoding(config: MRExamConfig) -> xsd.encodingType:
    fov_x, fov_y = config.effective_fov_mm
    os = config.readout_oversampling
    n_pe = config.n_phase_encodes
    encoded = xsd.encodingSpaceType(
        matrixSize=xsd.matrixSizeType(x=os * config.n_readout, y=n_pe, z=1),
        fieldOfView_mm=xsd.fieldOfViewMm(x=os * fov_x, y=fov_y, z=config.slice_thickness_mm),
    )
    recon = xsd.encodingSpaceType(
        matrixSize=xsd.matrixSizeType(x=config.n_readout, y=n_pe, z=1),
        fieldOfView_mm=xsd.fieldOfViewMm(x=fov_x, y=fov_y, z=config.slice_thickness_mm),
    )
    n_contrasts = N_CONTRASTS.get(config.protocol, config.n_echoes if config.protocol == "dixon" else 1)
    cine_like = config.protocol in ("cine", "flow")
    limits = xsd.encodingLimitsType(
        kspace_encoding_step_0=_limit(os * config.n_readout - 1, os * config.n_readout // 2),
        kspace_encoding_step_1=_limit(n_pe - 1, n_pe // 2, first_acquired_line(config)),
        kspace_encoding_step_2=_limit(0),
        average=_limit(0),
        slice=_limit(config.n_slices - 1),
        contrast=_limit(n_contrasts - 1),
        phase=_limit(config.n_phases - 1 if cine_like else 0),
        repetition=_limit(0),
        set=_limit(1 if config.protocol == "flow" else 0),
        segment=_limit(0),
    )
    parallel = xsd.parallelImagingType(
        accelerationFactor=xsd.accelerationFactorType(
            kspace_encoding_step_1=config.acceleration, kspace_encoding_step_2=1
        ),
        calibrationMode=xsd.calibrationModeType.EMBEDDED
        if config.acceleration > 1
        else xsd.calibrationModeType.OTHER,
    )
    return xsd.encodingType(
        encodedSpace=encoded,
        reconSpace=recon,
        encodingLimits=limits,
        trajectory=xsd.trajectoryType.CARTESIAN,
        parallelImaging=parallel,
        echoTrainLength=n_contrasts,
    )


def flow_plane_vessels(config: MRExamConfig) -> str:
    """The vessel each flow slice was planned on (the technologist's series label), comma-separated
    per slice: ``ascending_aorta`` for even slices, ``pulmonary_artery`` for odd ones."""
    return ",".join("ascending_aorta" if k % 2 == 0 else "pulmonary_artery" for k in range(config.n_slices))


def _user_parameters(config: MRExamConfig) -> xsd.userParametersType | None:
    doubles: list[xsd.userParameterDoubleType] = []
    longs: list[xsd.userParameterLongType] = []
    strings = [xsd.userParameterStringType(name="undersampling", value=config.undersampling)]
    if config.protocol == "flow":
        doubles.append(xsd.userParameterDoubleType(name="VENC_cm_per_s", value=config.venc_cm_per_s))
        longs.append(xsd.userParameterLongType(name="flow_direction", value=1))
        doubles.append(xsd.userParameterDoubleType(name="flow_direction", value=1.0))
        strings.append(
            xsd.userParameterStringType(name="flow_plane_vessels", value=flow_plane_vessels(config))
        )
    if config.protocol in ("dixon", "t2star"):
        for i, te in enumerate(config.effective_echo_times_ms):
            doubles.append(xsd.userParameterDoubleType(name=f"echo_times_ms_{i}", value=te))
    if config.protocol in TISSUE_PROTOCOLS:
        _tissue_parameters(config, doubles, longs, strings)
    longs.append(xsd.userParameterLongType(name="n_cardiac_phases", value=config.n_phases))
    return xsd.userParametersType(
        userParameterLong=longs, userParameterDouble=doubles, userParameterString=strings
    )


def _tissue_parameters(
    config: MRExamConfig,
    doubles: list[xsd.userParameterDoubleType],
    longs: list[xsd.userParameterLongType],
    strings: list[xsd.userParameterStringType],
) -> None:
    """What a tissue-characterisation recon needs: TIs of the inversion blocks (MOLLI: the image TIs
    follow from the readout time stamps), T2 preparations, PSIR reference contrast, lesion-free facts only."""
    if config.protocol == "lge":
        doubles.append(
            xsd.userParameterDoubleType(name="inversion_time_ms", value=config.effective_inversion_time_ms)
        )
        longs.append(xsd.userParameterLongType(name="psir_reference_contrast", value=1))
        doubles.append(
            xsd.userParameterDoubleType(name="psir_reference_flip_angle_deg", value=LGE_REFERENCE_FLIP_DEG)
        )
    if config.protocol == "molli":
        strings.append(xsd.userParameterStringType(name="molli_scheme", value="5(3)3"))
        for b, (ti_ms, n_images) in enumerate(MOLLI_BLOCKS):
            doubles.append(xsd.userParameterDoubleType(name=f"inversion_time_ms_block_{b}", value=ti_ms))
            longs.append(xsd.userParameterLongType(name=f"images_per_inversion_{b}", value=n_images))
    if config.protocol == "t2map":
        for i, tau in enumerate(T2_PREPARATIONS_MS):
            doubles.append(xsd.userParameterDoubleType(name=f"t2_preparation_ms_{i}", value=tau))


def _inversion_times_ms(config: MRExamConfig) -> list[float]:
    if config.protocol == "lge":
        return [config.effective_inversion_time_ms]
    if config.protocol == "molli":
        return [ti for ti, _ in MOLLI_BLOCKS]
    return []


def build_header(config: MRExamConfig) -> xsd.ismrmrdHeader:
    """A complete header for the exam (valid against the ISMRMRD schema)."""
    field = float(config.field_strength_t)
    coils = [xsd.coilLabelType(coilNumber=c, coilName=f"Body_{c:02d}") for c in range(config.n_coils)]
    return xsd.ismrmrdHeader(
        version=2,
        subjectInformation=xsd.subjectInformationType(
            patientName="Phantom^Thorax",
            patientWeight_kg=75.0,
            patientHeight_m=1.75,
            patientID="SIM0001",
            patientGender="O",
        ),
        studyInformation=xsd.studyInformationType(
            studyID="reconstream-sim", studyDescription="simulated cardiac MR"
        ),
        measurementInformation=xsd.measurementInformationType(
            measurementID=f"sim_{config.protocol}_{config.seed}",
            patientPosition=xsd.patientPositionType.HFS,
            protocolName=f"{config.protocol}_{field:g}T",
            sequenceName=SEQUENCE_TYPES[config.protocol],
            frameOfReferenceUID="1.2.826.0.1.3680043.10.1234.1",
        ),
        acquisitionSystemInformation=xsd.acquisitionSystemInformationType(
            systemVendor="reconstream",
            systemModel="hardware_sim.mr",
            systemFieldStrength_T=field,
            relativeReceiverNoiseBandwidth=1.0,
            receiverChannels=config.n_coils,
            coilLabel=coils,
            institutionName="simulation",
        ),
        experimentalConditions=xsd.experimentalConditionsType(
            H1resonanceFrequency_Hz=round(larmor_frequency_hz(field))
        ),
        encoding=[_encoding(config)],
        sequenceParameters=xsd.sequenceParametersType(
            TR=[config.effective_tr_ms],
            TE=list(config.effective_echo_times_ms),
            TI=_inversion_times_ms(config),  # empty (not None: the schema field is a list) without inversions
            flipAngle_deg=[config.effective_flip_angle_deg],
            sequence_type=SEQUENCE_TYPES[config.protocol],
        ),
        userParameters=_user_parameters(config),
        waveformInformation=[
            xsd.waveformInformationType(
                waveformName="ECG",
                waveformType=xsd.waveformInformationTypeWaveformType.ECG,
                userParameters=xsd.userParametersType(
                    userParameterLong=[xsd.userParameterLongType(name="trigger_channel", value=4)]
                ),
            )
        ],
    )
