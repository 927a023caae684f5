"""Issue 25: one readable preview per series — a volume gets orthogonal mid-slices and a MIP with a colour
bar, a velocity series a diverging map with the VENC on the bar, and no series gets one file per slice."""

from __future__ import annotations

from pathlib import Path

import ismrmrd
import numpy as np
from PIL import Image

from plugins.io.outputs import OutputWriter
from plugins.io.previews import colourise, series_style


def _image(
    pixels: np.ndarray, series: int, slice_index: int, phase: int, meta: dict[str, str]
) -> ismrmrd.Image:
    image = ismrmrd.Image.from_array(pixels.astype(np.float32)[None, None], transpose=False)
    image.image_series_index, image.slice, image.phase = series, slice_index, phase
    image.field_of_view = (2.0 * pixels.shape[1], 2.0 * pixels.shape[0], 4.0)
    image.position = (0.0, 0.0, 4.0 * slice_index)
    image.read_dir, image.phase_dir, image.slice_dir = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)
    attributes = ismrmrd.Meta()
    for key, value in meta.items():
        attributes[key] = value
    image.attribute_string = attributes.serialize()
    return image


def _write(images: list[ismrmrd.Image], out: Path) -> list[Path]:
    writer = OutputWriter(out)
    for image in images:
        writer.write(image)
    return writer.close()


def test_volume_gets_one_preview_with_orthogonal_views_mip_and_colour_bar(tmp_path: Path) -> None:
    zz, yy, xx = np.mgrid[0:30, 0:40, 0:48]
    volume = np.where((zz - 15) ** 2 / 100 + (yy - 20) ** 2 / 200 + (xx - 24) ** 2 / 300 < 1, 0.1, 0.0)
    volume[15, 20, 24] = 0.3  # a hot spot the MIP must show
    meta = {"Unit": "1/cm", "Role": "mu_map_511keV"}
    paths = _write([_image(volume[k], 20, k, 0, meta) for k in range(30)], tmp_path)
    assert [p.name for p in paths] == ["series20.png"]
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["series20.png"]
    preview = np.asarray(Image.open(paths[0]).convert("RGB"))
    assert preview.shape[1] > 3 * preview.shape[0] // 2  # four panels side by side, bar on the right
    bar_top, bar_bottom = 26 + 24, preview.shape[0] - 46  # the colour bar: white (top) to black (bottom)
    column = preview[bar_top + 2 : bar_bottom - 2, -100:-86].mean(axis=(1, 2))
    assert column[:5].mean() > 240 and column[-5:].mean() < 15
    assert np.all(np.diff(column) <= 0.5)


def test_velocity_series_uses_a_diverging_map_with_the_venc(tmp_path: Path) -> None:
    frames = []
    for p in range(4):
        v = np.zeros((32, 32))
        v[8:24, 8:24] = 1.0  # static tissue (non-zero, inside the body)
        v[14:18, 14:18] = 80.0 * (p + 1) / 4  # a vessel
        frames.append(v)
    meta = {"PC_role": "velocity", "units": "cm/s", "VENC_cm_per_s": "100", "WindowCenter": "0",
            "WindowWidth": "200"}  # fmt: skip
    images = [_image(f, 2, 0, p, meta) for p, f in enumerate(frames)]
    style = series_style(2, images, frames)
    assert style.colour_map == "diverging" and style.note == "VENC 100 cm/s"
    assert (style.low, style.high, style.unit) == (-100.0, 100.0, "cm/s")
    rgb = np.asarray(colourise(frames[3], style))
    assert tuple(rgb[0, 0]) == (0, 0, 0)  # masked (exactly 0) outside the body: black
    red, _, blue = (int(c) for c in rgb[16, 16])
    assert red > 150 and blue < 120  # +80 cm/s: red
    paths = _write(images, tmp_path)
    assert [p.name for p in paths] == ["series2.png", "series2.gif"]
    with Image.open(paths[1]) as gif:
        assert getattr(gif, "n_frames", 1) == 4


def test_single_3d_pet_image_is_shown_as_a_volume(tmp_path: Path) -> None:
    zz, yy, xx = np.mgrid[0:24, 0:32, 0:32]
    activity = np.where((zz - 12) ** 2 + (yy - 16) ** 2 + (xx - 16) ** 2 < 64, 5000.0, 0.0).astype(np.float32)
    image = ismrmrd.Image.from_array(activity[None], transpose=False)
    image.image_series_index = 100
    image.field_of_view = (64.0, 64.0, 48.0)
    image.slice_dir = (0.0, 0.0, 1.0)
    meta = ismrmrd.Meta()
    meta["Modality"], meta["Units"] = "PT", "Bq/ml"
    image.attribute_string = meta.serialize()
    paths = _write([image], tmp_path)
    assert [p.name for p in paths] == ["series100.png"]
    preview = np.asarray(Image.open(paths[0]).convert("RGB"))
    assert preview.shape[1] > 3 * preview.shape[0] // 2  # orthogonal views + MIP side by side
    assert preview[60:, : preview.shape[1] - 110].min() < 30  # the hot sphere drawn dark (inverted grey)


def test_relaxometry_maps_use_their_colour_map_and_psir_stays_grey(tmp_path: Path) -> None:
    """T1 maps: lipari, T2/T2*: navia (Fuderer et al. 2024), masked 0 black; a PSIR image with a window
    that starts below 0 is grey (not the diverging map of a window centred on 0), and a one-slice map of
    192 pixels is drawn enlarged."""
    t1 = np.zeros((156, 192))
    t1[40:110, 50:150] = 1000.0
    t1[60:90, 80:120] = 1600.0
    meta = {"Role": "t1", "Unit": "ms", "WindowCenter": "1000", "WindowWidth": "2000", "ColourMap": "lipari"}
    style = series_style(30, [_image(t1, 30, 0, 0, meta)], [t1])
    assert style.colour_map == "lipari" and (style.low, style.high) == (0.0, 2000.0)
    rgb = np.asarray(colourise(t1, style)).astype(int)
    assert tuple(rgb[0, 0]) == (0, 0, 0)  # masked
    assert rgb[45, 55, 0] > rgb[45, 55, 2] and rgb[70, 100].sum() > rgb[45, 55].sum()  # reddish, brighter
    navia = series_style(40, [_image(t1, 40, 0, 0, {**meta, "ColourMap": "navia"})], [t1])
    assert navia.colour_map == "navia"
    green = np.asarray(colourise(np.full((2, 2), 1300.0), navia)).astype(int)[0, 0]
    assert green[1] > green[0] and green[1] > green[2]  # navia's middle-upper range is green
    psir = np.zeros((156, 192))
    psir[40:110, 50:150] = -0.02  # remote myocardium near its null
    psir[60:70, 80:120] = 0.7  # scar
    psir_meta = {
        "Role": "psir",
        "Unit": "a.u.",
        "WindowCenter": "0.3",
        "WindowWidth": "1",
        "ColourMap": "gray",
    }
    psir_style = series_style(20, [_image(psir, 20, 0, 0, psir_meta)], [psir])
    grey = np.asarray(colourise(psir, psir_style)).astype(int)
    assert psir_style.colour_map == "gray" and np.all(grey[..., 0] == grey[..., 2])
    assert grey[65, 100, 0] > 200 and grey[45, 55, 0] < 60 and grey[0, 0, 0] < 60  # scar bright, rest dark
    paths = _write([_image(t1, 30, 0, 0, meta)], tmp_path)
    with Image.open(paths[0]) as preview:
        assert preview.size[0] >= 2 * 192
