"""Tissue-characterisation plugins: LGE PSIR, MOLLI T1, T2 and T2* maps from a :class:`ContrastSeries`.

Every map is an ``ismrmrd.Image`` series with ``Unit = ms`` (``Role`` names it), a display window
(``WindowCenter``/``WindowWidth``), a colour map (``ColourMap``: ``lipari`` for T1, ``navia`` for T2 and T2*,
as recommended by Fuderer et al., MRM 2024; grey for the SD maps) and 0 outside the signal mask; fits run
batched over the pixels of the mask on the chain's device (CPU or CUDA, same numbers).  Default windows:
T1 0–2000 ms at 1.5 T (0–2400 at 3 T), T2 0–100 ms, T2* 0–50 ms (chain files).  Maps and their units:

* ``lge_psir``: ``psir`` (a.u., normalised: remote myocardium near 0 at the nulling TI, scar and blood
  positive; 0 outside the signal mask of the smoothed reference) and ``magnitude_ir`` (a.u.) —
  :mod:`recon.mapping.psir`; both grey.  PSIR's window (clinical
  convention, :func:`psir_window`): remote myocardium and air dark, scar bright;
* ``t1_molli``: ``t1`` (ms, Look-Locker + sequence corrected) and ``t1_sd`` (ms, fit error map) —
  :mod:`recon.mapping.molli`, :mod:`recon.mapping.molli_correction`;
* ``t2_map``: ``t2`` and ``t2_sd`` (ms), mono-exponential over the T2 preparations;
* ``t2star_map``: ``t2star`` and ``t2star_sd`` (ms), mono-exponential over the echoes with the late echoes
  at the noise floor truncated (or an offset term).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import ismrmrd
import numpy as np
import torch
from pydantic import Field

from plugins.io.mr_header import mr_header
from plugins.mr.dixon_images import volume_to_images
from plugins.mr.mapping_series import ContrastSeries
from plugins.runtime.config import PluginConfig
from plugins.runtime.plugin import Plugin
from recon.mapping.exponential import fit_exponential, jacobian_covariance
from recon.mapping.molli import fit_molli
from recon.mapping.molli_correction import MolliSequence, apply_correction, correction_table
from recon.mapping.psir import gaussian_smooth, psir, rayleigh_noise_sigma
from recon.petmr_ac.grid import grid_from_ismrmrd


def series_images(
    series: ContrastSeries, data: np.ndarray, index: int, meta: dict[str, str]
) -> list[ismrmrd.Image]:
    """One float32 image of a slice's map ``(y, x)`` located from the slice's readout header."""
    h = series.header
    ny, nx = data.shape
    grid = grid_from_ismrmrd(h.position[:], h.read_dir[:], h.phase_dir[:], h.slice_dir[:],
                             (series.fov_mm[0], series.fov_mm[1]), (nx, ny, 1), series.fov_mm[2])  # fmt: skip
    images = volume_to_images(data[None].astype(np.float32), grid, index, meta, int(h.measurement_uid),
                              int(h.acquisition_time_stamp))  # fmt: skip
    for image in images:
        image.slice = series.slice_index
    return images


def signal_mask(magnitude: torch.Tensor, fraction: float) -> torch.Tensor:
    """Pixels whose brightest image exceeds ``fraction`` of the 99th percentile of it ``(y, x)`` bool."""
    peak = magnitude.amax(0)
    return peak > fraction * torch.quantile(peak.flatten().float(), 0.99)


def _map(values: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    out = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    out[mask] = torch.nan_to_num(values.float(), nan=0.0, posinf=0.0, neginf=0.0)
    return out.cpu().numpy()


class MapConfig(PluginConfig):
    """Common parameters of the mapping plugins."""

    mask_fraction: float = Field(
        0.08, gt=0.0, lt=1.0, description="signal mask: fraction of the 99th percentile"
    )
    image_series_index: int = Field(
        30, ge=0, le=65000, description="series of the first map (the SD map: +1)"
    )


class _MapPlugin(Plugin):
    accepts = (ContrastSeries,)
    role = ""

    def _emit(
        self, series: ContrastSeries, maps: list[tuple[str, np.ndarray, str, tuple[float, float], str]]
    ) -> Iterator[Any]:
        """Images of ``(role, map, unit, (window low, high), colour map)`` in consecutive series."""
        base = int(self.config.image_series_index)  # type: ignore[attr-defined]
        for k, (name, data, unit, (low, high), colours) in enumerate(maps):
            meta = {"Role": name, "Unit": unit, "WindowCenter": f"{(low + high) / 2:.6g}",
                    "WindowWidth": f"{high - low:.6g}", "ColourMap": colours, "Mask": "signal"}  # fmt: skip
            yield from series_images(series, data, base + k, meta)


class PsirConfig(MapConfig):
    """Parameters of the PSIR reconstruction."""

    reference_contrast: int = Field(1, ge=0, le=63, description="image index of the low-flip PSIR reference")
    reference_smoothing_mm: float = Field(6.0, ge=0.0, le=40.0, description="Gaussian σ on the reference, mm")
    normaliser_floor_fraction: float = Field(
        0.05,
        gt=0.0,
        lt=1.0,
        description="floor of the surface-coil normaliser, fraction of its 99th percentile",
    )
    image_series_index: int = Field(
        20, ge=0, le=65000, description="series of the PSIR image (magnitude IR: +1)"
    )


class LgePsir(_MapPlugin):
    """LGE: surface-coil normalised phase-sensitive IR image and the magnitude IR image."""

    Config = PsirConfig

    def process(self, item: ContrastSeries) -> Iterable[Any]:
        cfg: PsirConfig = self.config  # type: ignore[assignment]
        images = torch.from_numpy(item.images).to(self.context.device)
        ir, ref = images[0], images[min(cfg.reference_contrast, images.shape[0] - 1)]
        sigma_px = cfg.reference_smoothing_mm / (item.fov_mm[0] / images.shape[-1])
        out = psir(ir, ref, sigma_px, cfg.normaliser_floor_fraction).cpu().numpy()
        magnitude = ir.abs().cpu().numpy()
        # air: the normalised real part of noise over a floored normaliser is loud salt-and-pepper; 0 there
        mask = signal_mask(gaussian_smooth(ref, sigma_px).abs()[None], cfg.mask_fraction).cpu().numpy()
        out[~mask] = 0.0
        window = psir_window(out, mask)
        top = float(np.percentile(magnitude, 99.5))
        return list(self._emit(item, [("psir", out, "a.u.", window, "gray"),
                                      ("magnitude_ir", magnitude, "a.u.", (0.0, top), "gray")]))  # fmt: skip


def psir_window(image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Grey window of a PSIR image (clinical convention: remote myocardium dark, air grey-black, scar
    bright): to the 99th percentile inside the signal ``mask``, from its 1st percentile but no lower than
    15 % of that spread below 0 (at most 0).  At the nulling TI remote myocardium and air (0) then sit
    at ≈ 15–25 % grey and tissues more inverted (skeletal muscle) are black; at a short TI, where every
    tissue is still inverted, remote myocardium is black and scar bright."""
    inside = image[mask] if mask.any() else image.ravel()
    high = float(np.percentile(inside, 99.0))
    darkest = float(np.percentile(inside, 1.0))
    low = min(max(darkest, -0.15 * (high - darkest)), 0.0)
    return low, high if high > low else low + 1.0


class MolliConfig(MapConfig):
    """Parameters of the MOLLI T1 fit."""

    sequence_correction: bool = Field(True, description="correct the residual MOLLI bias by Bloch simulation")
    myocardium_t2_ms: float = Field(
        45.0, gt=5.0, le=200.0, description="T2 assumed for tissue in the correction, ms"
    )
    blood_t2_ms: float = Field(
        250.0, gt=20.0, le=600.0, description="T2 assumed for blood in the correction, ms"
    )
    blood_threshold_ms: float = Field(
        0.0, ge=0.0, le=4000.0,
        description="Look-Locker T1 above which a pixel is treated as blood, ms (0: 1250 at 1.5 T, 1550 at 3 T)",
    )  # fmt: skip
    display_max_ms: float = Field(
        0.0, ge=0.0, le=5000.0, description="top of the colour window, ms (0: by field)"
    )


def molli_sequence(series: ContrastSeries, header: Any) -> tuple[MolliSequence, np.ndarray]:
    """The announced MOLLI acquisition and each image's TI (ms) from the header and the time stamps."""
    typed = mr_header(header)
    if typed is None:
        raise ValueError("t1_molli needs the ISMRMRD header")
    blocks: list[tuple[float, int]] = []
    while f"inversion_time_ms_block_{len(blocks)}" in typed.user_parameters:
        b = len(blocks)
        blocks.append(
            (
                typed.numbers(f"inversion_time_ms_block_{b}")[0],
                int(typed.numbers(f"images_per_inversion_{b}")[0]),
            )
        )
    if sum(n for _, n in blocks) != series.images.shape[0]:
        raise ValueError(f"header MOLLI blocks {blocks} do not match the {series.images.shape[0]} images")
    times = series.centre_time_ms.astype(np.float64)
    ti, inversions, k = np.zeros(times.size), [], 0
    for first_ti, n in blocks:
        inversions.append(times[k] - first_ti)
        ti[k : k + n] = times[k : k + n] - inversions[-1]
        k += n
    tr = typed.tr_ms[0] if typed.tr_ms else 2.7
    flip = typed.flip_angle_deg[0] if typed.flip_angle_deg else 35.0
    seq = MolliSequence(
        tuple(times), tuple(inversions), series.readouts_per_image, series.centre_readout, tr, flip
    )
    return seq, ti


class MolliT1(_MapPlugin):
    """MOLLI T1 map: three-parameter fit, Look-Locker and sequence correction, fit error (SD) map."""

    Config = MolliConfig

    def process(self, item: ContrastSeries) -> Iterable[Any]:
        cfg: MolliConfig = self.config  # type: ignore[assignment]
        seq, ti = molli_sequence(item, self.context.header)
        magnitude = torch.from_numpy(np.abs(item.images)).to(self.context.device)
        mask = signal_mask(magnitude, cfg.mask_fraction)
        fit = fit_molli(magnitude[:, mask], torch.from_numpy(ti).to(self.context.device))
        t1, sd = fit.t1_ms, fit.t1_sd_ms
        field = mr_header(self.context.header) or None
        b0 = field.field_strength_t if field is not None and field.field_strength_t else 1.5
        if cfg.sequence_correction:
            t1 = self._corrected(fit.t1_ms, seq, b0, cfg)
            sd = sd * (t1 / fit.t1_ms.clamp_min(1.0))
        top = cfg.display_max_ms or (2000.0 if b0 < 2.0 else 2400.0)
        maps = [("t1", _map(t1, mask), "ms", (0.0, top), "lipari"),
                ("t1_sd", _map(sd, mask), "ms", (0.0, 200.0), "gray")]  # fmt: skip
        return list(self._emit(item, maps))

    def _corrected(
        self, t1_ll: torch.Tensor, seq: MolliSequence, b0: float, cfg: MolliConfig
    ) -> torch.Tensor:
        """Tissue- and blood-T2 corrections blended in log T1_LL over ±10 % around the blood threshold."""
        tissue = apply_correction(t1_ll, correction_table(seq, cfg.myocardium_t2_ms))
        blood = apply_correction(t1_ll, correction_table(seq, cfg.blood_t2_ms))
        threshold = cfg.blood_threshold_ms or (1250.0 if b0 < 2.0 else 1550.0)
        w = ((torch.log(t1_ll.clamp_min(1.0) / (0.9 * threshold))) / math.log(1.1 / 0.9)).clamp(0.0, 1.0)
        return (1.0 - w) * tissue + w * blood


class ExponentialMapConfig(MapConfig):
    """Parameters of the T2 / T2* fits."""

    noise_floor_model: Literal["truncation", "offset", "none"] = Field(
        "truncation", description="T2*: drop echoes below the noise floor (truncation) or fit an offset"
    )
    noise_floor_factor: float = Field(
        3.0, gt=0.0, le=20.0, description="truncation: keep echoes above k·σ_noise"
    )
    min_samples: int = Field(3, ge=2, le=32, description="truncation keeps at least this many samples")
    display_max_ms: float = Field(100.0, gt=0.0, le=1000.0, description="top of the colour window, ms")
    image_series_index: int = Field(40, ge=0, le=65000, description="series of the map (the SD map: +1)")


def exponential_maps(
    magnitude: torch.Tensor, t_ms: torch.Tensor, cfg: ExponentialMapConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mono-exponential τ map and its SD over the mask: ``(tau (P,), sd (P,), mask (y, x))``."""
    mask = signal_mask(magnitude, cfg.mask_fraction)
    y = magnitude[:, mask].double()
    weights = None
    if cfg.noise_floor_model == "truncation":
        sigma = rayleigh_noise_sigma(magnitude[-1])
        keep = y > cfg.noise_floor_factor * sigma
        keep[: cfg.min_samples] = True
        weights = torch.cumprod(keep.double(), dim=0)  # a sample below the floor ends the series
    offset = cfg.noise_floor_model == "offset"
    fit = fit_exponential(y, t_ms.to(y.device), weights, offset=offset, tau_range_ms=(0.5, 3000.0))
    t = t_ms.to(y.device, torch.float64)[:, None].expand_as(y)
    e = torch.exp(-t / fit.tau_ms[None])
    cols = [e, fit.amplitude[None] * e * t / fit.tau_ms[None] ** 2] + ([torch.ones_like(e)] if offset else [])
    w = weights if weights is not None else torch.ones_like(y)
    jac = (torch.stack(cols, dim=-1) * w[..., None]).transpose(0, 1)
    cov = jacobian_covariance(jac, fit.rss, fit.n_used)
    return fit.tau_ms, torch.sqrt(cov[:, 1, 1].clamp_min(0.0)), mask


class T2Map(_MapPlugin):
    """T2 map from T2-prepared images: mono-exponential fit over the preparation times, SD map."""

    Config = ExponentialMapConfig

    def process(self, item: ContrastSeries) -> Iterable[Any]:
        typed = mr_header(self.context.header)
        preps = (
            [typed.numbers(f"t2_preparation_ms_{i}")[0] for i in range(item.images.shape[0])] if typed else []
        )
        if len(preps) != item.images.shape[0]:
            raise ValueError("t2_map needs user parameters t2_preparation_ms_<i> for every image")
        return list(self._fit(item, torch.tensor(preps), "t2"))

    def _fit(self, item: ContrastSeries, t_ms: torch.Tensor, name: str) -> Iterator[Any]:
        cfg: ExponentialMapConfig = self.config  # type: ignore[assignment]
        magnitude = torch.from_numpy(np.abs(item.images)).to(self.context.device)
        tau, sd, mask = exponential_maps(magnitude, t_ms, cfg)
        top = cfg.display_max_ms
        yield from self._emit(
            item,
            [(name, _map(tau, mask), "ms", (0.0, top), "navia"),
             (f"{name}_sd", _map(sd, mask), "ms", (0.0, top / 5), "gray")],
        )  # fmt: skip


class T2StarMap(T2Map):
    """T2* map from multi-echo GRE magnitudes: exponential fit with noise-floor truncation or offset."""

    def process(self, item: ContrastSeries) -> Iterable[Any]:
        typed = mr_header(self.context.header)
        te = list(typed.echo_times_ms) if typed else []
        if len(te) != item.images.shape[0]:
            raise ValueError(
                f"t2star_map: {item.images.shape[0]} echoes but the header gives {len(te)} echo times"
            )
        return list(self._fit(item, torch.tensor(te), "t2star"))
