"""One self-contained HTML page per run or sweep (what ``reconstream report DIR`` and ``--report`` write).

A run page (``RUN_DIR/report.html``) shows:

* every preview the run wrote (``png/``): cine as an animated image per series, PET and μ-map volumes as
  orthogonal mid-slices and a maximum-intensity projection, Dixon and flow series, with their colour bars;
* flow curves (flow in ml/s over the cardiac cycle per vessel) and the flow table from ``flow_report.json``;
* the numbers the chains reported (every JSON report's top-level values), quality warnings, the scores of
  ``compare.json`` when the run was compared with the truth, and partial-input notes (``incomplete.json``);
* per-stage timing (a bar chart and a table) and the provenance (software, inputs with checksums, the
  effective chain).

A sweep page (``SWEEP_DIR/report.html``) shows the points' table with one thumbnail each and the Pareto
plot of quality against latency.  Plots are made with matplotlib; every image is embedded (data URIs), so
the page opens anywhere without the run folder.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

REPORT_FILE = "report.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1200px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th { background: #f0f0f0; } td.text { text-align: left; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figcaption { font-size: 0.85em; color: #555; }
img { max-width: 560px; } img.thumb { max-width: 160px; }
p { overflow-wrap: anywhere; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
.warning { color: #a40000; } .pareto { background: #e8f5e9; }
"""

# Marks the body when the page has loaded: how many images decoded and how many did not (used by tests).
_CHECK_IMAGES = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (im) { return !(im.complete && im.naturalWidth > 0); });
  document.body.setAttribute("data-images", String(images.length));
  document.body.setAttribute("data-broken-images", String(broken.length));
});
"""


def _data_uri(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def _img(data: bytes, media_type: str, alt: str, css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return f'<img{cls} alt="{html.escape(alt)}" src="{_data_uri(data, media_type)}">'


def _figure(data: bytes, media_type: str, caption: str) -> str:
    return (
        f"<figure>{_img(data, media_type, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _plot_png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = "—" if math.isnan(value) else f"{value:.4g}"
    elif isinstance(value, list | dict):
        text = json.dumps(value)[:120]
    else:
        text = str(value)
    css = "" if isinstance(value, int | float) else ' class="text"'
    return f"<td{css}>{html.escape(text)}</td>"


def _table(rows: list[dict[str, Any]], columns: list[str] | None = None, row_class: Any = None) -> str:
    if not rows:
        return "<p>none</p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        css = f' class="{row_class(row)}"' if row_class and row_class(row) else ""
        body.append(f"<tr{css}>" + "".join(_cell(row.get(c, "")) for c in columns) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _page(title: str, sections: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f"<script>{_CHECK_IMAGES}</script></head><body>"
        f"<h1>{html.escape(title)}</h1>{''.join(sections)}</body></html>\n"
    )


# --------------------------------------------------------------------------------------------- a run


def _previews(run_dir: Path) -> str:
    folder = run_dir / "png"
    files = sorted(folder.glob("*.gif")) + sorted(p for p in folder.glob("*.png"))
    if not files:
        return ""
    figures = []
    for path in files:
        media = "image/gif" if path.suffix == ".gif" else "image/png"
        kind = (
            "animated, all cardiac phases" if path.suffix == ".gif" else "slices × phases / orthogonal views"
        )
        figures.append(_figure(path.read_bytes(), media, f"{path.stem} ({kind})"))
    return "<h2>Images</h2>" + "".join(figures)


def _flow_section(report: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vessels = report.get("vessels") or []
    if not vessels:
        return ""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    rows = []
    for vessel in vessels:
        times = [1e3 * t for t in vessel.get("phase_times_s", [])]
        flow = vessel.get("flow_ml_per_s", [])
        label = f"{vessel.get('label', 'vessel')} (slice {vessel.get('slice_index')})"
        if times and len(times) == len(flow):
            ax.plot(times, flow, marker="o", markersize=3, label=label)
        volumes = vessel.get("volumes") or {}
        rows.append(
            {
                "vessel": label,
                "area_cm2": vessel.get("area_cm2"),
                **{k: v for k, v in volumes.items() if isinstance(v, int | float)},
                "peak_velocity_cm_per_s": vessel.get("peak_velocity_cm_per_s"),
            }
        )
    ax.axhline(0.0, color="grey", linewidth=0.5)
    ax.set_xlabel("time after the R-wave (ms)")
    ax.set_ylabel("flow (ml/s)")
    ax.set_title(f"flow over the cardiac cycle (VENC {report.get('venc_cm_per_s')} cm/s)")
    ax.legend(fontsize=8)
    plot = _figure(_plot_png(fig), "image/png", "flow curves per vessel")
    qp_qs = report.get("qp_qs")
    extra = f"<p>Qp:Qs = {qp_qs:.2f}</p>" if isinstance(qp_qs, int | float) else ""
    columns = sorted({c for row in rows for c in row}, key=lambda c: (c != "vessel", c))
    return "<h2>Flow</h2>" + plot + extra + _table(rows, columns)


def _reports_section(run_dir: Path) -> str:
    parts = []
    for path in sorted(run_dir.glob("*.json")):
        if path.name in ("provenance.json", "compare.json", "incomplete.json", "sweep.json"):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        if path.name == "flow_report.json":
            parts.append(_flow_section(data))
        scalars = [{"value": k, "": v} for k, v in data.items() if isinstance(v, int | float | str | bool)]
        if scalars:
            parts.append(f"<h2>{html.escape(path.name)}</h2>" + _table(scalars, ["value", ""]))
    return "".join(parts)


def _timing_section(provenance: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = provenance.get("stage_timing") or []
    if not stages:
        return ""
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(stages) + 1))
    ax.barh([s["stage"] for s in stages][::-1], [s["total_s"] for s in stages][::-1], color="#4a7ab5")
    ax.set_xlabel("compute time (s)")
    ax.set_title("time per stage (queue waits excluded)")
    columns = ["stage", "plugin", "n_inputs", "n_outputs", "total_s", "p50_s", "p95_s"]
    return "<h2>Timing</h2>" + _figure(_plot_png(fig), "image/png", "stage timing") + _table(stages, columns)


def _notes_section(run_dir: Path, provenance: dict[str, Any]) -> str:
    parts = []
    warnings = (provenance.get("outputs") or {}).get("quality_warnings") or []
    if warnings:
        items = "".join(f'<li class="warning">{html.escape(w)}</li>' for w in warnings)
        parts.append(f"<h2>Quality warnings</h2><ul>{items}</ul>")
    incomplete = run_dir / "incomplete.json"
    if incomplete.is_file():
        note = json.loads(incomplete.read_text(encoding="utf-8"))
        parts.append(
            f'<h2 class="warning">Partial input</h2><p>{html.escape(str(note.get("interrupted")))}</p>'
            + _table(note.get("incomplete_units") or [])
        )
    compare = run_dir / "compare.json"
    if compare.is_file():
        scores = json.loads(compare.read_text(encoding="utf-8"))
        rows = [
            {"score": key, "value": value}
            for key, value in _leaves(scores)
            if isinstance(value, int | float) and not key.endswith(".slice")
        ]
        parts.append("<h2>Scores against the simulator's truth</h2>" + _table(rows, ["score", "value"]))
    return "".join(parts)


def _leaves(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``{"mr": {"series": {"1": {"nrmse": 0.1}}}}`` → ``[("mr.series.1.nrmse", 0.1)]`` (list items by index,
    or by their ``slice`` when they have one)."""
    if isinstance(tree, dict):
        return [leaf for key, value in tree.items() for leaf in _leaves(value, f"{prefix}{key}.")]
    if isinstance(tree, list):
        out = []
        for index, value in enumerate(tree):
            label = f"slice {value['slice']}" if isinstance(value, dict) and "slice" in value else str(index)
            out += _leaves(value, f"{prefix}{label}.")
        return out
    return [(prefix.rstrip("."), tree)]


def _provenance_section(run_dir: Path, provenance: dict[str, Any]) -> str:
    software = [{"package": k, "version": v} for k, v in (provenance.get("software") or {}).items()]
    inputs = provenance.get("inputs") or []
    chain_file = run_dir / str(provenance.get("effective_chain_file", "chain.effective.toml"))
    chain_text = chain_file.read_text(encoding="utf-8") if chain_file.is_file() else ""
    return (
        "<h2>Provenance</h2>"
        f"<p>chain <b>{html.escape(str(provenance.get('chain')))}</b> on {html.escape(str(provenance.get('device')))}, "
        f"{html.escape(str(provenance.get('created_utc')))}, host {html.escape(str(provenance.get('host')))}</p>"
        + _table(software)
        + _table(inputs)
        + f"<pre>{html.escape(chain_text)}</pre>"
    )


def write_run_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` (see the module docstring); returns its path."""
    run_dir = Path(run_dir)
    provenance_path = run_dir / "provenance.json"
    if not provenance_path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run folder (no provenance.json)")
    provenance = json.loads(provenance_path.read_text(encoding="utf-8"))
    sections = [
        _notes_section(run_dir, provenance),
        _previews(run_dir),
        _reports_section(run_dir),
        _timing_section(provenance),
        _provenance_section(run_dir, provenance),
    ]
    path = run_dir / REPORT_FILE
    path.write_text(
        _page(f"reconstream run: {provenance.get('chain')} ({run_dir.name})", sections), encoding="utf-8"
    )
    return path


# ------------------------------------------------------------------------------------------- a sweep


def _thumbnail(point_dir: Path) -> str:
    previews = sorted((point_dir / "png").glob("*.png"))
    return _img(previews[0].read_bytes(), "image/png", point_dir.name, "thumb") if previews else ""


def write_sweep_report(sweep_dir: Path) -> Path:
    """Write ``sweep_dir/report.html``: the points' table with thumbnails and the Pareto plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep_dir = Path(sweep_dir)
    document = json.loads((sweep_dir / "sweep.json").read_text(encoding="utf-8"))
    points = document["points"]
    keys = list(document["grid"])
    fig, ax = plt.subplots(figsize=(6, 4))
    front = sorted((p for p in points if p["pareto"]), key=lambda p: p["latency_s"])
    ax.scatter([p["latency_s"] for p in points], [p["quality"] for p in points], color="#888", label="points")
    ax.plot(
        [p["latency_s"] for p in front],
        [p["quality"] for p in front],
        "o-",
        color="#2e7d32",
        label="Pareto front",
    )
    for p in points:
        ax.annotate(
            str(p["point"]),
            (p["latency_s"], p["quality"]),
            fontsize=8,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax.set_xlabel("latency (s)")
    ax.set_ylabel("quality (lower is better)")
    ax.legend(fontsize=8)
    rows = []
    for p in points:
        rows.append({k: p.get(k) for k in ["point", *keys, "quality", "latency_s", "pareto"]})
    thumbs = "".join(
        f"<figure>{_thumbnail(sweep_dir / 'points' / format(p['point'], '03d'))}"
        f"<figcaption>point {p['point']}</figcaption></figure>"
        for p in points
    )
    sections = [
        f"<p>chain <b>{html.escape(document['chain'])}</b>, data {html.escape(str(document['data']))}; "
        f"quality: {html.escape(document['quality_metric'])}</p>",
        "<h2>Pareto front</h2>" + _figure(_plot_png(fig), "image/png", "quality against latency"),
        "<h2>Points</h2>"
        + _table(
            rows,
            ["point", *keys, "quality", "latency_s", "pareto"],
            lambda r: "pareto" if r["pareto"] else "",
        ),
        "<h2>Thumbnails</h2>" + thumbs,
    ]
    path = sweep_dir / REPORT_FILE
    path.write_text(_page(f"reconstream sweep: {document['chain']}", sections), encoding="utf-8")
    return path


def write_report(folder: Path) -> Path:
    """A sweep folder (``sweep.json``) or a run folder (``provenance.json``) → its ``report.html``."""
    folder = Path(folder)
    if (folder / "sweep.json").is_file():
        return write_sweep_report(folder)
    return write_run_report(folder)
