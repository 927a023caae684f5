"""FFT round trip and adjointness, operator algebra, CG against a direct solve."""

from __future__ import annotations

import pytest
import torch

from recon.common import fft as fft_module
from recon.common.fft import FFTOperator, fftc, ifftc
from recon.common.linop import IdentityOperator, MultiplyOperator
from recon.common.solvers import conjugate_gradient, power_iteration
from tests.helpers.markers import requires_cuda
from tests.helpers.operator_checks import assert_adjoint, random_complex


@pytest.mark.parametrize("backend", ["torch", "pyfftw"])
def test_fft_round_trip_and_norm(backend: str, torch_gen: torch.Generator) -> None:
    fft_module.set_cpu_backend(backend)  # type: ignore[arg-type]
    try:
        x = random_complex((3, 4, 24, 18), torch_gen, torch.complex64)
        k = fftc(x, dims=(-2, -1))
        assert torch.allclose(ifftc(k, dims=(-2, -1)), x, atol=1e-6 * float(x.abs().max()) * 10)
        assert (
            abs(float(torch.linalg.vector_norm(k)) / float(torch.linalg.vector_norm(x)) - 1.0) < 1e-5
        )  # float32 accumulation
    finally:
        fft_module.set_cpu_backend("auto")


def test_fft_centre_convention() -> None:
    """A constant image has all its energy at index n//2 (the ISMRMRD k-space centre)."""
    x = torch.ones(8, 6, dtype=torch.complex64)
    k = fftc(x)
    assert torch.argmax(k.abs()).item() == 4 * 6 + 3
    assert abs(float(k[4, 3].real) - (48**0.5)) < 1e-5


def test_backends_agree(torch_gen: torch.Generator) -> None:
    x = random_complex((2, 32, 20), torch_gen, torch.complex64)
    fft_module.set_cpu_backend("torch")
    a = fftc(x, dims=(-2, -1))
    fft_module.set_cpu_backend("pyfftw")
    b = fftc(x, dims=(-2, -1))
    fft_module.set_cpu_backend("auto")
    assert torch.allclose(a, b, atol=1e-5)


def test_fft_operator_adjoint() -> None:
    op = FFTOperator(dims=(-2, -1))
    assert_adjoint(op.forward, op.adjoint, (2, 10, 7), (2, 10, 7))
    assert_adjoint(op.H.forward, op.H.adjoint, (2, 10, 7), (2, 10, 7))


def test_composition_and_adjoint_of_composition(torch_gen: torch.Generator) -> None:
    w = random_complex((10, 7), torch_gen)
    mask = (torch.rand(10, 7, generator=torch_gen) > 0.5).to(torch.complex128)
    op = MultiplyOperator(mask) @ FFTOperator() @ MultiplyOperator(w) @ IdentityOperator()
    assert_adjoint(op.forward, op.adjoint, (3, 10, 7), (3, 10, 7))
    x = random_complex((3, 10, 7), torch_gen)
    assert torch.allclose(op(x), mask * fftc(w * x, dims=(-2, -1)))
    assert op.H.H is op


def test_conjugate_gradient_matches_direct_solve(torch_gen: torch.Generator) -> None:
    a = random_complex((20, 20), torch_gen)
    normal = a.conj().T @ a + 0.5 * torch.eye(20, dtype=torch.complex128)
    b = random_complex((20,), torch_gen)
    result = conjugate_gradient(lambda v: normal @ v, b, n_iterations=60, tolerance=1e-12)
    expected = torch.linalg.solve(normal, b)
    assert torch.allclose(result.x, expected, atol=1e-8)
    assert result.residual_norms[-1] < 1e-10


def test_power_iteration_largest_eigenvalue(torch_gen: torch.Generator) -> None:
    d = torch.tensor([1.0, 3.0, 9.5, 2.0], dtype=torch.float64)
    estimate = power_iteration(lambda v: d * v, torch.ones(4, dtype=torch.float64), n_iterations=200)
    assert abs(estimate - 9.5) < 1e-6


@requires_cuda
def test_fft_cuda_matches_cpu(torch_gen: torch.Generator) -> None:
    x = random_complex((4, 64, 48), torch_gen, torch.complex64)
    assert torch.allclose(fftc(x.cuda()).cpu(), fftc(x), atol=1e-4)


def test_pyfftw_backend_is_thread_safe(torch_gen: torch.Generator) -> None:
    """Same-shape FFTs from several threads at once give each thread its own correct result."""
    import concurrent.futures

    fft_module.set_cpu_backend("pyfftw")
    try:
        inputs = [random_complex((8, 64, 48), torch_gen, torch.complex64) for _ in range(8)]
        expected = [
            torch.fft.fftshift(
                torch.fft.fftn(torch.fft.ifftshift(x, dim=(-2, -1)), dim=(-2, -1), norm="ortho"), dim=(-2, -1)
            )
            for x in inputs
        ]

        def work(i: int) -> bool:
            return all(torch.allclose(fftc(inputs[i]), expected[i], atol=1e-4) for _ in range(20))

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            assert all(pool.map(work, range(8)))
    finally:
        fft_module.set_cpu_backend("auto")
