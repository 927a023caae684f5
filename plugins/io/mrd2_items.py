"""MRD v2 stream items (``mrd.Acquisition``, ``mrd.WaveformUint32``, ``mrd.Image*``) ↔ ISMRMRD v1 objects.

The plugins work on ``ismrmrd.Acquisition`` / ``Waveform`` / ``Image``; MRD v2 items are converted on the
way in and out.  Shapes: acquisition data ``(coils, samples)`` complex64 in both; trajectory
``(samples, dims)`` in v1, ``(dims, samples)`` in v2; waveform data ``(channels, samples)`` uint32; image
pixels ``(channels, z, y, x)`` in both.  Flag bits are the same numbers in both formats.

Not mapped (see the README): v1 ``version`` fields (v2 carries its schema version once per stream);
v1 ``available_channels`` (v2 has only the channel order; it comes back equal to ``active_channels``);
v2 item kinds with no v1 message (``AcquisitionBucket``, ``ReconData``, ``ImageArray``,
``ArrayComplexFloat``) are refused by :func:`from_v2` with an error naming them.
"""

from __future__ import annotations

from typing import Any

import ismrmrd
import mrd
import numpy as np

_COUNTERS = ("kspace_encode_step_1", "kspace_encode_step_2", "average", "slice", "contrast", "phase")
_COUNTERS_2 = ("repetition", "set", "segment")
_GEOMETRY = ("position", "read_dir", "phase_dir", "slice_dir", "patient_table_position")
_OPTIONAL_ACQ = (
    "scan_counter",
    "acquisition_time_stamp",
    "discard_pre",
    "discard_post",
    "center_sample",
    "encoding_space_ref",
    "sample_time_us",
)
_IMAGE_COUNTERS = ("average", "slice", "contrast", "phase", "repetition", "set")
_IMAGE_OPTIONAL = ("acquisition_time_stamp", "image_index", "image_series_index")

#: ISMRMRD v1 image data_type → the MRD v2 stream-item case of that pixel type.
_IMAGE_CASES: dict[type, Any] = {
    np.uint16: mrd.StreamItem.ImageUint16,
    np.int16: mrd.StreamItem.ImageInt16,
    np.uint32: mrd.StreamItem.ImageUint32,
    np.int32: mrd.StreamItem.ImageInt32,
    np.float32: mrd.StreamItem.ImageFloat,
    np.float64: mrd.StreamItem.ImageDouble,
    np.complex64: mrd.StreamItem.ImageComplexFloat,
    np.complex128: mrd.StreamItem.ImageComplexDouble,
}


class UnsupportedItem(ValueError):
    """An MRD v2 stream item with no ISMRMRD v1 counterpart (the message names its kind)."""


def _channel_mask(order: list[int]) -> list[int]:
    mask = [0] * 16
    for channel in order:
        mask[channel // 64] |= 1 << (channel % 64)
    return mask


def _channel_order(mask: Any, n_active: int) -> list[int]:
    order = [64 * w + b for w, word in enumerate(mask) for b in range(64) if int(word) >> b & 1]
    return order if len(order) == n_active else list(range(n_active))


def acquisition_to_v2(acq: ismrmrd.Acquisition) -> mrd.Acquisition:
    """One v1 acquisition as an MRD v2 acquisition (every header field v2 holds)."""
    idx = acq.idx
    counters = mrd.EncodingCounters(
        **{name: int(getattr(idx, name)) for name in _COUNTERS + _COUNTERS_2},
        user=[int(u) for u in idx.user],
    )
    head = mrd.AcquisitionHeader(
        flags=mrd.AcquisitionFlags(int(acq.flags)),
        idx=counters,
        measurement_uid=int(acq.measurement_uid),
        physiology_time_stamp=[int(t) for t in acq.physiology_time_stamp],
        channel_order=_channel_order(acq.channel_mask, int(acq.active_channels)),
        user_int=[int(u) for u in acq.user_int],
        user_float=[float(u) for u in acq.user_float],
        **{name: getattr(acq, name) for name in _OPTIONAL_ACQ},
        **{name: np.asarray(getattr(acq, name), dtype=np.float32) for name in _GEOMETRY},
    )
    traj = np.ascontiguousarray(np.asarray(acq.traj, dtype=np.float32).T)
    return mrd.Acquisition(head=head, data=np.asarray(acq.data, dtype=np.complex64), trajectory=traj)


def acquisition_from_v2(acq: mrd.Acquisition) -> ismrmrd.Acquisition:
    """One MRD v2 acquisition as a v1 ``ismrmrd.Acquisition`` (absent optional fields become 0)."""
    h = acq.head
    data = np.ascontiguousarray(acq.data, dtype=np.complex64)
    traj = np.ascontiguousarray(np.asarray(acq.trajectory, dtype=np.float32).T)
    out = ismrmrd.Acquisition.from_array(data, traj if traj.size else None)
    out.flags = int(h.flags)
    out.measurement_uid = int(h.measurement_uid)
    for name in _OPTIONAL_ACQ:
        value = getattr(h, name)
        setattr(out, name, value if value is not None else 0)
    out.physiology_time_stamp = _padded(h.physiology_time_stamp, 3)
    order = [int(c) for c in h.channel_order] or list(range(data.shape[0]))
    out.available_channels = data.shape[0]
    out.channel_mask = tuple(_channel_mask(order))
    for name in _GEOMETRY:
        setattr(out, name, tuple(float(v) for v in np.asarray(getattr(h, name)).ravel()[:3]))
    for name in _COUNTERS + _COUNTERS_2:
        value = getattr(h.idx, name)
        setattr(out.idx, name, int(value) if value is not None else 0)
    out.idx.user = _padded(h.idx.user, 8)
    out.user_int = _padded(h.user_int, 8)
    out.user_float = tuple(float(v) for v in _padded(h.user_float, 8))
    return out


def _padded(values: Any, n: int) -> tuple[Any, ...]:
    values = list(values or [])[:n]
    return tuple(values + [0] * (n - len(values)))


def waveform_to_v2(wav: ismrmrd.Waveform) -> mrd.WaveformUint32:
    """One v1 waveform (``(channels, samples)`` uint32) as an MRD v2 ``WaveformUint32``."""
    return mrd.WaveformUint32(
        flags=int(wav.flags),
        measurement_uid=int(wav.measurement_uid),
        scan_counter=int(wav.scan_counter),
        time_stamp=int(wav.time_stamp),
        sample_time_us=float(wav.sample_time_us),
        waveform_id=int(wav.waveform_id),
        data=np.ascontiguousarray(wav.data, dtype=np.uint32),
    )


def waveform_from_v2(wav: Any) -> ismrmrd.Waveform:
    """One MRD v2 ``WaveformUint32`` as a v1 ``ismrmrd.Waveform``."""
    data = np.ascontiguousarray(wav.data, dtype=np.uint32)
    out = ismrmrd.Waveform.from_array(data)
    for name in ("flags", "measurement_uid", "scan_counter", "time_stamp", "sample_time_us", "waveform_id"):
        setattr(out, name, getattr(wav, name))
    return out


def image_to_v2(image: ismrmrd.Image) -> Any:
    """One v1 image as the MRD v2 stream item of its pixel type (meta attributes as string lists)."""
    data = np.asarray(image.data)
    case = _IMAGE_CASES.get(data.dtype.type)
    if case is None:
        raise UnsupportedItem(f"image pixels of type {data.dtype} have no MRD v2 image type")
    head = mrd.ImageHeader(
        flags=mrd.ImageFlags(int(image.flags)),
        measurement_uid=int(image.measurement_uid),
        field_of_view=np.asarray(image.field_of_view, dtype=np.float32),
        position=np.asarray(image.position, dtype=np.float32),
        col_dir=np.asarray(image.read_dir, dtype=np.float32),
        line_dir=np.asarray(image.phase_dir, dtype=np.float32),
        slice_dir=np.asarray(image.slice_dir, dtype=np.float32),
        patient_table_position=np.asarray(image.patient_table_position, dtype=np.float32),
        physiology_time_stamp=[int(t) for t in image.physiology_time_stamp],
        image_type=mrd.ImageType(int(image.image_type)),
        user_int=[int(u) for u in image.user_int],
        user_float=[float(u) for u in image.user_float],
        **{name: int(getattr(image, name)) for name in _IMAGE_COUNTERS + _IMAGE_OPTIONAL},
    )
    meta: dict[str, list[Any]] = {}
    if image.attribute_string:
        parsed = ismrmrd.Meta.deserialize(image.attribute_string)
        for key in parsed:
            values = parsed[key] if isinstance(parsed[key], list) else [parsed[key]]
            meta[str(key)] = [mrd.ImageMetaValue.String(str(v)) for v in values]
    return case(mrd.Image(head=head, data=np.ascontiguousarray(data), meta=meta))


def image_from_v2(image: Any) -> ismrmrd.Image:
    """One MRD v2 image as a v1 ``ismrmrd.Image`` (meta values as text)."""
    h = image.head
    out = ismrmrd.Image.from_array(np.ascontiguousarray(image.data), transpose=False)
    out.flags = int(h.flags)
    out.measurement_uid = int(h.measurement_uid)
    out.field_of_view = tuple(float(v) for v in h.field_of_view)
    for v1, v2 in (
        ("position", "position"),
        ("read_dir", "col_dir"),
        ("phase_dir", "line_dir"),
        ("slice_dir", "slice_dir"),
        ("patient_table_position", "patient_table_position"),
    ):
        setattr(out, v1, tuple(float(v) for v in getattr(h, v2)))
    for name in _IMAGE_COUNTERS + _IMAGE_OPTIONAL:
        value = getattr(h, name)
        setattr(out, name, int(value) if value is not None else 0)
    out.physiology_time_stamp = _padded(h.physiology_time_stamp, 3)
    out.image_type = int(h.image_type.value)
    out.user_int = _padded(h.user_int, 8)
    out.user_float = tuple(float(v) for v in _padded(h.user_float, 8))
    if image.meta:
        meta = ismrmrd.Meta()
        for key, values in image.meta.items():
            texts = [str(v.value) for v in values]
            meta[key] = texts if len(texts) > 1 else texts[0]
        out.attribute_string = meta.serialize()
    return out


def from_v2(item: Any) -> Any:
    """A decoded MRD v2 ``StreamItem`` as the v1 object the plugins handle."""
    value = item.value
    if isinstance(value, mrd.Acquisition):
        return acquisition_from_v2(value)
    if isinstance(item, mrd.StreamItem.WaveformUint32):
        return waveform_from_v2(value)
    if isinstance(value, mrd.Image):
        return image_from_v2(value)
    raise UnsupportedItem(
        f"MRD v2 item {type(item).__name__.removeprefix('StreamItem.')} has no ISMRMRD v1 form"
    )


def to_v2(item: Any) -> Any:
    """A v1 acquisition, waveform or image as an MRD v2 ``StreamItem``."""
    if isinstance(item, ismrmrd.Acquisition):
        return mrd.StreamItem.Acquisition(acquisition_to_v2(item))
    if isinstance(item, ismrmrd.Waveform):
        return mrd.StreamItem.WaveformUint32(waveform_to_v2(item))
    if isinstance(item, ismrmrd.Image):
        return image_to_v2(item)
    raise UnsupportedItem(f"{type(item).__name__} has no MRD v2 stream item")
