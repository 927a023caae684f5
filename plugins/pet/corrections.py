"""Which corrections a reconstructed PET frame had, as machine-readable ISMRMRD image metadata.

Every PET image of ``pet_tof_osem`` carries, for each of attenuation, scatter, randoms, normalisation, decay
and dead time, ``Correction<Name>`` = ``applied`` | ``not applied`` and ``Correction<Name>Method`` (one line:
how, or why not), the DICOM Corrected Image codes of what was applied (``CorrectedImage``, multi-valued:
``ATTN SCAT RAN NORM DECY``; ``DTIM`` never, see below) and ``Quantitative`` = ``true`` only when attenuation,
scatter, randoms, normalisation and decay were all applied.  An image without a μ-map therefore reads
``CorrectionAttenuation = not applied``, ``Quantitative = false`` and has no ``ATTN``: its Bq/ml cannot pass
for a quantitative value (a torso reads ≈ 10× low without attenuation correction).

Dead time is never corrected: this reconstruction models no count-rate losses (a clinical FDG scan loses a few
per cent on a Signa-class scanner; the simulator's only loss is the multiple coincidences its sorter discards,
≈ singles rate × window: 0.3-1 % for the quantitation tests' cylinders on ``small``); the metadata say so rather
than hide it.
"""

from __future__ import annotations

from dataclasses import dataclass

from recon.tof.scatter import TailFit

APPLIED, NOT_APPLIED = "applied", "not applied"


@dataclass(frozen=True)
class CorrectionState:
    """One correction of one frame.

    Attributes:
        name: metadata name, e.g. ``"Attenuation"`` (key ``Correction<name>``).
        applied: whether the reconstruction applied it.
        method: how it was applied, or why not (one line).
        dicom_code: the DICOM Corrected Image (0028,0051) code for it (``ATTN``, ``SCAT``, ``RAN``, ``NORM``,
            ``DECY``, ``DTIM``).
    """

    name: str
    applied: bool
    method: str
    dicom_code: str


#: Corrections that must all be applied for an image to be called quantitative (dead time: see module doc).
QUANTITATIVE_NEEDS = ("Attenuation", "Scatter", "Randoms", "Normalisation", "Decay")


def _scatter_state(
    scatter_requested: bool, has_mu: bool, fit: TailFit | None, fit_status: str
) -> CorrectionState:
    if fit is not None and fit.scale <= 0.0:
        why = f"the tail fit subtracted no scatter (fit {fit_status}, scale 0): scatter left in the image"
        return CorrectionState("Scatter", False, why, "SCAT")
    if fit is not None:
        fraction = (
            "" if fit.scatter_fraction is None else f", frame scatter fraction {fit.scatter_fraction:.3f}"
        )
        method = (
            f"single scatter simulation (TOF), tail-fitted: fit {fit_status}, scale {fit.scale:.3g}{fraction}"
        )
        return CorrectionState("Scatter", True, method, "SCAT")
    if not scatter_requested:
        why = "switched off (scatter = false)"
    else:
        why = "no μ-map to model it" if not has_mu else "not estimated"
    return CorrectionState("Scatter", False, why, "SCAT")


def _randoms_state(n_delayeds: int, has_singles: bool) -> CorrectionState:
    if has_singles:
        return CorrectionState("Randoms", True, "singles rates (2τ·Sᵢ·Sⱼ), scaled to the delayeds", "RAN")
    if n_delayeds > 0:
        return CorrectionState(
            "Randoms", True, f"delayed coincidences ({n_delayeds}), smoothed by a singles model", "RAN"
        )
    return CorrectionState("Randoms", False, "no delayed coincidences and no singles rates", "RAN")


def correction_states(
    *,
    mu_source: str | None,
    scatter_requested: bool,
    tail_fit: TailFit | None,
    fit_status: str,
    n_delayeds: int,
    has_singles: bool,
    has_crystal_efficiencies: bool,
    isotope: str,
) -> tuple[CorrectionState, ...]:
    """The six corrections of one frame (``mu_source`` ``None``: no μ-map reached the reconstruction)."""
    attenuation = (
        CorrectionState("Attenuation", True, f"μ-map: {mu_source}", "ATTN")
        if mu_source is not None
        else CorrectionState("Attenuation", False, "no μ-map (give a μ-map input or mumap_file)", "ATTN")
    )
    normalisation = (
        CorrectionState(
            "Normalisation", True, "crystal efficiencies of the normalisation scan × geometric model", "NORM"
        )
        if has_crystal_efficiencies
        else CorrectionState(
            "Normalisation", False, "geometric model only: no crystal efficiencies in the data", "NORM"
        )
    )
    decay = CorrectionState("Decay", True, f"to the frame start ({isotope})", "DECY")
    dead_time = CorrectionState(
        "DeadTime", False, "count-rate losses not modelled by this reconstruction", "DTIM"
    )
    return (
        attenuation,
        _scatter_state(scatter_requested, mu_source is not None, tail_fit, fit_status),
        _randoms_state(n_delayeds, has_singles),
        normalisation,
        decay,
        dead_time,
    )


def is_quantitative(states: tuple[CorrectionState, ...]) -> bool:
    """Whether every correction of :data:`QUANTITATIVE_NEEDS` was applied."""
    applied = {s.name for s in states if s.applied}
    return all(name in applied for name in QUANTITATIVE_NEEDS)


def correction_metadata(states: tuple[CorrectionState, ...]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(single-valued, multi-valued) ISMRMRD metadata of ``states`` (keys in the module docstring)."""
    meta: dict[str, str] = {}
    for state in states:
        meta[f"Correction{state.name}"] = APPLIED if state.applied else NOT_APPLIED
        meta[f"Correction{state.name}Method"] = state.method
    meta["Quantitative"] = "true" if is_quantitative(states) else "false"
    return meta, {"CorrectedImage": [s.dicom_code for s in states if s.applied]}
