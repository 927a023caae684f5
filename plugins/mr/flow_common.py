"""Shared pieces of the flow plugins: header facts (VENC, flow direction, from the typed header of
:mod:`plugins.io.mr_header`), image roles and buffering.

Image roles between the flow plugins are carried in the ISMRMRD image meta attribute ``PC_role``:
``magnitude`` (image_type MAGNITUDE) or ``velocity`` (image_type PHASE, float32 pixels in cm/s, meta
``units=cm/s``, ``scale=1``, ``offset=0``, ``VENC_cm_per_s``, ``flow_direction``, display window
``WindowCenter=0``, ``WindowWidth=2·VENC`` in cm/s); optionally one
``background_offset`` image per slice (the subtracted background, cm/s), which later stages pass on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import ismrmrd
import numpy as np
import torch

from plugins.io.mr_header import mr_header
from plugins.runtime.config import PluginConfig
from plugins.runtime.plugin import ChainContext, Plugin
from recon.phasecontrast.maxwell import pixel_positions_m
from recon.phasecontrast.velocity import VelocityEncoding

ROLE_KEY = "PC_role"
WINDOW_CENTER_KEY = "WindowCenter"
WINDOW_WIDTH_KEY = "WindowWidth"
MAGNITUDE = "magnitude"
VELOCITY = "velocity"
OFFSET = "background_offset"


class FlowHeaderError(ValueError):
    """The session header lacks, or contradicts itself about, the flow encoding."""


def _user_values(header: Any, name: str) -> list[float]:
    typed = mr_header(header)
    if typed is None:
        return []
    try:
        return typed.numbers(name)
    except ValueError as exc:
        raise FlowHeaderError(str(exc)) from exc


def velocity_encoding_from_header(header: Any) -> VelocityEncoding:
    """VENC (``VENC_cm_per_s``) and ``flow_direction`` from the header's user parameters.

    Raises :class:`FlowHeaderError` naming what is wrong: no header, VENC missing, several different
    VENC values, a VENC that is not a positive finite number, a flow direction other than ±1.
    A missing ``flow_direction`` means +1 (along the slice normal).
    """
    if header is None:
        raise FlowHeaderError(
            "phase-contrast flow needs the ISMRMRD header (VENC_cm_per_s), but the session has none"
        )
    vencs = sorted(set(_user_values(header, "VENC_cm_per_s")))
    if not vencs:
        raise FlowHeaderError("header userParameters lack VENC_cm_per_s (the encoding velocity in cm/s)")
    if len(vencs) > 1:
        raise FlowHeaderError(f"header userParameters give inconsistent VENC_cm_per_s values {vencs}")
    directions = sorted(set(_user_values(header, "flow_direction")))
    if len(directions) > 1:
        raise FlowHeaderError(f"header userParameters give inconsistent flow_direction values {directions}")
    direction = directions[0] if directions else 1.0
    venc = vencs[0]
    if not (math.isfinite(venc) and venc > 0):
        raise FlowHeaderError(f"VENC_cm_per_s={venc} is not a positive number of cm/s")
    if direction not in (1.0, -1.0):
        raise FlowHeaderError(f"flow_direction={direction} must be +1 or -1")
    return VelocityEncoding(venc_cm_per_s=venc, flow_direction=int(direction))


def velocity_window(venc_cm_per_s: float) -> dict[str, str]:
    """Display window of velocity images (meta, cm/s): centred on 0, ``−VENC … +VENC``."""
    return {WINDOW_CENTER_KEY: "0", WINDOW_WIDTH_KEY: f"{2.0 * venc_cm_per_s:g}"}


def check_set_limits(header: Any) -> None:
    """The encoding limits must allow the two sets (0 = reference, 1 = velocity-encoded) when they say anything."""
    typed = mr_header(header)
    limit = typed.limit("set") if typed is not None else None
    if limit is not None and limit.maximum < 1:
        raise FlowHeaderError(
            f"encodingLimits.set.maximum={limit.maximum}: a flow series needs set 0 (reference) and set 1 (encoded)"
        )


def announced_n_phases(header: Any) -> int | None:
    """Cardiac phases announced by the header (``encodingLimits.phase.maximum + 1``), if any."""
    typed = mr_header(header)
    limit = typed.limit("phase") if typed is not None else None
    return None if limit is None else limit.count


def role_of(image: ismrmrd.Image) -> str | None:
    """The ``PC_role`` meta value of an image, or ``None`` for images the flow plugins do not own."""
    meta = _meta_of(image)
    value = meta.get(ROLE_KEY) if meta is not None else None
    return str(value) if value is not None else None


def _meta_of(image: ismrmrd.Image) -> ismrmrd.Meta | None:
    """The image's parsed meta attributes (read them, do not modify them), ``None`` when it has none.

    ``Image.meta`` is the parsed dictionary ``Image.attribute_string`` is serialised from and parsed into: reading
    it directly saves an XML round trip per call (≈ 0.3 ms; the flow plugins ask for roles of every image)."""
    meta = image.meta
    return meta if meta else None


def meta_value(image: ismrmrd.Image, key: str) -> str | None:
    """One meta attribute of an image as a string (``None`` when absent)."""
    meta = _meta_of(image)
    if meta is None or key not in meta:
        return None
    return str(meta[key])


def pixel_area_mm2(image: ismrmrd.Image) -> float:
    """In-plane pixel area from the image's field of view and matrix size."""
    fov = image.field_of_view
    size = image.matrix_size
    if fov[0] <= 0 or fov[1] <= 0:
        raise ValueError("image field_of_view is zero: cannot convert velocity to flow (ml/s)")
    return float(fov[0]) / int(size[0]) * float(fov[1]) / int(size[1])


def make_image(
    pixels_yx: np.ndarray, template: ismrmrd.Image, image_type: int, series_index: int, meta: dict[str, str]
) -> ismrmrd.Image:
    """A 2-D float32 image with the geometry and counters of ``template`` and the given meta attributes."""
    image = ismrmrd.Image.from_array(
        np.ascontiguousarray(pixels_yx, dtype=np.float32)[None, None], transpose=False
    )
    head = template.getHead()
    head.data_type = image.data_type
    head.matrix_size = image.getHead().matrix_size
    head.channels = 1
    head.image_type = image_type
    head.image_series_index = series_index
    image.setHead(head)
    image.meta = {str(key): _as_meta_value(value) for key, value in meta.items()}
    return image


def _as_meta_value(value: Any) -> str | list[str]:
    """A meta value as it reads after an XML round trip: strings, a list unless it holds exactly one value."""
    if isinstance(value, list):
        return str(value[0]) if len(value) == 1 else [str(v) for v in value]
    return str(value)


@dataclass
class SliceSeries:
    """The images of one slice collected so far, keyed by (role, cardiac phase)."""

    images: dict[tuple[str, int], ismrmrd.Image] = field(default_factory=dict)

    def phases(self, role: str) -> list[int]:
        return sorted(p for r, p in self.images if r == role)

    def stack(self, role: str) -> tuple[np.ndarray, list[ismrmrd.Image]]:
        """``(phases, y, x)`` float64 pixels of one role and the images in phase order."""
        ordered = [self.images[(role, p)] for p in self.phases(role)]
        return np.stack([np.asarray(im.data).reshape(im.data.shape[-2:]).real for im in ordered]), ordered


class SliceBuffer:
    """Collects per-slice images of the given roles; a slice is complete when every role has ``n_phases``."""

    def __init__(self, roles: Iterable[str], n_phases: int | None) -> None:
        self.roles = tuple(roles)
        self.n_phases = n_phases
        self.slices: dict[int, SliceSeries] = {}

    def add(self, image: ismrmrd.Image, role: str) -> int | None:
        """Store ``image``; return its slice index when that slice has become complete."""
        series = self.slices.setdefault(int(image.slice), SliceSeries())
        series.images[(role, int(image.phase))] = image
        if self.n_phases is None:
            return None
        if all(len(series.phases(r)) >= self.n_phases for r in self.roles):
            return int(image.slice)
        return None

    def pop(self, slice_index: int) -> SliceSeries:
        return self.slices.pop(slice_index)

    def pop_all(self) -> list[tuple[int, SliceSeries]]:
        """Every slice still buffered (end of stream), in slice order."""
        out = sorted(self.slices.items())
        self.slices.clear()
        return out


class FlowSlicePlugin(Plugin):
    """Base of the plugins that work on whole slices of magnitude + velocity images.

    Images with a ``PC_role`` are buffered per slice; when a slice has all cardiac phases (announced by
    the header or the config) :meth:`process_slice` runs; at the end of the stream every incomplete slice
    is processed.  Images without a role, and every other item, pass straight through.
    """

    accepts = (ismrmrd.Image,)

    def __init__(self, config: PluginConfig, context: ChainContext, n_phases: int | None = None) -> None:
        super().__init__(config, context)
        self.encoding = velocity_encoding_from_header(context.header)
        self.buffer = SliceBuffer((MAGNITUDE, VELOCITY), n_phases or announced_n_phases(context.header))

    def process(self, item: Any) -> Iterable[Any]:
        role = role_of(item)
        if role not in (MAGNITUDE, VELOCITY):
            yield item
            return
        complete = self.buffer.add(item, role)
        if complete is not None:
            yield from self.process_slice(complete, self.buffer.pop(complete))

    def finish(self) -> Iterable[Any]:
        for index, series in self.buffer.pop_all():
            yield from self.process_slice(index, series)

    def process_slice(self, slice_index: int, series: SliceSeries) -> Iterator[Any]:  # pragma: no cover
        raise NotImplementedError


def stacks_of(series: SliceSeries) -> tuple[np.ndarray, np.ndarray, list[ismrmrd.Image], list[ismrmrd.Image]]:
    """``(magnitude, velocity)`` ``(phases, y, x)`` arrays and their images, checking the phases match."""
    if series.phases(MAGNITUDE) != series.phases(VELOCITY):
        raise ValueError(
            f"magnitude phases {series.phases(MAGNITUDE)} and velocity phases {series.phases(VELOCITY)} differ"
        )
    mag, mag_images = series.stack(MAGNITUDE)
    vel, vel_images = series.stack(VELOCITY)
    return mag, vel, mag_images, vel_images


def replace_pixels(image: ismrmrd.Image, pixels_yx: np.ndarray, extra_meta: dict[str, str]) -> ismrmrd.Image:
    """A copy of a flow image with new pixels and extra meta attributes (role, units kept)."""
    meta = image.meta
    merged = {str(k): str(meta[k]) for k in meta}
    merged.update(extra_meta)
    return make_image(pixels_yx, image, int(image.image_type), int(image.image_series_index), merged)


def recon_fov_mm(header: Any) -> tuple[float, float, float] | None:
    """Recon field of view (x, y, z) in mm from the header's ``reconSpace``, if present."""
    typed = mr_header(header)
    return typed.encodings[0].recon.fov_mm if typed is not None and typed.encodings else None


def template_from_acquisition(
    reference: Any, header: Any, shape_yx: tuple[int, int], phase: int, trigger_time_ms: float
) -> ismrmrd.Image:
    """An empty image carrying the geometry and counters of an acquisition header for one cardiac phase.

    ``physiology_time_stamp[0]`` holds the trigger time (2.5 ms ticks); the field of view is the
    header's recon field of view (the images are on the recon grid).
    """
    image = ismrmrd.Image.from_array(np.zeros((1, 1, *shape_yx), dtype=np.float32), transpose=False)
    for name in ("position", "read_dir", "phase_dir", "slice_dir", "patient_table_position"):
        setattr(image, name, tuple(float(v) for v in getattr(reference, name)))
    idx = reference.idx
    image.slice, image.set, image.phase = int(idx.slice), int(idx.set), int(phase)
    image.acquisition_time_stamp = int(reference.acquisition_time_stamp)
    image.physiology_time_stamp = (round(trigger_time_ms / 2.5), 0, 0)
    image.measurement_uid = int(reference.measurement_uid)
    fov = recon_fov_mm(header)
    if fov is not None:
        image.field_of_view = fov
    return image


def field_strength_t(header: Any) -> float:
    """B0 (T) from ``acquisitionSystemInformation.systemFieldStrength_T``; an error when absent."""
    typed = mr_header(header)
    value = typed.field_strength_t if typed is not None else None
    if value is None:
        raise FlowHeaderError(
            "Maxwell correction needs a positive acquisitionSystemInformation.systemFieldStrength_T"
        )
    return value


def image_positions_m(image: ismrmrd.Image) -> torch.Tensor:
    """Physical positions ``(y, x, 3)`` (m) of an image's pixel centres from its geometry fields."""
    size, fov = image.matrix_size, image.field_of_view
    shape = (int(size[1]), int(size[0]))
    voxel_mm = (float(fov[1]) / shape[0], float(fov[0]) / shape[1])
    if min(voxel_mm) <= 0:
        raise ValueError("image field_of_view is zero: pixel positions unknown")
    return pixel_positions_m(
        shape,
        voxel_mm,
        tuple(float(v) for v in image.position),  # type: ignore[arg-type]
        tuple(float(v) for v in image.read_dir),  # type: ignore[arg-type]
        tuple(float(v) for v in image.phase_dir),  # type: ignore[arg-type]
    )
