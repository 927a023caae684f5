"""The ISMRMRD v1 header of a Siemens twix measurement, from its protocol (as ``twixtools`` parses it).

Units: the protocol stores times in µs (``alTR``, ``alTE``, ``alTI``) and dwell times in ns; the header
holds ms.  Sources, in the style of ``siemens_to_ismrmrd``:

==================================  ===========================================================================
header field                        twix protocol
==================================  ===========================================================================
encodedSpace matrix x / y / z       ``Meas.iNoOfFourierColumns`` (with readout oversampling) / ``lPhaseEncodingLines``
                                    / ``lPartitions`` (3-D) or 1
encodedSpace FOV x / y / z (mm)     ``dReadoutFOV`` × ``flReadoutOSFactor`` / ``dPhaseFOV`` / ``dThickness``
reconSpace matrix, FOV              ``lBaseResolution`` / ``Meas.NImageLins`` / 1; ``dReadoutFOV`` / ``dPhaseFOV`` / ``dThickness``
encodingLimits                      lines, partitions, slices (``sSliceArray.lSize``), contrasts, phases,
                                    repetitions, averages, sets from the protocol counts
trajectory                          ``sKSpace.ucTrajectory`` 1 → cartesian (EPI when ``lEPIFactor`` > 1), else other
parallelImaging                     ``sPat.lAccelFactPE`` / ``lAccelFact3D``
sequenceParameters (ms, deg)        ``alTR[0]``, ``alTE[:lContrasts]``, ``alTI[0]``, ``adFlipAngleDegree[0]``
userParameterDouble VENC_cm_per_s   ``sAngio.sFlowArray.asElm[0].nVelocity`` (cm/s), when the protocol encodes flow
system, conditions                  ``Dicom``: manufacturer, model, serial number, institution, ``lFrequency``;
                                    ``sProtConsistencyInfo.flNominalB0`` (T)
measurementInformation              ``tPatientPosition``, ``tProtocolName``, ``Config.SequenceFileName``
==================================  ===========================================================================

Not converted (said by :data:`NOT_CONVERTED`): patient identity, the raw protocol text (XProtocol/ASCCONV),
slice-specific in-plane rotation other than through each readout's quaternion.
"""

from __future__ import annotations

from typing import Any

import ismrmrd.xsd as x

NOT_CONVERTED = (
    "patient identity (name, birth date, ID) is not copied into the header",
    "the raw protocol text (XProtocol and ASCCONV: Config, Dicom, Meas, MeasYaps, Phoenix, Spice) is not kept",
    "PMU physiology waveforms (SYNCDATA blocks) are not converted; each readout keeps its PMU time stamp",
    "patient table position (PTAB) is not converted",
)


def _get(tree: Any, *path: Any, default: Any = None) -> Any:
    for key in path:
        if isinstance(tree, dict) and key in tree:
            tree = tree[key]
        elif isinstance(tree, list) and isinstance(key, int) and -len(tree) <= key < len(tree):
            tree = tree[key]
        else:
            return default
    return tree


def _num(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _text(value: Any) -> str | None:
    """A protocol value as header text (``45385.0`` → ``45385``); None when empty."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if value not in (None, "") else None


def _limit(count: float, center: int = 0) -> x.limitType:
    n = max(int(count), 1)
    return x.limitType(minimum=0, maximum=n - 1, center=center)


def _encoding(hdr: dict[str, Any], n_samples: int, center_line: int) -> x.encodingType:
    yaps, meas = hdr.get("MeasYaps", {}), hdr.get("Meas", {})
    sl = _get(yaps, "sSliceArray", "asSlice", 0, default={})
    fov_ro, fov_pe, thick = (_num(sl.get(k)) for k in ("dReadoutFOV", "dPhaseFOV", "dThickness"))
    os_factor = _num(meas.get("flReadoutOSFactor"), 1.0) or 1.0
    kspace = yaps.get("sKSpace", {})
    n_lines = int(_num(kspace.get("lPhaseEncodingLines"), 1))
    three_d = int(_num(kspace.get("ucDimension"), 2)) == 4
    n_par = int(_num(kspace.get("lPartitions"), 1)) if three_d else 1
    n_x = int(_num(kspace.get("lBaseResolution"), n_samples / os_factor))
    n_y = int(_num(meas.get("NImageLins"), n_lines)) or n_lines
    encoded = x.encodingSpaceType(
        matrixSize=x.matrixSizeType(
            x=int(_num(meas.get("iNoOfFourierColumns"), n_samples)), y=n_lines, z=n_par
        ),
        fieldOfView_mm=x.fieldOfViewMm(x=fov_ro * os_factor, y=fov_pe, z=thick),
    )
    recon = x.encodingSpaceType(
        matrixSize=x.matrixSizeType(x=n_x, y=n_y, z=n_par),
        fieldOfView_mm=x.fieldOfViewMm(x=fov_ro, y=fov_pe, z=thick),
    )
    limits = x.encodingLimitsType(
        kspace_encoding_step_1=_limit(n_lines, center_line),
        kspace_encoding_step_2=_limit(n_par, n_par // 2),
        slice=_limit(_num(_get(yaps, "sSliceArray", "lSize"), 1)),
        contrast=_limit(_num(yaps.get("lContrasts"), 1)),
        phase=_limit(_num(_get(yaps, "sPhysioImaging", "lPhases"), 1)),
        repetition=_limit(_num(yaps.get("lRepetitions"), 0) + 1),
        average=_limit(_num(yaps.get("lAverages"), 1)),
        set=_limit(_num(yaps.get("lSets"), 1)),
    )
    epi = _num(_get(yaps, "sFastImaging", "lEPIFactor"), 1) > 1
    cartesian = int(_num(kspace.get("ucTrajectory"), 1)) == 1
    trajectory = (
        x.trajectoryType.EPI
        if cartesian and epi
        else (x.trajectoryType.CARTESIAN if cartesian else x.trajectoryType.OTHER)
    )
    pat = yaps.get("sPat", {})
    parallel = x.parallelImagingType(
        accelerationFactor=x.accelerationFactorType(
            kspace_encoding_step_1=int(_num(pat.get("lAccelFactPE"), 1)),
            kspace_encoding_step_2=int(_num(pat.get("lAccelFact3D"), 1)),
        ),
        calibrationMode=x.calibrationModeType.OTHER,
    )
    return x.encodingType(
        encodedSpace=encoded,
        reconSpace=recon,
        encodingLimits=limits,
        trajectory=trajectory,
        parallelImaging=parallel,
    )


def _sequence(yaps: dict[str, Any]) -> x.sequenceParametersType:
    n_contrasts = max(int(_num(yaps.get("lContrasts"), 1)), 1)
    us_to_ms = 1e-3
    return x.sequenceParametersType(
        TR=[_num(t) * us_to_ms for t in (yaps.get("alTR") or [])[:1]],
        TE=[_num(t) * us_to_ms for t in (yaps.get("alTE") or [])[:n_contrasts]],
        TI=[_num(t) * us_to_ms for t in (yaps.get("alTI") or [])[:1]],
        flipAngle_deg=[_num(a) for a in (yaps.get("adFlipAngleDegree") or [])[:1]],
    )


def _user_parameters(yaps: dict[str, Any]) -> x.userParametersType:
    doubles = []
    venc = _num(_get(yaps, "sAngio", "sFlowArray", "asElm", 0, "nVelocity"), 0.0)
    if venc > 0:
        doubles.append(x.userParameterDoubleType(name="VENC_cm_per_s", value=venc))
    dwell_ns = _num(_get(yaps, "sRXSPEC", "alDwellTime", 0), 0.0)
    if dwell_ns > 0:
        doubles.append(x.userParameterDoubleType(name="dwell_time_us", value=dwell_ns * 1e-3))
    return x.userParametersType(userParameterDouble=doubles)


def _patient_position(text: Any) -> x.patientPositionType:
    try:
        return x.patientPositionType(str(text))
    except ValueError:
        return x.patientPositionType.HFS


def twix_header(hdr: dict[str, Any], n_samples: int, n_channels: int, center_line: int) -> x.ismrmrdHeader:
    """The v1 header of one measurement: ``hdr`` is ``twixtools``' parsed protocol; ``n_samples`` and
    ``n_channels`` are those of the first imaging readout, ``center_line`` its k-space centre line."""
    yaps, dicom = hdr.get("MeasYaps", {}), hdr.get("Dicom", {})
    b0_t = _num(_get(yaps, "sProtConsistencyInfo", "flNominalB0"), 0.0) or _num(
        dicom.get("flMagneticFieldStrength")
    )
    system = x.acquisitionSystemInformationType(
        systemVendor=str(dicom.get("Manufacturer", "SIEMENS")),
        systemModel=str(dicom.get("ManufacturersModelName", "")) or None,
        systemFieldStrength_T=b0_t or None,
        receiverChannels=n_channels,
        institutionName=str(dicom.get("InstitutionName", "")) or None,
        deviceSerialNumber=_text(dicom.get("DeviceSerialNumber")),
    )
    measurement = x.measurementInformationType(
        patientPosition=_patient_position(dicom.get("tPatientPosition")),
        protocolName=str(yaps.get("tProtocolName", dicom.get("tProtocolName", ""))) or None,
        sequenceName=str(_get(hdr, "Config", "SequenceFileName", default="")) or None,
    )
    return x.ismrmrdHeader(
        measurementInformation=measurement,
        acquisitionSystemInformation=system,
        experimentalConditions=x.experimentalConditionsType(
            H1resonanceFrequency_Hz=int(_num(dicom.get("lFrequency"), 0))
        ),
        encoding=[_encoding(hdr, n_samples, center_line)],
        sequenceParameters=_sequence(yaps),
        userParameters=_user_parameters(yaps),
    )
