"""Options of ``reconstream simulate mr`` (the command itself, --out/--to, is wired by plugins.cli)."""

from __future__ import annotations

import argparse

from hardware_sim.cli_options import field_help, validated
from hardware_sim.mr.config import MRExamConfig

_FIELDS = MRExamConfig.model_fields

#: The option that sets each config field (errors name the option, not the field).
_FLAG_OF_FIELD = {
    "field_strength_t": "--field",
    "n_slices": "--slices",
    "view": "--view",
    "n_coils": "--coils",
    "acceleration": "--accel",
    "n_calibration_lines": "--calibration-lines",
    "n_phases": "--phases",
    "heart_rate_bpm": "--heart-rate",
    "rr_variability_percent": "--rr-variability",
    "venc_cm_per_s": "--venc",
    "n_echoes": "--echoes",
    "shunt_qp_qs": "--qp-qs",
    "aortic_regurgitant_fraction": "--regurgitant-fraction",
    "mitral_regurgitant_volume_ml": "--mitral-regurgitant-volume",
    "partial_fourier": "--partial-fourier",
    "n_readout": "--matrix READOUT",
    "n_phase_encodes": "--matrix PHASE",
    "noise_std": "--noise-std",
    "snr_scale": "--snr-scale",
    "lesion": "--lesion",
    "inversion_time_ms": "--inversion-time",
    "myocardial_t2star_ms": "--myocardial-t2star",
}


def _help(name: str) -> str:
    """Description, allowed range with unit and default of a config field."""
    return field_help(MRExamConfig, name)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the MR simulator options (every one has the config's default)."""
    parser.add_argument(
        "--protocol",
        choices=["cine", "flow", "dixon", "lge", "molli", "t2map", "t2star"],
        default="cine",
        help=_help("protocol"),
    )
    parser.add_argument(
        "--field", type=float, choices=[1.5, 3.0], default=1.5, help=_help("field_strength_t")
    )
    parser.add_argument(
        "--slices", type=int, default=None, help=f"{_FIELDS['n_slices'].description} (default: by protocol)"
    )
    parser.add_argument(
        "--view",
        choices=["short_axis", "four_chamber", "three_chamber", "two_chamber"],
        default="short_axis",
        help=_help("view"),
    )
    parser.add_argument("--coils", type=int, default=_FIELDS["n_coils"].default, help=_help("n_coils"))
    parser.add_argument(
        "--accel", type=int, default=_FIELDS["acceleration"].default, help=_help("acceleration")
    )
    parser.add_argument(
        "--calibration-lines",
        type=int,
        default=_FIELDS["n_calibration_lines"].default,
        help=_help("n_calibration_lines"),
    )
    parser.add_argument(
        "--undersampling",
        choices=["regular", "variable_density"],
        default="regular",
        help=_help("undersampling"),
    )
    parser.add_argument("--phases", type=int, default=_FIELDS["n_phases"].default, help=_help("n_phases"))
    parser.add_argument(
        "--heart-rate", type=float, default=_FIELDS["heart_rate_bpm"].default, help=_help("heart_rate_bpm")
    )
    parser.add_argument(
        "--rr-variability",
        type=float,
        default=_FIELDS["rr_variability_percent"].default,
        help=_help("rr_variability_percent"),
    )
    parser.add_argument(
        "--arrhythmia", choices=["none", "ectopic", "afib"], default="none", help=_help("arrhythmia")
    )
    parser.add_argument(
        "--venc", type=float, default=_FIELDS["venc_cm_per_s"].default, help=_help("venc_cm_per_s")
    )
    parser.add_argument(
        "--echoes", type=int, choices=[2, 3], default=_FIELDS["n_echoes"].default, help=_help("n_echoes")
    )
    parser.add_argument(
        "--qp-qs", type=float, default=_FIELDS["shunt_qp_qs"].default, help=_help("shunt_qp_qs")
    )
    parser.add_argument(
        "--regurgitant-fraction", type=float, default=0.0, help=_help("aortic_regurgitant_fraction")
    )
    parser.add_argument(
        "--heart-condition",
        choices=["normal", "dilated", "hypertrophic"],
        default="normal",
        help=_help("heart_condition"),
    )
    parser.add_argument(
        "--mitral-regurgitant-volume", type=float, default=0.0, help=_help("mitral_regurgitant_volume_ml")
    )
    parser.add_argument("--partial-fourier", type=float, default=1.0, help=_help("partial_fourier"))
    parser.add_argument(
        "--matrix",
        type=int,
        nargs=2,
        metavar=("READOUT", "PHASE"),
        default=None,
        help="recon matrix (default 192 156)",
    )
    parser.add_argument(
        "--noise-std", type=float, default=_FIELDS["noise_std"].default, help=_help("noise_std")
    )
    parser.add_argument(
        "--snr-scale", type=float, default=_FIELDS["snr_scale"].default, help=_help("snr_scale")
    )
    parser.add_argument("--seed", type=int, default=0, help=_help("seed"))
    parser.add_argument(
        "--lesion",
        choices=["none", "subendocardial_scar", "transmural_scar", "oedema"],
        default=None,
        help=_help("lesion"),
    )
    parser.add_argument("--inversion-time", type=float, default=None, help=_help("inversion_time_ms"))
    parser.add_argument("--myocardial-t2star", type=float, default=None, help=_help("myocardial_t2star_ms"))


def config_from_args(args: argparse.Namespace) -> MRExamConfig:
    """The exam config from parsed options; a value out of range is an ``OptionError`` naming the option."""
    matrix = args.matrix or (_FIELDS["n_readout"].default, _FIELDS["n_phase_encodes"].default)
    return validated(
        MRExamConfig,
        _FLAG_OF_FIELD,
        protocol=args.protocol,
        field_strength_t=args.field,
        n_slices=args.slices,
        view=args.view,
        n_coils=args.coils,
        acceleration=args.accel,
        n_calibration_lines=args.calibration_lines,
        undersampling=args.undersampling,
        n_phases=args.phases,
        heart_rate_bpm=args.heart_rate,
        rr_variability_percent=args.rr_variability,
        arrhythmia=args.arrhythmia,
        venc_cm_per_s=args.venc,
        n_echoes=args.echoes,
        shunt_qp_qs=args.qp_qs,
        aortic_regurgitant_fraction=args.regurgitant_fraction,
        heart_condition=args.heart_condition,
        mitral_regurgitant_volume_ml=args.mitral_regurgitant_volume,
        partial_fourier=args.partial_fourier,
        n_readout=matrix[0],
        n_phase_encodes=matrix[1],
        noise_std=args.noise_std,
        snr_scale=args.snr_scale,
        seed=args.seed,
        lesion=args.lesion,
        inversion_time_ms=args.inversion_time,
        myocardial_t2star_ms=args.myocardial_t2star,
    )
