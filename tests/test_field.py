import math

import pytest
import torch

from snfcodec.field import BatchedSiren, FieldConfig, init_bounds, siren


def _model(alpha_first=1.0, alpha_hidden=1.0, width=64, tiles=8):
    cfg = FieldConfig(2, 3, width, 3, 30.0, alpha_first, alpha_hidden)
    return BatchedSiren(cfg, tiles, torch.Generator().manual_seed(1)), cfg


def test_plain_siren_init_bounds_match_the_paper():
    model, cfg = _model()
    n = cfg.width
    expected = [1 / 2, math.sqrt(6 / n) / 30, math.sqrt(6 / n) / 30, math.sqrt(6 / n) / 30]
    for w, bound in zip(model.weights, expected):
        assert w.abs().max() <= bound
        # A uniform distribution fills its range: max close to the bound, std close to bound / √3.
        assert w.abs().max() > 0.95 * bound
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)


@pytest.mark.parametrize("alpha", [1.5, 2.5])
def test_weight_scaling_multiplies_all_but_the_last_layer(alpha):
    plain, _ = _model()
    scaled, cfg = _model(alpha, alpha)
    # Same generator seed: the scaled weights are exactly α times the plain ones, except the last layer.
    for k, (w0, w1) in enumerate(zip(plain.weights, scaled.weights)):
        factor = 1.0 if k == len(plain.weights) - 1 else alpha
        torch.testing.assert_close(w1, w0 * factor)
    for b0, b1 in zip(plain.biases, scaled.biases):
        torch.testing.assert_close(b0, b1)
    assert init_bounds(cfg)[0] == pytest.approx(alpha / 2)


def test_first_and_hidden_alpha_are_independent():
    _, cfg = _model(2.0, 1.0)
    plain = init_bounds(FieldConfig(2, 3, 64))
    got = init_bounds(cfg)
    assert got[0] == pytest.approx(2 * plain[0]) and got[1:] == pytest.approx(plain[1:])


def test_batched_fields_are_independent():
    model, _ = _model(tiles=4)
    coords = torch.rand(4, 10, 2) * 2 - 1
    out = model(coords)
    assert out.shape == (4, 10, 3)
    # Field 2 alone, through the functional form with an index tensor, gives the same numbers.
    single = siren(model.tensors(), coords[2:3], 30.0, torch.tensor([2]))
    torch.testing.assert_close(single, out[2:3])
    # Changing field 0's parameters leaves the others' outputs alone.
    with torch.no_grad():
        model.weights[0][0].add_(1.0)
    out2 = model(coords)
    assert not torch.allclose(out2[0], out[0])
    torch.testing.assert_close(out2[1:], out[1:])


def test_the_fitting_layout_is_the_same_field():
    model, _ = _model(tiles=4)
    coords = torch.rand(2, 10, 2, dtype=torch.float64) * 2 - 1
    tensors = [t.detach().double() for t in model.tensors()]
    rows = siren(tensors, coords, 30.0, torch.tensor([1, 3]))
    columns = model.columns(coords.transpose(1, 2), torch.tensor([1, 3]), tensors)
    assert columns.shape == (2, 3, 10)
    torch.testing.assert_close(columns.transpose(1, 2), rows, rtol=1e-12, atol=1e-12)


def test_concatenated_models_keep_each_ones_fields():
    a, cfg = _model(tiles=2)
    b = BatchedSiren(cfg, 3, torch.Generator().manual_seed(5))
    both = BatchedSiren.concatenate([a, b])
    assert both.tiles == 5
    for t_both, t_a, t_b in zip(both.tensors(), a.tensors(), b.tensors()):
        torch.testing.assert_close(t_both, torch.cat([t_a, t_b]), rtol=0, atol=0)
    with pytest.raises(ValueError, match="one shape"):
        BatchedSiren.concatenate([a, BatchedSiren(FieldConfig(2, 3, 8, 3), 1)])


def test_param_count():
    cfg = FieldConfig(2, 3, 10, 3)
    assert cfg.params_per_field() == (2 * 10 + 10) + 2 * (10 * 10 + 10) + (10 * 3 + 3)
    model = BatchedSiren(cfg, 5)
    assert sum(p.numel() for p in model.parameters()) == 5 * cfg.params_per_field()


def test_wrapping_phases_keeps_the_field_and_shrinks_the_biases():
    model, cfg = _model(tiles=3)
    with torch.no_grad():
        model.biases[0].mul_(10)  # spread over many periods
    coords = torch.rand(3, 50, 2, dtype=torch.float64) * 2 - 1
    before = siren([t.double() for t in model.tensors()], coords, cfg.omega0)
    last_bias = model.biases[-1].clone()
    model.wrap_phases()
    after = siren([t.double() for t in model.tensors()], coords, cfg.omega0)
    torch.testing.assert_close(after, before, atol=1e-4, rtol=0)
    half = math.pi / cfg.omega0
    for b in list(model.biases)[:-1]:
        assert b.abs().max() <= half + 1e-6
    torch.testing.assert_close(model.biases[-1], last_bias)  # the output layer has no sine
