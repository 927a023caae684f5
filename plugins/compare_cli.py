"""``reconstream compare RUN_DIR TRUTH.h5``: score a run against the simulator's truth (:mod:`plugins.compare`).

Prints a table (per MR series and slice: nRMSE and SSIM; PET: total activity, label biases, NEMA recovery
coefficients and background variability; μ-map Dice; flow and Qp:Qs) and writes the full scores as JSON to
``RUN_DIR/compare.json`` (or ``--json FILE``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from plugins.compare import score_run


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="output folder of a run (holds images.h5)")
    parser.add_argument(
        "truth", type=Path, help="the simulator's truth file (e.g. out/demo/raw_cine.truth.h5)"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="where to write the scores (default RUN_DIR/compare.json)"
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def table_lines(scores: dict[str, Any]) -> list[str]:
    """The printed table, one line per score."""
    lines = []
    mr = scores.get("mr", {})
    for series, result in mr.get("series", {}).items():
        if "slices" in result:
            lines.append(f"MR series {series}: nRMSE {_fmt(result['nrmse'])} ({result['n_images']} images)")
            for row in result["slices"]:
                lines.append(
                    f"  slice {row['slice']:3d}: nRMSE {_fmt(row['nrmse'])}  SSIM {_fmt(row['ssim'])}"
                )
        else:
            lines.append(f"MR series {series}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in result.items()))
    for key, value in mr.items():
        if isinstance(value, dict) and key != "series" and "truth" in value:
            lines.append(f"MR {key}: run {_fmt(value['run'])}, truth {_fmt(value['truth'])}")
    if "note" in mr:
        lines.append(f"MR: {mr['note']}")
    for series, result in scores.get("pet", {}).get("series", {}).items():
        lines.extend(_pet_lines(series, result))
    return lines or ["nothing to score: no image series of the run matches the truth"]


def _pet_lines(series: str, result: dict[str, Any]) -> list[str]:
    if "tissue_dice" in result:
        return [
            f"μ-map series {series} ({result['region']}): tissue Dice {_fmt(result['tissue_dice'])}, "
            f"lung Dice {_fmt(result.get('lung_dice'))}"
        ]
    lines = [
        f"PET series {series}: total {_fmt(result['total_activity_mbq'])} MBq vs truth in FOV "
        f"{_fmt(result['true_total_activity_in_fov_mbq'])} MBq (bias {_fmt(result['total_activity_bias'])})"
    ]
    for name, bias in result.get("mean_bias_by_label", {}).items():
        lines.append(f"  {name:>16s}: mean bias {_fmt(bias)}")
    for name, rc in result.get("recovery_coefficients", {}).items():
        lines.append(f"  {name:>16s}: recovery coefficient {_fmt(rc)}")
    if "background_variability" in result:
        lines.append(f"  background variability {_fmt(result['background_variability'])}")
    for warning in result.get("quality_warnings", []) or []:
        lines.append(f"  warning: {warning}")
    return lines


def main(args: argparse.Namespace) -> int:
    scores = score_run(Path(args.run_dir), Path(args.truth))
    for line in table_lines(scores):
        print(line)
    out = args.json or Path(args.run_dir) / "compare.json"
    out.write_text(json.dumps(scores, indent=2, default=str), encoding="utf-8")
    print(f"scores written to {out}")
    return 0
