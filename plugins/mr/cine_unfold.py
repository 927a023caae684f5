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
from plugins.runtime.executor import UnitJob
from plugins.runtime.plugin import ChainContext, Plugin
from recon.cine import grappa, partial_fourier, unfold

DEFAULT_CS_ITERATIONS = {"temporal_tv": 20, "low_rank_sparse": 40}
"""Iterations when ``cs_iterations`` is None: ADMM converges in 20; L + S proximal gradient needed 40 at
R = 8 on the simulator's default noise (20 stopped at 2.06× the fully sampled nRMSE, 40 reached 1.73×)."""


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
    grappa_n_blocks: int = Field(
        2, ge=1, le=8, description="GRAPPA kernel source lines along ky (blocks, R apart)"
    )
    grappa_n_kx_taps: int = Field(7, ge=1, le=15, description="GRAPPA kernel taps along kx (odd)")
    grappa_regularization: float = Field(
        10.0,
        ge=0.0,
        le=1000.0,
        description=(
            "GRAPPA Tikhonov weight in noise units: λ = value · n_fit_rows · σ², σ² the noise variance per "
            "k-space sample estimated from the data's k0 edges (1 = the ridge that one frame's noise in the "
            "source samples adds; the calibration block is a time average with less noise). Default 10: the "
            "flat optimum (6–24) of the benchmark slice at R = 2 and 4; scale-free and SNR-adaptive"
        ),
    )
    grappa_calibration_consistency: bool = Field(
        True,
        description=(
            "put the acquired calibration lines of every frame back in place of the kernel's estimates "
            "(a low-cost correction on the few extra lines after the image-domain unmixing; combined output)"
        ),
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
    sense_iterations: int = Field(
        15,
        ge=1,
        le=500,
        description=(
            "CG-SENSE iterations; with the default λ EᴴE + λI has condition number ≲ 1/λ ≈ 40, CG is "
            "converged to < 0.1 % nRMSE by 15 (checked at 10/20/30 on the benchmark slice)"
        ),
    )
    sense_regularization: float = Field(
        4.0,
        ge=0.0,
        le=1000.0,
        description=(
            "CG-SENSE Tikhonov weight relative to the noise-to-signal ratio: λ = value · σ²/s̄² (σ² noise "
            "variance per k-space sample, s̄² mean image power per pixel, both from the data; 1 = Wiener / "
            "MAP weight of a white Gaussian image prior). Scale-free; default 4 (optimum 3–5 on the benchmark "
            "slice: images are not white, their power sits at low spatial frequencies)"
        ),
    )
    cs_regularization: float = Field(
        0.01, ge=0.0, le=10.0, description="temporal-TV weight λ relative to max|x₀|"
    )
    cs_iterations: int | None = Field(
        None,
        ge=1,
        le=500,
        description="iterations: ADMM (temporal_tv) or proximal gradient (low_rank_sparse); None: 20 for "
        "temporal_tv, 40 for low_rank_sparse (proximal gradient needs more: 20 stopped 20 % short at R = 8)",
    )
    cs_method: Literal["temporal_tv", "low_rank_sparse"] = Field(
        "temporal_tv",
        description=(
            "temporal_tv: SENSE + ‖D_t x‖₁ by ADMM; low_rank_sparse: L + S (Otazo 2015), nuclear norm of "
            "the Casorati matrix + ‖F_t S‖₁ (temporal Fourier), proximal gradient"
        ),
    )
    cs_low_rank_regularization: float = Field(
        0.01, ge=0.0, le=1.0, description="L + S: λ_L relative to the start image's largest singular value"
    )
    cs_sparse_regularization: float = Field(
        0.003, ge=0.0, le=1.0, description="L + S: λ_S relative to max |temporal FFT of the start image|"
    )
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
    unit_kind = "cine slice"

    def __init__(self, config: CineUnfoldConfig, context: ChainContext) -> None:  # type: ignore[override]
        super().__init__(config, context)
        self.cfg = config
        enc = cine_encoding(context.header)
        self.header_acceleration = enc.acceleration if enc else 1

    def process(self, item: Any) -> Iterable[Any]:
        binned: CineSliceBinned = item
        return (UnitJob(self.unit_kind or "", binned.slice_index, "unfold_unit", (binned,)),)

    def unfold_unit(self, binned: CineSliceBinned) -> tuple[CineImageSeries]:
        """One slice (or one flow series) is one unit: its unfolded series, wherever the executor runs it."""
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
                binned.sampled if cfg.grappa_calibration_consistency else None,
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
        if cfg.cs_method == "low_rank_sparse":
            return unfold.low_rank_sparse_unfold(
                kspace, sampled, maps, cfg.cs_low_rank_regularization, cfg.cs_sparse_regularization,
                cfg.cs_iterations or DEFAULT_CS_ITERATIONS["low_rank_sparse"],
            )  # fmt: skip
        return unfold.cs_unfold(
            kspace,
            sampled,
            maps,
            cfg.cs_regularization,
            cfg.cs_iterations or DEFAULT_CS_ITERATIONS["temporal_tv"],
            cfg.cs_cg_iterations,
        )
