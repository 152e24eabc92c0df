"""Noise distributions: moments, the Gumbel-max identity, generators, devices and dtypes."""

from __future__ import annotations

import math

import pytest
import torch

import difftools as dt

EULER = 0.5772156649015329


def test_gumbel_moments_and_log_prob():
    x = dt.Gumbel().sample((200_000,), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert x.mean().item() == pytest.approx(EULER, abs=0.01)
    assert x.var().item() == pytest.approx(math.pi**2 / 6, abs=0.03)
    grid = torch.linspace(-3, 8, 20001, dtype=torch.float64)
    assert torch.trapezoid(dt.Gumbel().log_prob(grid).exp(), grid).item() == pytest.approx(1.0, abs=1e-3)


def test_gumbel_perturbed_argmax_is_softmax():
    theta = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
    eps = dt.Gumbel().sample((50_000, 4), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    freq = torch.bincount((theta + eps).argmax(-1), minlength=4).double() / 50_000
    torch.testing.assert_close(freq, torch.softmax(theta, 0), atol=8e-3, rtol=0)


def test_normal_moments_log_prob_and_score():
    x = dt.Normal().sample((100_000,), generator=torch.Generator().manual_seed(0))
    assert x.mean().item() == pytest.approx(0.0, abs=0.02)
    assert x.std().item() == pytest.approx(1.0, abs=0.02)
    v = torch.tensor([0.0, 1.5])
    torch.testing.assert_close(dt.Normal().log_prob(v), torch.distributions.Normal(0.0, 1.0).log_prob(v))
    torch.testing.assert_close(dt.Normal().score(v), -v)


def test_sum_of_gamma_sums_to_gumbel_over_k_copies():
    """Σ of k independent SoG(k, s) samples is approximately Gumbel(0, 1) (Niepert et al. 2021)."""
    k = 5
    x = dt.SumOfGamma(k, terms=20).sample((k, 20_000), generator=torch.Generator().manual_seed(2))
    total = x.double().sum(0)
    assert total.mean().item() == pytest.approx(EULER, abs=0.05)
    assert total.var().item() == pytest.approx(math.pi**2 / 6, rel=0.1)


def test_standard_gamma_with_generator_has_right_moments():
    from difftools.noise import _standard_gamma

    a = 0.1
    x = _standard_gamma(a, (200_000,), torch.Generator().manual_seed(3), None, torch.float64)
    assert x.mean().item() == pytest.approx(a, rel=0.03)
    assert x.var().item() == pytest.approx(a, rel=0.1)
    assert (x >= 0).all()


@pytest.mark.parametrize("exact", [True, False], ids=["exact (CPU)", "fixed proposals (GPU)"])
@pytest.mark.parametrize("a", [1 / 16, 0.2, 1.0, 3.0])
def test_standard_gamma_follows_the_gamma_distribution(a, exact):
    """Both ways of running the rejection step sample Gamma(a, 1): a Kolmogorov-Smirnov test."""
    from scipy import stats

    from difftools.noise import _standard_gamma

    x = _standard_gamma(a, (50_000,), torch.Generator().manual_seed(4), None, torch.float64, exact=exact)
    assert stats.kstest(x.numpy(), stats.gamma(a).cdf).pvalue > 1e-3
    # The test has the power to see a shape off by a fifth at this sample size.
    assert stats.kstest(x.numpy(), stats.gamma(1.2 * a).cdf).pvalue < 1e-3


def test_sum_of_gamma_without_a_generator_follows_torch_manual_seed():
    torch.manual_seed(11)
    a = dt.SumOfGamma(4).sample((3, 5))
    torch.manual_seed(11)
    torch.testing.assert_close(a, dt.SumOfGamma(4).sample((3, 5)))


@pytest.mark.parametrize("noise", [dt.Gumbel(), dt.Normal(), dt.SumOfGamma(3)])
def test_generator_reproducibility_and_dtype(noise):
    a = noise.sample((3, 4), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    b = noise.sample((3, 4), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert a.dtype == torch.float64 and a.shape == (3, 4)
    torch.testing.assert_close(a, b)
    half = noise.sample((5,), dtype=torch.float16)
    assert half.dtype == torch.float16 and torch.isfinite(half).all()


def test_sum_of_gamma_validation_and_repr():
    assert repr(dt.SumOfGamma(10)) == "SumOfGamma(k=10, terms=10)"
    with pytest.raises(ValueError, match="k must be a finite number > 0"):
        dt.SumOfGamma(0)
    with pytest.raises(ValueError, match="terms must be a positive integer"):
        dt.SumOfGamma(2, terms=0)
    with pytest.raises(NotImplementedError, match="no closed-form log density"):
        dt.SumOfGamma(2).log_prob(torch.zeros(1))


@pytest.mark.cuda
@pytest.mark.parametrize("noise", [dt.Gumbel(), dt.Normal(), dt.SumOfGamma(3)])
def test_samples_on_cuda(noise):
    x = noise.sample((4, 4), generator=torch.Generator(device="cuda").manual_seed(0), device="cuda")
    assert x.device.type == "cuda"
