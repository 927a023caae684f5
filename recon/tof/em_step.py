"""One list-mode EM back projection Aᵀ(1/(A x + b)) over a chunk of events, on any kernel.

The numba path fuses the forward and back projection of each event (:mod:`recon.tof.osem_numba`); the
torch and CUDA paths call :func:`recon.tof.projectors.project_forward` and ``project_back`` in turn.  All
give the same numbers to float rounding (tested).
"""

from __future__ import annotations

import numpy as np
import torch

from recon.tof.projector_common import GridLike, KernelChoice
from recon.tof.projectors import (
    numba_events_in_order,
    numba_geometry,
    project_back,
    project_forward,
    resolve_kernel,
)
from recon.tof.tof_kernel import TOFParameters


def em_backprojection(
    image: torch.Tensor,
    lor_start_mm: torch.Tensor,
    lor_end_mm: torch.Tensor,
    additive: torch.Tensor,
    grid: GridLike,
    tof: TOFParameters | None = None,
    tof_bin: torch.Tensor | None = None,
    kernel: KernelChoice | str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (Aᵀ r, A x) with rₑ = 1/((A x)ₑ + bₑ) where positive, else 0.

    Args:
        image: current estimate x, (z, y, x), float32/float64.
        lor_start_mm, lor_end_mm: (n, 3) event endpoints, scanner (x, y, z) mm.
        additive: (n,) bₑ: expected randoms + scatter of the event divided by its multiplicative factor
            (same unit as a projection of ``image``).
        grid, tof, tof_bin, kernel: as for :func:`recon.tof.projectors.project_forward`.
    """
    name = resolve_kernel(kernel, image.device)
    if name != "numba":
        fwd = project_forward(image, lor_start_mm, lor_end_mm, grid, tof, tof_bin, kernel=name)
        denominator = fwd + additive.to(fwd)
        ratio = torch.where(
            denominator > 0, 1.0 / denominator.clamp_min(1e-30), torch.zeros_like(denominator)
        )
        return project_back(ratio, lor_start_mm, lor_end_mm, grid, tof, tof_bin, kernel=name), fwd
    import numba

    from recon.tof.osem_numba import em_ratio_backprojection
    from recon.tof.projector_numba import sum_parts

    geometry = numba_geometry(grid, tof)
    order, starts, ends, bins, b = numba_events_in_order(
        lor_start_mm, lor_end_mm, tof_bin if tof is not None else None, geometry, additive.to(torch.float64)
    )
    img = image.detach().numpy()
    img_zyx = np.ascontiguousarray(img).reshape(-1)
    img_zxy = np.ascontiguousarray(img.transpose(0, 2, 1)).reshape(-1)
    n_events = starts.shape[0]
    n_parts = max(1, min(numba.get_num_threads(), n_events))
    out_zyx = np.zeros((n_parts, img_zyx.shape[0]), dtype=img.dtype)
    out_zxy = np.zeros((n_parts, img_zyx.shape[0]), dtype=img.dtype)
    forward_in_order = np.zeros(n_events, dtype=img.dtype)
    em_ratio_backprojection(
        img_zyx, img_zxy, starts, ends, bins, b, geometry, out_zyx, out_zxy, forward_in_order
    )
    forward = np.empty_like(forward_in_order)
    forward[order] = forward_in_order
    return torch.from_numpy(sum_parts(out_zyx, out_zxy, geometry[2])), torch.from_numpy(forward)
