"""What the block-wise MR stages read from a readout: noise and group-end flags, and a copy of its header."""

from __future__ import annotations

import ismrmrd

#: ISMRMRD flags that mark the last readout of a group (slice, segment, cardiac phase, repetition, set,
#: contrast, average, encoding loop, measurement): a block of readouts is emitted at once after one of these.
GROUP_END_FLAGS = (
    ismrmrd.ACQ_LAST_IN_ENCODE_STEP1,
    ismrmrd.ACQ_LAST_IN_ENCODE_STEP2,
    ismrmrd.ACQ_LAST_IN_AVERAGE,
    ismrmrd.ACQ_LAST_IN_SLICE,
    ismrmrd.ACQ_LAST_IN_CONTRAST,
    ismrmrd.ACQ_LAST_IN_PHASE,
    ismrmrd.ACQ_LAST_IN_REPETITION,
    ismrmrd.ACQ_LAST_IN_SET,
    ismrmrd.ACQ_LAST_IN_SEGMENT,
    ismrmrd.ACQ_LAST_IN_MEASUREMENT,
)
_GROUP_END_MASK = sum(1 << (flag - 1) for flag in GROUP_END_FLAGS)
_NOISE_MASK = 1 << (ismrmrd.ACQ_IS_NOISE_MEASUREMENT - 1)


def is_noise(acq: ismrmrd.Acquisition) -> bool:
    """True for a noise-prescan readout (``ACQ_IS_NOISE_MEASUREMENT``)."""
    return bool(int(acq.flags) & _NOISE_MASK)


def ends_group(acq: ismrmrd.Acquisition) -> bool:
    """True when ``acq`` carries one of :data:`GROUP_END_FLAGS`."""
    return bool(int(acq.flags) & _GROUP_END_MASK)


def copy_header(acq: ismrmrd.Acquisition) -> ismrmrd.AcquisitionHeader:
    """A copy of the readout's header (``getHead()`` deep-copies the ctypes structure field by field, ≈ 7 µs;
    a buffer copy of the structure the library itself serialises takes ≈ 0.3 µs)."""
    head = getattr(acq, "_head", None)
    if isinstance(head, ismrmrd.AcquisitionHeader):
        return ismrmrd.AcquisitionHeader.from_buffer_copy(head)
    return acq.getHead()
