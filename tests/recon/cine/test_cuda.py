"""CPU and CUDA paths give the same numbers (skips itself without a GPU)."""

from __future__ import annotations

import pytest
import torch

from recon.cine import coilmaps, combine, grappa, unfold
from recon.cine.binning import bin_lines, build_beat_table
from recon.cine.cs import sense_low_rank_sparse, sense_temporal_tv
from recon.cine.sense import cg_sense
from tests.recon.cine import synthetic

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
SHAPE = (64, 48)


def _error(cpu: torch.Tensor, gpu: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(cpu - gpu.cpu()) / torch.linalg.vector_norm(cpu))


def _close(cpu: torch.Tensor, gpu: torch.Tensor, rtol: float = 1e-4) -> None:
    err = _error(cpu, gpu)
    assert err < rtol, f"CPU and CUDA differ by {err:.2e} (relative)"


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(21)
    k, _, _ = synthetic.cine_kspace(8, SHAPE, 4, noise_std=0.01, generator=g)
    return k, k.mean(0)[:, 20:44]


def test_grappa_and_maps_match(data: tuple[torch.Tensor, torch.Tensor]) -> None:
    k, acs = data
    outputs = []
    for device in ("cpu", "cuda"):
        kd, ad = k.to(device), acs.to(device)
        imaging = torch.zeros(SHAPE[0], dtype=torch.bool)
        imaging[0::2] = True
        outputs.append(unfold.grappa_unfold(kd * imaging.to(device)[:, None], imaging, ad, 2))
        outputs.append(coilmaps.espirit_maps(ad, SHAPE))
        w = grappa.grappa_image_weights(grappa.calibrate_grappa(ad, 3), SHAPE)
        outputs.append(
            combine.b1_combine(grappa.apply_image_weights(kd, w), coilmaps.lowres_coil_maps(ad, SHAPE))
        )
    errors = {
        name: _error(c, g)
        for name, c, g in zip(("grappa", "espirit", "kernel"), outputs[:3], outputs[3:], strict=True)
    }
    # float32 arithmetic in a different order: 1e-4 relative; ESPIRiT maps 1e-3 (pixels at the crop edge)
    assert errors["grappa"] < 1e-4 and errors["kernel"] < 1e-4 and errors["espirit"] < 1e-3, errors


def test_sense_and_cs_match(data: tuple[torch.Tensor, torch.Tensor]) -> None:
    k, acs = data
    mask = torch.zeros(4, 1, SHAPE[0], 1)
    mask[:, :, 0::3] = 1
    mask[:, :, 28:36] = 1
    maps = coilmaps.espirit_maps(acs, SHAPE)
    cpu = [
        cg_sense(k * mask, maps, mask, 10).x,
        sense_temporal_tv(k * mask, maps, mask, n_iterations=5).images,
        sense_low_rank_sparse(k * mask, maps, mask, n_iterations=5).images,
    ]
    kd, md, mapsd = (k * mask).cuda(), mask.cuda(), maps.cuda()
    gpu = [
        cg_sense(kd, mapsd, md, 10).x,
        sense_temporal_tv(kd, mapsd, md, n_iterations=5).images,
        sense_low_rank_sparse(kd, mapsd, md, n_iterations=5).images,
    ]
    for a, b in zip(cpu, gpu, strict=True):
        _close(a, b, rtol=1e-3)


def test_binning_matches() -> None:
    g = torch.Generator().manual_seed(2)
    times = torch.sort(torch.rand(400, generator=g, dtype=torch.float64) * 4).values
    ky = torch.randint(0, 8, (400,), generator=g)
    lines = torch.randn(400, 2, 6, dtype=torch.complex64, generator=g)
    table = build_beat_table(torch.tensor([0.0, 1.0, 2.05, 3.0, 4.1], dtype=torch.float64), 20.0)
    cpu = bin_lines(lines, ky, times, table, 10, 8, max_gap_phases=10.0)
    gpu = bin_lines(lines.cuda(), ky, times, table, 10, 8, max_gap_phases=10.0)
    assert torch.equal(cpu.sampled, gpu.sampled)
    _close(cpu.kspace, gpu.kspace, rtol=1e-6)
