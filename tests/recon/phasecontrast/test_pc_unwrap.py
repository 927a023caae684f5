"""Velocity-aliasing correction: temporal and spatial unwrapping of wrapped synthetic series."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.phasecontrast.unwrap import unwrap_spatial, unwrap_temporal, unwrap_velocity, wrap_velocity
from tests.recon.phasecontrast.pc_synthetic import synthetic_series

VESSELS = ((22.0, 24.0, 6.0, 150.0, 0.1), (42.0, 40.0, 4.0, -110.0, 0.0))
VENC = 100.0  # below both peaks: the vessel cores alias


def _series(noise: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    data = synthetic_series(
        np.random.default_rng(seed),
        vessels=VESSELS,
        background_poly=(0.0,) * 6,
        noise_cm_per_s=noise,
        n_phases=25,
    )
    true_v = torch.from_numpy(data["true_flow_velocity"])
    measured = torch.from_numpy(data["velocity"])
    body = torch.from_numpy(data["body"])
    return true_v, torch.where(body, wrap_velocity(measured, VENC), measured), body


def test_wrap_velocity_range() -> None:
    v = torch.tensor([-250.0, -100.0, -99.0, 0.0, 99.0, 100.0, 150.0])
    assert torch.allclose(
        wrap_velocity(v, 100.0), torch.tensor([-50.0, -100.0, -99.0, 0.0, 99.0, -100.0, -50.0])
    )


@pytest.mark.parametrize("method", ["temporal", "spatial", "temporal_spatial"])
def test_noise_free_series_unwrapped_exactly(method: str) -> None:
    true_v, wrapped, body = _series(noise=0.0)
    assert float((wrapped - true_v)[:, body].abs().max()) > 150.0  # really aliased
    unwrapped = unwrap_velocity(wrapped, VENC, body, method=method)  # type: ignore[arg-type]
    assert float((unwrapped - true_v)[:, body].abs().max()) < 1e-9


@pytest.mark.parametrize("method", ["temporal", "spatial", "temporal_spatial"])
def test_noisy_series_unwrapped(method: str) -> None:
    true_v, wrapped, body = _series(noise=3.0, seed=5)
    unwrapped = unwrap_velocity(wrapped, VENC, body, method=method)  # type: ignore[arg-type]
    err = (unwrapped - true_v)[:, body]
    assert float(err.abs().max()) < 25.0  # no pixel left off by 2·VENC = 200 cm/s
    assert float(err.abs().mean()) < 3.0  # only the measurement noise remains


def test_noise_pixels_untouched_and_no_op_without_aliasing() -> None:
    true_v, wrapped, body = _series(noise=1.0)
    out = unwrap_temporal(wrapped, VENC, body)
    assert torch.equal(out[:, ~body], wrapped[:, ~body])
    mild = torch.where(body, 0.6 * true_v, wrapped)  # peak 90 cm/s < VENC: nothing to unwrap
    assert torch.allclose(unwrap_spatial(mild, VENC, body), mild)
    assert torch.allclose(unwrap_temporal(mild, VENC, body), mild)


def test_unknown_method() -> None:
    with pytest.raises(ValueError, match="unwrap method"):
        unwrap_velocity(torch.zeros(3, 4, 4), 100.0, torch.ones(4, 4, dtype=torch.bool), method="magic")  # type: ignore[arg-type]
