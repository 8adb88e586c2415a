import numpy as np
import pytest
import torch

from snfcodec.quantize import (MAX_SYMBOL, dequantize, fake_quantize, quantize, relative_steps, sensitivities,
                               steps_for_precision)


def test_quantization_error_is_at_most_half_a_step():
    t = torch.randn(1000, dtype=torch.float64)
    for step in (0.5, 0.01, 1e-4):
        back = dequantize(quantize(t, step), step, t.shape)
        assert (back - t).abs().max() <= step / 2 + 1e-12


def test_fake_quantize_forward_matches_and_gradient_passes_through():
    t = torch.randn(50, requires_grad=True)
    q = fake_quantize(t, 0.1)
    torch.testing.assert_close(q.detach(), torch.round(t.detach() / 0.1) * 0.1)
    q.sum().backward()
    torch.testing.assert_close(t.grad, torch.ones_like(t))


def test_steps_shrink_with_precision_and_respect_symbol_range():
    tensors = [torch.randn(100), torch.randn(10) * 50]
    rel = [1.0, 1.0]
    coarse = steps_for_precision(tensors, rel, 2)
    fine = steps_for_precision(tensors, rel, 6)
    assert all(f < c for f, c in zip(fine, coarse))
    extreme = steps_for_precision(tensors, rel, 40)
    for t, s in zip(tensors, extreme):
        assert np.abs(quantize(t, s)).max() <= MAX_SYMBOL


def test_sensitive_tensors_get_finer_steps():
    a, b = torch.randn(100), torch.randn(100)
    # Loss ten-thousand times more sensitive to the first tensor than to the second.
    loss = lambda ts: np.array([float((1e4 * (ts[0] - a) ** 2).sum() + ((ts[1] - b) ** 2).sum() + 1.0)])
    g = [float(v[0]) for v in sensitivities(loss, [a, b], [torch.Generator().manual_seed(0)])]
    assert g[0] / g[1] > 1e3
    rel = relative_steps([a, b], g)
    assert rel[0] < rel[1] / 30


def test_sensitivities_are_measured_per_signal_in_one_batch():
    # Two signals' tensors stacked along the first axis; the second signal is 100x more sensitive.
    a = torch.randn(2, 50)
    weight = torch.tensor([[1.0], [100.0]])
    loss = lambda ts: (weight * (ts[0] - a) ** 2).sum(dim=1).double().numpy() + 1.0
    gens = [torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)]
    (g,) = sensitivities(loss, [a], gens)
    assert g.shape == (2,) and g[1] / g[0] == pytest.approx(100, rel=0.2)


def test_sensitivity_is_the_curvature_even_where_the_state_is_not_a_minimum():
    # A fitted state is the best of a noisy descent, not an exact minimum: a steep first-order term must not
    # hide the curvature (one-sided noise measured such a tensor as insensitive and zeroed it).
    a = torch.randn(100)
    loss = lambda ts: np.array([1.0 + float(1e3 * (ts[0] - a).sum() + ((ts[0] - a) ** 2).sum())])
    for seed in range(4):
        (g,) = sensitivities(loss, [a + 0.1], [torch.Generator().manual_seed(seed)])
        assert g[0] == pytest.approx(100, rel=0.3)  # Σ (x - a)² over 100 elements: 100 per unit noise variance
