"""Unfold a binned cine slice: FFT (fully sampled), image-domain GRAPPA, CG-SENSE or SENSE + temporal TV."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Literal

import torch
from pydantic import Field

from plugins.mr.cine_header import cine_encoding
from plugins.mr.cine_items import CineImageSeries, CineSliceBinned
from plugins.runtime.config import PluginConfig
from plugins.runtime.plugin import ChainContext, Plugin
from recon.cine import grappa, partial_fourier, unfold


class CineUnfoldConfig(PluginConfig):
    """Parameters of the unfolding stage."""

    method: Literal["auto", "fft", "grappa", "sense", "cs"] = Field(
        "auto", description="auto: fft if fully sampled, cs if sampling is irregular / per frame, else grappa"
    )
    output: Literal["combined", "coil_images"] = Field(
        "combined",
        description="fft/grappa: fold the B1 combination in (combined) or emit coil images for cine_combine",
    )
    n_virtual_coils: int = Field(
        0, ge=0, le=128, description="SVD coil compression to this many virtual coils (0 = off)"
    )
    grappa_n_blocks: int = Field(4, ge=1, le=8, description="GRAPPA kernel source lines along ky (blocks)")
    grappa_n_kx_taps: int = Field(5, ge=1, le=15, description="GRAPPA kernel taps along kx (odd)")
    grappa_regularization: float = Field(
        0.03, ge=0.0, le=1.0, description="GRAPPA Tikhonov weight relative to trace(SᴴS)/n"
    )
    espirit_kernel_size: int = Field(
        6, ge=3, le=12, description="ESPIRiT calibration kernel width, k-space samples"
    )
    espirit_threshold: float = Field(
        0.02, gt=0.0, lt=1.0, description="ESPIRiT singular-value threshold (fraction of max)"
    )
    espirit_crop: float = Field(
        0.8, ge=0.0, lt=1.0, description="ESPIRiT eigenvalue below which maps are zeroed"
    )
    sense_iterations: int = Field(10, ge=1, le=500, description="CG-SENSE iterations")
    sense_regularization: float = Field(
        1e-3, ge=0.0, le=10.0, description="CG-SENSE Tikhonov weight λ (maps normalised)"
    )
    cs_regularization: float = Field(
        0.01, ge=0.0, le=10.0, description="temporal-TV weight λ relative to max|x₀|"
    )
    cs_iterations: int = Field(20, ge=1, le=500, description="ADMM iterations of SENSE + temporal TV")
    partial_fourier: Literal["pocs", "zero_fill"] = Field(
        "pocs",
        description="missing ky edge (partial Fourier): POCS with a low-resolution phase, or zero filling",
    )
    pocs_iterations: int = Field(5, ge=1, le=50, description="POCS iterations for partial Fourier")
    cs_cg_iterations: int = Field(5, ge=1, le=100, description="CG iterations per ADMM x-update")

    def model_post_init(self, __context: Any) -> None:
        if self.grappa_n_kx_taps % 2 == 0:
            raise ValueError(f"grappa_n_kx_taps must be odd, got {self.grappa_n_kx_taps}")


class CineUnfold(Plugin):
    """Reconstructs every frame of a binned slice with FFT, GRAPPA (image-domain unmixing), CG-SENSE or CS."""

    Config = CineUnfoldConfig
    accepts = (CineSliceBinned,)

    def __init__(self, config: CineUnfoldConfig, context: ChainContext) -> None:  # type: ignore[override]
        super().__init__(config, context)
        self.cfg = config
        enc = cine_encoding(context.header)
        self.header_acceleration = enc.acceleration if enc else 1

    def process(self, item: Any) -> Iterable[Any]:
        binned: CineSliceBinned = item
        start = time.perf_counter()
        series = self.unfold(binned)
        self.log.info(
            "slice %d: %s unfold of %d frames in %.3f s",
            binned.slice_index,
            series.method,
            series.images.shape[0],
            time.perf_counter() - start,
        )
        return (series,)

    def _method(self, binned: CineSliceBinned, acceleration: int) -> str:
        """``auto``: fft when fully sampled; cs when the sampling changes per frame or is irregular
        (pseudo-random schedules, where GRAPPA does not apply); else grappa."""
        if self.cfg.method != "auto":
            return self.cfg.method
        if acceleration == 1 and bool(binned.sampled.all()):
            return "fft"
        _, regular = grappa.regular_sampling(binned.imaging, max(acceleration, 1))
        irregular = binned.imaging & ~regular & ~binned.calibration
        varies = not bool((binned.sampled == binned.sampled[:1]).all())
        return "cs" if varies or int(irregular.sum()) > 0.1 * int(binned.imaging.sum()) else "grappa"

    def unfold(self, binned: CineSliceBinned) -> CineImageSeries:
        """The unfolding proper (also callable directly, e.g. from benchmarks)."""
        cfg = self.cfg
        acceleration = max(self.header_acceleration, unfold.detect_acceleration(binned.imaging))
        method = self._method(binned, acceleration)
        kspace, calib = self._kspace_and_calibration(binned)
        combined = True
        if method == "fft" or (method == "grappa" and acceleration == 1):
            images, combined, method = unfold.fft_coil_images(kspace), False, "fft"
        elif calib is None:
            raise ValueError(
                f"method {method!r} needs calibration lines; none flagged in slice {binned.slice_index}"
            )
        elif method == "grappa":
            combined = cfg.output == "combined"
            images = unfold.grappa_unfold(
                kspace, binned.imaging, calib, acceleration, cfg.grappa_n_blocks, cfg.grappa_n_kx_taps,
                cfg.grappa_regularization, combined,
            )  # fmt: skip
        else:
            images = self._iterative(method, kspace, binned.sampled, calib)
        lines = binned.sampled.any(dim=0)
        if cfg.partial_fourier == "pocs" and partial_fourier.is_partial_fourier(lines):
            images = partial_fourier.pocs_partial_fourier(
                images, lines.to(images.device), cfg.pocs_iterations
            )
        return CineImageSeries(
            binned.slice_index, images, combined, calib, binned.trigger_times_ms, method, binned.reference
        )

    def _kspace_and_calibration(self, binned: CineSliceBinned) -> tuple[torch.Tensor, torch.Tensor | None]:
        """K-space on the chain's device and the time-averaged calibration block (optionally coil-compressed)."""
        kspace = binned.kspace.to(self.context.device)
        if not bool(binned.calibration.any()):
            return kspace, None
        calib = unfold.time_averaged_calibration(kspace, binned.sampled, binned.calibration)
        n_virtual = self.cfg.n_virtual_coils
        if n_virtual and n_virtual < kspace.shape[1]:
            compression = grappa.coil_compression_matrix(calib, n_virtual)
            kspace = torch.einsum("vc,pcyx->pvyx", compression, kspace)
            calib = torch.einsum("vc,cyx->vyx", compression, calib)
        return kspace, calib

    def _iterative(
        self, method: str, kspace: torch.Tensor, sampled: torch.Tensor, calib: torch.Tensor
    ) -> torch.Tensor:
        """CG-SENSE or SENSE + temporal TV with ESPIRiT maps from the calibration block."""
        cfg = self.cfg
        shape = (kspace.shape[-2], kspace.shape[-1])
        maps = unfold.espirit_from_calibration(
            calib, shape, cfg.espirit_kernel_size, cfg.espirit_threshold, cfg.espirit_crop
        )
        if method == "sense":
            return unfold.sense_unfold(kspace, sampled, maps, cfg.sense_iterations, cfg.sense_regularization)
        return unfold.cs_unfold(
            kspace, sampled, maps, cfg.cs_regularization, cfg.cs_iterations, cfg.cs_cg_iterations
        )
