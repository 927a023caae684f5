"""The run and sweep report pages, opened in a real headless Chromium: no console errors, every image
loads, a screenshot is taken.  Skipped (saying so) where no Chromium is installed; ``.ci/run`` installs
Debian's ``chromium``."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from plugins.cli import main
from plugins.report import _flow_section, write_sweep_report

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
)


def _open_in_chromium(page: Path, screenshot: Path) -> tuple[str, str]:
    """(the DOM after load, Chromium's log) for ``page``; a screenshot of it goes to ``screenshot``."""
    if CHROMIUM is None:
        pytest.skip("no Chromium here (Debian package 'chromium'; .ci/run installs it)")
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    dom = subprocess.run(
        [*base, "--enable-logging=stderr", "--log-level=0", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    subprocess.run(
        [*base, "--window-size=1100,1600", f"--screenshot={screenshot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return dom.stdout, dom.stderr


def _check_page(page: Path, screenshot: Path) -> None:
    dom, log = _open_in_chromium(page, screenshot)
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None
    n_images = page.read_text(encoding="utf-8").count("<img ")
    assert f'data-images="{n_images}"' in body.group(0) and 'data-broken-images="0"' in body.group(0), body
    assert n_images >= 2 and screenshot.stat().st_size > 10_000


def test_run_report_of_a_cine_run_opens_cleanly_in_chromium(tmp_path: Path) -> None:
    pytest.importorskip("hardware_sim.mr.exam")
    from hardware_sim.mr import simulate_exam
    from plugins.io.ismrmrd_files import write_raw
    from tests.plugins.server.helpers import small_two_slice_cine_config

    exam = simulate_exam(small_two_slice_cine_config(4))
    raw = tmp_path / "raw.h5"
    write_raw(raw, exam.header, exam.items())
    exam.write_truth(tmp_path / "raw.truth.h5")
    out = tmp_path / "run"
    assert main(["run", "--chain", "cine", "--input", str(raw), "--out", str(out), "--device", "cpu"]) == 0
    assert main(["compare", str(out), str(tmp_path / "raw.truth.h5")]) == 0
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    for heading in ("Images", "Scores against the simulator's truth", "Timing", "Provenance"):
        assert f"<h2>{heading}</h2>" in page, heading
    assert "mr.series.1.slices.slice 0.nrmse" in page and "image/gif" in page
    _check_page(out / "report.html", tmp_path / "run.png")


def test_sweep_report_shows_the_pareto_plot_and_thumbnails(tmp_path: Path) -> None:
    pytest.importorskip("hardware_sim.mr.exam")
    from plugins.sweep import parse_grid, run_sweep

    data = "simulated:n_slices=1,n_coils=8,n_readout=64,n_phase_encodes=64,n_phases=8,seed=1"
    run_sweep("cine", [parse_grid("unfold.method=grappa,sense")], data, tmp_path, progress=lambda _l: None)
    page = write_sweep_report(tmp_path)
    text = page.read_text(encoding="utf-8")
    assert "Pareto front" in text and text.count('class="thumb"') == 2
    _check_page(page, tmp_path / "sweep.png")


def test_flow_section_draws_the_curves_and_the_table() -> None:
    report = {
        "venc_cm_per_s": 150,
        "qp_qs": 0.98,
        "vessels": [
            {
                "label": "ascending_aorta",
                "slice_index": 0,
                "area_cm2": 6.1,
                "phase_times_s": [0.0, 0.1, 0.2],
                "flow_ml_per_s": [10.0, 400.0, 50.0],
                "volumes": {"net_ml": 80.1, "forward_ml": 82.0},
                "peak_velocity_cm_per_s": 120.0,
            }
        ],
    }
    html = _flow_section(report)
    assert "flow curves per vessel" in html and "Qp:Qs = 0.98" in html and "80.1" in html
