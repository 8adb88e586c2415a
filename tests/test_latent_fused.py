"""The compiled training terms (snfcodec.latent.fused): the same rate and distortion, with the same gradients,
as the eager ones; a failing compiler falls back; the environment decides first."""

import numpy as np
import pytest
import torch

from snfcodec.latent import fused
from snfcodec.latent.context import ContextModel, columns_bits, pyramid_columns
from snfcodec.latent.synthesis import Synthesis


def _pyramid(rng, shapes, dtype):
    """Latents near integers with some far out, so the clamps of ln b and of the bits are reached."""
    out = []
    for s in shapes:
        g = np.round(rng.normal(0, 3, s)) + rng.uniform(-0.3, 0.3, s)
        g.flat[::7] *= 40
        out.append(torch.from_numpy(g).to(dtype).requires_grad_())
    return out


def _model(dtype):
    model = ContextModel(8, torch.Generator().manual_seed(0)).to(dtype)
    with torch.no_grad():  # ln b over the tables' whole range and beyond
        model.nets[1][-1].bias[1] = 6.0
        model.nets[0][-1].weight.mul_(30)
    return model


def test_traced_rate_is_the_rate_with_its_gradients():
    """The form the compiler gets (autograd through the bits) against the hand-written derivative."""
    rng = np.random.default_rng(0)
    model = _model(torch.float64)
    pyramid = _pyramid(rng, [(9, 12), (5, 6), (3, 3), (2, 2), (1, 1)], torch.float64)
    params = pyramid + list(model.parameters())
    eager = columns_bits(model, pyramid_columns(pyramid))
    traced = columns_bits(model, pyramid_columns(pyramid), traced=True)
    assert float(traced.detach()) == pytest.approx(float(eager.detach()), rel=1e-12)
    for a, b in zip(torch.autograd.grad(eager, params), torch.autograd.grad(traced, params)):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-7, atol=1e-9)


@pytest.mark.skipif(fused._compiler() is None, reason="no C++ compiler for torch.compile")
def test_compiled_terms_are_the_eager_terms():
    rng = np.random.default_rng(1)
    model = _model(torch.float32)
    synthesis = Synthesis(4, 8, 2, 3, "sine", 1.0, (1.0, 1.0), torch.Generator().manual_seed(0))
    pyramid = _pyramid(rng, [(12, 16), (6, 8), (3, 4), (2, 2)], torch.float32)
    x = torch.from_numpy(rng.normal(0, 2, (96, 4)).astype(np.float32)).requires_grad_()
    target = torch.from_numpy(rng.uniform(0, 1, (96, 3)).astype(np.float32))
    params = pyramid + [x] + list(model.parameters()) + list(synthesis.parameters())
    results = []
    for terms in (fused.Terms(False), fused.Terms(True)):
        rate = terms.rate(model, pyramid_columns(pyramid))
        mse = terms.distortion(synthesis, x, target)
        results.append((float(rate.detach()), float(mse.detach()), torch.autograd.grad(rate + mse, params)))
    (rate0, mse0, grads0), (rate1, mse1, grads1) = results
    assert rate1 == pytest.approx(rate0, rel=1e-5) and mse1 == pytest.approx(mse0, rel=1e-5)
    for a, b in zip(grads0, grads1):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5)


def test_a_failing_compilation_falls_back_to_the_eager_terms():
    terms = fused.Terms(True)

    def broken(*args):
        raise RuntimeError("no compiler headers")

    terms._rate = broken
    resets = []
    model = _model(torch.float32)
    pyramid = _pyramid(np.random.default_rng(2), [(6, 6), (3, 3)], torch.float32)
    with pytest.warns(RuntimeWarning, match="compiling the training step failed"):
        bits = terms.step(lambda: float(terms.rate(model, pyramid_columns(pyramid)).detach()),
                          lambda: resets.append(1))
    assert not terms.compiled and resets == [1]
    assert bits == pytest.approx(float(columns_bits(model, pyramid_columns(pyramid)).detach()))


def test_the_environment_decides_before_the_size(monkeypatch):
    monkeypatch.setattr(fused, "_compiler", lambda: "g++")
    monkeypatch.delenv(fused.ENVIRONMENT, raising=False)
    assert fused.requested(2e8, 1e8) and not fused.requested(5e7, 1e8)
    monkeypatch.setenv(fused.ENVIRONMENT, "0")
    assert not fused.requested(2e8, 1e8)
    monkeypatch.setenv(fused.ENVIRONMENT, "1")
    assert fused.requested(10, 1e8)
    assert fused.requested(10, 1e8, "cuda")  # asked for: compiled on a GPU too
    monkeypatch.setattr(fused, "_compiler", lambda: None)
    assert not fused.requested(2e8, 1e8)
    monkeypatch.delenv(fused.ENVIRONMENT)
    monkeypatch.setattr(fused, "_compiler", lambda: "g++")
    assert not fused.requested(2e8, 1e8, "cuda")  # measured on the CPU only: a GPU fit stays eager unless asked
