"""Pictures of the simulator's default exams (``python -m hardware_sim.mr.figures OUT_DIR``).

* ``cine_stack_ed_es.png``: the default short-axis cine stack (mitral annulus → apex, six slices a
  row), end-diastole in the upper two rows and end-systole in the lower two;
* ``cine_long_axis.png``: 4-, 3- and 2-chamber views at end-diastole and end-systole;
* ``flow_planes.png``: magnitude and through-plane velocity of the aortic and pulmonary flow planes at
  peak systole.

Images are the simulator's noise-free band-limited magnetisation (the truth a fully sampled, noiseless
reconstruction returns), on the default recon grid, cropped to the central 60 % of the field of view.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from hardware_sim.mr.config import MRExamConfig
from hardware_sim.mr.model import build_model, flows_at
from hardware_sim.mr.physiology import CardiacState

log = logging.getLogger(__name__)
CROP_FRACTION = 0.6
STACK_CROP_FRACTION = 0.4
"""Short-axis tiles show the central 40 % of the field of view (the slice centre is on the LV axis)."""


def _crop(image: npt.NDArray[np.float32], fraction: float = CROP_FRACTION) -> npt.NDArray[np.float32]:
    ny, nx = image.shape
    cy, cx = int(ny * fraction / 2), int(nx * fraction / 2)
    return image[ny // 2 - cy : ny // 2 + cy, nx // 2 - cx : nx // 2 + cx]


def _grid(tiles: list[list[npt.NDArray[np.float32]]], titles: list[list[str]], zoom: int = 3) -> Image.Image:
    """Rows of equally sized tiles (values already in 0..1) with a caption on each tile."""
    h, w = tiles[0][0].shape
    canvas = Image.new("L", (w * zoom * len(tiles[0]), h * zoom * len(tiles)))
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            pixels = Image.fromarray(np.uint8(255 * np.clip(tile, 0.0, 1.0))).resize((w * zoom, h * zoom))
            canvas.paste(pixels, (c * w * zoom, r * h * zoom))
            draw.text((c * w * zoom + 3, r * h * zoom + 2), titles[r][c], fill=255)
    return canvas


def _magnitudes(
    config: MRExamConfig, contractions: tuple[float, ...], crop: float = CROP_FRACTION
) -> list[list[npt.NDArray[np.float32]]]:
    """``[contraction][slice]`` cropped truth magnitudes (cine, no flow)."""
    model = build_model(config)
    return [
        [_crop(np.abs(model.synthesizer(s).truth_image(c, None)[0]), crop) for s in range(config.n_slices)]
        for c in contractions
    ]


def _normalise(rows: list[list[npt.NDArray[np.float32]]]) -> list[list[npt.NDArray[np.float32]]]:
    scale = float(np.percentile(np.concatenate([t.ravel() for row in rows for t in row]), 99.5))
    return [[t / scale for t in row] for row in rows]


def stack_figure(config: MRExamConfig, per_row: int = 6) -> Image.Image:
    """The short-axis stack at end-diastole (contraction 0, upper rows) and end-systole (1, lower rows),
    ``per_row`` slices a row from base to apex."""
    ed, es = _normalise(_magnitudes(config, (0.0, 1.0), crop=STACK_CROP_FRACTION))
    blank = np.zeros_like(ed[0])
    rows, titles = [], []
    for name, tiles in (("ED", ed), ("ES", es)):
        for start in range(0, len(tiles), per_row):
            chunk = tiles[start : start + per_row]
            rows.append(chunk + [blank] * (per_row - len(chunk)))
            titles.append(
                [f"{name} {k}" for k in range(start, start + len(chunk))] + [""] * (per_row - len(chunk))
            )
    return _grid(rows, titles)


def long_axis_figure(base: MRExamConfig) -> Image.Image:
    """4-, 3- and 2-chamber views (columns) at end-diastole and end-systole (rows)."""
    views = ("four_chamber", "three_chamber", "two_chamber")
    cols = [_magnitudes(base.model_copy(update={"view": v, "n_slices": 1}), (0.0, 1.0)) for v in views]
    rows = _normalise([[cols[v][p][0] for v in range(3)] for p in range(2)])
    return _grid(rows, [[f"{p} {v}" for v in views] for p in ("ED", "ES")])


def flow_figure(config: MRExamConfig) -> Image.Image:
    """Magnitude (top) and velocity (bottom, grey = 0, white = +VENC) of each flow plane at peak systole."""
    model = build_model(config)
    ps = model.rhythm.systole_fraction
    state = CardiacState(
        np.array([0.4 * ps]), np.array([0.0]), np.array([1.0 / model.rhythm.nominal_rr_s]), np.ones(1)
    )
    flows = flows_at(model.flow, state)
    mags, vels = [], []
    for s in range(config.n_slices):
        image = model.synthesizer(s).truth_image(0.0, flows)
        magnitude = np.abs(image[1])
        mags.append(_crop(magnitude))
        phase = np.where(magnitude > 0.05 * magnitude.max(), np.angle(image[1] * np.conj(image[0])), 0.0)
        vels.append(_crop((0.5 + 0.5 * phase / np.pi).astype(np.float32)))  # no signal: shown as 0 (grey)
    names = ["aortic plane", "pulmonary plane"] * config.n_slices
    return _grid([_normalise([mags])[0], vels], [names[: config.n_slices], ["velocity"] * config.n_slices])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the PNG files")
    parser.add_argument(
        "--field", type=float, choices=[1.5, 3.0], default=1.5, help="B0 in tesla (default 1.5)"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cine = MRExamConfig(field_strength_t=args.field, n_coils=8)
    stack_figure(cine).save(args.out / "cine_stack_ed_es.png")
    long_axis_figure(cine).save(args.out / "cine_long_axis.png")
    flow_figure(MRExamConfig(protocol="flow", field_strength_t=args.field, n_coils=8)).save(
        args.out / "flow_planes.png"
    )
    print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
