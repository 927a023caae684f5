"""``reconstream demo``: the main job on the embedded default, with no scanner, server or GPU.

Simulates a short retrospectively gated cine SSFP scan with the MR hardware simulator, streams it
through the shipped ``cine`` chain in-process, and writes the images (ISMRMRD HDF5 plus PNG grid and
animated GIF per slice) with provenance to ``--out``.  Nothing is canned: every image comes from the
simulated raw data through the reconstruction.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("reconstream.demo")

DEMO_SETTINGS = {
    # three slices of the planned short-axis stack, 40 mm apart: basal, mid-ventricular and apical
    "n_slices": 3,
    "slice_gap_mm": 32.0,
    "n_coils": 16,
    "acceleration": 2,
    "n_phases": 25,
    "heart_rate_bpm": 70.0,
    "seed": 7,
}


def run_demo(out_dir: Path, device: str = "auto") -> int:
    """Simulate, reconstruct and write; prints a short summary of what was written."""
    from hardware_sim.mr import MRExamConfig, simulate_exam
    from plugins.io.ismrmrd_files import open_raw, write_raw
    from plugins.runtime.chain import load_chain
    from plugins.runtime.session import run_to_folder

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = MRExamConfig(protocol="cine", **DEMO_SETTINGS)  # type: ignore[arg-type]
    exam = simulate_exam(config)
    raw_path = out_dir / "raw_cine.h5"
    n_items = write_raw(raw_path, exam.header, exam.items())
    exam.write_truth(out_dir / "raw_cine.truth.h5")
    print(
        f"simulated {n_items} raw items ({config.n_slices} slices, {config.n_coils} coils, R={config.acceleration}) "
        f"-> {raw_path}"
    )
    raw = open_raw(raw_path)
    chain = load_chain("cine")
    summary = run_to_folder(chain, raw.items, out_dir, header=raw.header, device=device, inputs=[raw_path])
    print(
        f"reconstructed {summary.n_images} images with chain 'cine' on {summary.device}; "
        f"previews: {', '.join(str(p) for p in summary.previews)}"
    )
    for stage in summary.stage_stats:
        print(
            f"  {stage['stage']:>20s}: {stage['n_inputs']:6d} in, {stage['n_outputs']:5d} out, "
            f"{stage['total_s']:.3f} s"
        )
    return 0 if summary.n_images > 0 else 1
