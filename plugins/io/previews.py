"""PNG/GIF previews a person can read: one preview per image series, with a colour bar, units and a title.

* a volume (one 3-D image: PET; or ≥ ``MIN_VOLUME_SLICES`` slices, one frame each: μ-map): axial, coronal and sagittal
  mid-slices and a coronal maximum-intensity projection, drawn at their physical aspect ratio (voxel sizes
  from the image geometry), superior at the top;
* a time series (cine, phase contrast): a grid of slices (rows) × frames (columns) in the PNG and an
  animated GIF of the frames with every slice side by side;
* anything else: a grid of its slices.

Signed maps (velocity, B0: a window centred on 0) get a diverging blue–white–red colour map, their pixels
that are exactly 0 (masked: outside the body) drawn black; velocity images say their VENC on the colour bar.  The window comes from the images' ``WindowCenter``/``WindowWidth`` meta
when present, else from the 0.5–99.5 % percentiles (from 0 for non-negative data).  PET activity is shown in
inverted grey, everything else in grey, unless the images name a colour map in their ``ColourMap`` meta
(``gray``, ``gray_r``, ``diverging``, or the relaxometry maps ``lipari`` for T1 and ``navia`` for T2/T2*
recommended by Fuderer et al., MRM 2024, "Color-map recommendation for MR relaxometry maps"; their
exact-0 pixels — masked — are drawn black).  Drawn with Pillow.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ismrmrd
import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_VOLUME_SLICES = 8
"""Series with at least this many slices of one frame each are shown as a volume (orthogonal views + MIP)."""
MAX_GRID_WIDTH_PX = 1600
MAX_FRAME_COLUMNS = 8
MIN_TILE_PX = 160
MIN_ROW_PX = 384
"""A grid row narrower than this (e.g. one 192-pixel map) is enlarged, up to 2×, so a reader sees detail."""
_BAR_WIDTH_PX = 110
_TITLE_PX = 26
_MIN_HEIGHT_PX = 240
_PET_UNITS = ("Bq/ml", "BQML", "SUVbw", "SUV")
_ANCHORS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "lipari": ((0.011, 0.073, 0.148), (0.093, 0.241, 0.381), (0.320, 0.358, 0.480), (0.470, 0.374, 0.448),
               (0.646, 0.385, 0.403), (0.854, 0.434, 0.370), (0.912, 0.606, 0.454), (0.907, 0.769, 0.604),
               (0.992, 0.959, 0.857)),
    "navia": ((0.013, 0.076, 0.153), (0.029, 0.222, 0.399), (0.104, 0.377, 0.562), (0.183, 0.473, 0.547),
              (0.255, 0.543, 0.501), (0.354, 0.632, 0.444), (0.539, 0.766, 0.415), (0.828, 0.891, 0.632),
              (0.987, 0.958, 0.850)),
}  # fmt: skip
"""Every 32nd entry of F. Crameri's Scientific Colour Maps 8 (MIT licence, doi:10.5281/zenodo.1243862),
interpolated linearly to 256 entries."""
COLOUR_MAPS = ("gray", "gray_r", "diverging", *_ANCHORS)


@dataclass(frozen=True)
class SeriesStyle:
    """How a series is drawn.

    Attributes:
        title: first line of the preview (series number and what it is).
        unit: unit of the pixel values for the colour bar (may be empty).
        low, high: display window, in pixel units.
        colour_map: one of :data:`COLOUR_MAPS`.
        note: extra line under the colour bar (e.g. the VENC), or empty.
    """

    title: str
    unit: str
    low: float
    high: float
    colour_map: str
    note: str = ""


def _meta(image: ismrmrd.Image) -> dict[str, str]:
    if not image.attribute_string:
        return {}
    meta = ismrmrd.Meta.deserialize(image.attribute_string)
    return {str(k): str(meta[k][0] if isinstance(meta[k], list) else meta[k]) for k in meta}


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def series_style(series: int, images: Sequence[ismrmrd.Image], frames: Sequence[np.ndarray]) -> SeriesStyle:
    """Title, unit, window and colour map of a series from its first image's meta and its pixel values."""
    meta = _meta(images[0])
    unit = meta.get("units") or meta.get("Units") or meta.get("Unit") or ""
    unit = "%" if unit == "percent" else unit
    modality = {"PT": "PET", "MR": "MR"}.get(meta.get("Modality", ""), "")
    name = meta.get("PC_role") or meta.get("DixonMap") or meta.get("Role") or modality
    venc = _float(meta.get("VENC_cm_per_s"))
    centre, width = _float(meta.get("WindowCenter")), _float(meta.get("WindowWidth"))
    if centre is not None and width is not None and width > 0:
        low, high = centre - width / 2, centre + width / 2
    else:
        stack = np.concatenate([f.ravel() for f in frames])
        low = float(np.percentile(stack, 0.5))
        positive = stack[stack > 0]
        sparse = unit in _PET_UNITS and positive.size  # activity: window on the voxels that have some
        high = float(np.percentile(positive if sparse else stack, 99.5))
        low = 0.0 if low >= 0 else low
        if high <= low:
            high = low + 1.0
    signed = centre == 0.0 or (venc is not None and name == "velocity")
    colour_map = "diverging" if signed else ("gray_r" if unit in _PET_UNITS else "gray")
    if meta.get("ColourMap") in COLOUR_MAPS:
        colour_map = meta["ColourMap"]
    note = f"VENC {venc:g} cm/s" if venc is not None and name == "velocity" else ""
    title = f"series {series}" + (f": {name.replace('_', ' ')}" if name else "")
    return SeriesStyle(title, unit, low, high, colour_map, note)


def _lut(colour_map: str) -> np.ndarray:
    """256 × 3 uint8 colour table."""
    ramp = np.linspace(0.0, 1.0, 256)
    if colour_map == "gray":
        rgb = np.stack([ramp] * 3, axis=1)
    elif colour_map == "gray_r":
        rgb = np.stack([1.0 - ramp] * 3, axis=1)
    elif colour_map in _ANCHORS:
        anchors = np.asarray(_ANCHORS[colour_map])
        at = np.linspace(0.0, 1.0, anchors.shape[0])
        rgb = np.stack([np.interp(ramp, at, anchors[:, c]) for c in range(3)], axis=1)
    else:  # blue (−) → white (0) → red (+)
        blue, red = np.array([0.13, 0.30, 0.80]), np.array([0.80, 0.10, 0.10])
        t = np.abs(2.0 * ramp - 1.0)[:, None]
        end = np.where((ramp < 0.5)[:, None], blue, red)
        rgb = (1.0 - t) * 1.0 + t * end
    return np.round(255 * rgb).astype(np.uint8)


def colourise(frame: np.ndarray, style: SeriesStyle) -> Image.Image:
    """A 2-D float frame → RGB image through the style's window and colour map."""
    scaled = np.clip((frame - style.low) / (style.high - style.low), 0.0, 1.0)
    index = np.round(255 * np.nan_to_num(scaled)).astype(np.uint8)
    rgb = _lut(style.colour_map)[index]
    if style.colour_map == "diverging" or style.colour_map in _ANCHORS:
        rgb[frame == 0.0] = 0  # a signed or relaxometry map's exact zeros are masked pixels: black
    return Image.fromarray(rgb, mode="RGB")


@functools.cache
def _font(size: int = 14) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans when the system has it (μ, ×, ± glyphs), else Pillow's own font."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def _label(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def colour_bar(style: SeriesStyle, height: int) -> Image.Image:
    """A vertical colour bar with the window's ends and centre labelled, the unit and the note."""
    panel = Image.new("RGB", (_BAR_WIDTH_PX, height), "black")
    bar_h = max(height - 70, 40)
    ramp = np.linspace(1.0, 0.0, bar_h)[:, None] * np.ones((1, 18))
    bar = colourise(style.low + ramp * (style.high - style.low), style)
    panel.paste(bar, (8, 24))
    draw = ImageDraw.Draw(panel)
    font = _font(13)
    draw.text((4, 4), style.unit or "a.u.", fill="white", font=font)
    for fraction, value in ((0.0, style.high), (0.5, (style.low + style.high) / 2), (1.0, style.low)):
        y = 24 + fraction * (bar_h - 1)
        draw.line([(26, y), (31, y)], fill="white")
        text = _label(value)
        if style.colour_map == "diverging" and value > 0:
            text = "+" + text
        draw.text((34, y - 7), text, fill="white", font=font)
    if style.note:
        draw.text((4, 24 + bar_h + 6), style.note, fill="white", font=_font(12))
    return panel


def _compose(panels: Sequence[tuple[Image.Image, str]], style: SeriesStyle, subtitle: str) -> Image.Image:
    """Panels side by side (each with a caption), a title line and the colour bar on the right."""
    height = max(max(p.height for p, _ in panels) + 18, _MIN_HEIGHT_PX)
    width = sum(p.width for p, _ in panels) + 6 * (len(panels) - 1)
    canvas = Image.new("RGB", (width + _BAR_WIDTH_PX, height + _TITLE_PX), "black")
    draw = ImageDraw.Draw(canvas)
    draw.text((6, 5), f"{style.title}  {subtitle}".strip(), fill="white", font=_font(15))
    x = 0
    for panel, caption in panels:
        canvas.paste(panel, (x, _TITLE_PX + 18))
        draw.text((x + 4, _TITLE_PX + 1), caption, fill=(220, 220, 220), font=_font(13))
        x += panel.width + 6
    canvas.paste(colour_bar(style, height), (width, _TITLE_PX))
    return canvas


def _frame_of(image: ismrmrd.Image) -> np.ndarray:
    """One 2-D float frame per image (centre z, first channel; magnitude for complex data)."""
    planes = np.asarray(image.data).reshape((-1, *image.data.shape[-2:]))
    frame = planes[planes.shape[0] // 2]
    return np.abs(frame).astype(np.float32) if np.iscomplexobj(frame) else frame.astype(np.float32)


def _pixel_mm(image: ismrmrd.Image) -> tuple[float, float]:
    """In-plane pixel size (y, x) in mm from the field of view (1 mm when unknown)."""
    fov, size = image.field_of_view, image.matrix_size
    dy = float(fov[1]) / int(size[1]) if fov[1] > 0 else 1.0
    dx = float(fov[0]) / int(size[0]) if fov[0] > 0 else 1.0
    return dy, dx


def _slice_spacing_mm(images: Sequence[ismrmrd.Image]) -> float:
    """Distance between consecutive slices along the slice normal (the slice thickness for one slice)."""
    normal = np.asarray(images[0].slice_dir, dtype=np.float64)
    positions = np.array([np.dot(np.asarray(im.position, dtype=np.float64), normal) for im in images])
    steps = np.abs(np.diff(positions))
    steps = steps[steps > 1e-6]
    if steps.size:
        return float(np.median(steps))
    thickness = float(images[0].field_of_view[2])
    return thickness if thickness > 0 else 1.0


def _resized(
    frame_rgb: Image.Image, height_mm: float, width_mm: float, scale_px_per_mm: float
) -> Image.Image:
    size = (max(1, round(width_mm * scale_px_per_mm)), max(1, round(height_mm * scale_px_per_mm)))
    return frame_rgb.resize(size, Image.Resampling.BILINEAR)


def stacked_volume(images: Sequence[ismrmrd.Image]) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A volume ``(z, y, x)``, superior first, and its voxel size ``(dz, dy, dx)`` in mm, from one 2-D image
    per slice (ordered along the slice normal) or from a single 3-D image."""
    if len(images) == 1 and int(images[0].matrix_size[2]) > 1:
        image = images[0]
        data = np.asarray(image.data)[0]
        volume = np.abs(data) if np.iscomplexobj(data) else data
        fov, size = image.field_of_view, image.matrix_size
        voxel = tuple(float(fov[i]) / int(size[i]) if fov[i] > 0 else 1.0 for i in (2, 1, 0))
        return volume.astype(np.float32)[::-1], (voxel[0], voxel[1], voxel[2])
    normal = np.asarray(images[0].slice_dir, dtype=np.float64)
    ordered = sorted(images, key=lambda im: float(np.dot(np.asarray(im.position, dtype=np.float64), normal)))
    volume = np.stack([_frame_of(im) for im in ordered])[::-1]
    dy, dx = _pixel_mm(ordered[0])
    return volume, (_slice_spacing_mm(ordered), dy, dx)


def volume_preview(
    volume: np.ndarray, voxel_mm: tuple[float, float, float], style: SeriesStyle
) -> Image.Image:
    """Axial, coronal and sagittal mid-slices and a coronal MIP of a ``(z, y, x)`` volume (superior first)."""
    dz, dy, dx = voxel_mm
    nz, ny, nx = volume.shape
    scale = 300.0 / max(ny * dy, nx * dx, nz * dz)  # the largest extent drawn at 300 px
    views = (
        (volume[nz // 2], ny * dy, nx * dx, f"axial (slice {nz // 2 + 1} of {nz})"),
        (volume[:, ny // 2, :], nz * dz, nx * dx, "coronal"),
        (volume[:, :, nx // 2], nz * dz, ny * dy, "sagittal"),
        (volume.max(axis=1), nz * dz, nx * dx, "coronal MIP"),
    )
    panels = [(_resized(colourise(v, style), h, w, scale), caption) for v, h, w, caption in views]
    return _compose(panels, style, f"{nz} slices, voxels {dx:.3g} x {dy:.3g} x {dz:.3g} mm")


def _grid(rows: Sequence[Sequence[np.ndarray]], style: SeriesStyle, tile_scale: float) -> Image.Image:
    height, width = rows[0][0].shape
    th, tw = max(1, round(height * tile_scale)), max(1, round(width * tile_scale))
    n_cols = max(len(r) for r in rows)
    grid = Image.new("RGB", (n_cols * tw, len(rows) * th), "black")
    for r, row in enumerate(rows):
        for c, frame in enumerate(row):
            grid.paste(colourise(frame, style).resize((tw, th), Image.Resampling.BILINEAR), (c * tw, r * th))
    return grid


def _tile_scale(n_cols: int, width: int) -> float:
    scale = min(MAX_GRID_WIDTH_PX / (n_cols * width), 1.0)
    if n_cols * width < MIN_ROW_PX:  # one or two small images (a map of one slice): enlarged, at most 2×
        return min(MIN_ROW_PX / (n_cols * width), 2.0)
    return max(scale, min(MIN_TILE_PX / width, 1.0)) if n_cols * width * scale < MIN_TILE_PX else scale


def write_series_preview(images: Sequence[ismrmrd.Image], folder: Path, series: int) -> list[Path]:
    """``png/series<S>.png`` (and ``series<S>.gif`` for a time series) for all images of one series."""
    folder.mkdir(parents=True, exist_ok=True)
    ordered = sorted(
        images,
        key=lambda im: (int(im.slice), int(im.set), int(im.contrast), int(im.phase), int(im.image_index)),
    )
    png = folder / f"series{series}.png"
    if len(ordered) == 1 and int(ordered[0].matrix_size[2]) > 1:  # one 3-D image (PET)
        volume, voxel_mm = stacked_volume(ordered)
        volume_preview(volume, voxel_mm, series_style(series, ordered, [volume])).save(png)
        return [png]
    frames = [_frame_of(im) for im in ordered]
    style = series_style(series, ordered, frames)
    by_slice: dict[int, list[np.ndarray]] = {}
    for image, frame in zip(ordered, frames, strict=True):
        by_slice.setdefault(int(image.slice), []).append(frame)
    rows = [by_slice[s] for s in sorted(by_slice)]
    n_frames = max(len(r) for r in rows)
    if n_frames == 1 and len(rows) >= MIN_VOLUME_SLICES and len({f.shape for f in frames}) == 1:
        volume_preview(*stacked_volume(ordered), style).save(png)
        return [png]
    if n_frames == 1:  # a few slices: one row of slices
        rows = [[r[0] for r in rows]]
    caption = ""
    if n_frames > 1 and len(rows) == 1:  # one slice's frames: a square grid
        n_cols = math.ceil(math.sqrt(n_frames))
        rows = [rows[0][i : i + n_cols] for i in range(0, n_frames, n_cols)]
        caption = "frames left to right, top to bottom"
    elif n_frames > 1:  # slices × frames: at most MAX_FRAME_COLUMNS frames per row, all of them in the GIF
        step = math.ceil(n_frames / MAX_FRAME_COLUMNS)
        rows = [r[::step] for r in rows]
        caption = "rows: slices; columns: frames" + (
            f" 1, {1 + step}, … (every {step}; all in the GIF)" if step > 1 else ""
        )
    shape = rows[0][0].shape
    scale = _tile_scale(max(len(r) for r in rows), shape[1])
    subtitle = (
        f"{len(by_slice)} slice(s) × {n_frames} frame(s)" if n_frames > 1 else f"{len(by_slice)} slice(s)"
    )
    _compose([(_grid(rows, style, scale), caption)], style,
             subtitle).save(png)  # fmt: skip
    if n_frames == 1:
        return [png]
    gif = folder / f"series{series}.gif"
    slices = [by_slice[s] for s in sorted(by_slice)]
    movie_scale = _tile_scale(len(slices), shape[1])
    movie = [
        _compose([(_grid([[r[min(p, len(r) - 1)] for r in slices]], style, movie_scale), f"frame {p + 1}")],
                 style, subtitle)
        for p in range(n_frames)
    ]  # fmt: skip
    movie[0].save(gif, save_all=True, append_images=movie[1:], duration=40, loop=0)
    return [png, gif]
