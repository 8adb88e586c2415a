"""Banded training of large photos (snfcodec.latent.bands): the same loss and gradients as the whole-image step,
and the encoder's banded reads equal to its whole ones."""

import numpy as np
import pytest
import torch

from snfcodec.grid import pixel_centres
from snfcodec.latent import bands, coding, encoder, fused, grids
from snfcodec.latent.context import IntegerContext, pyramid_bits, quantize_context
from snfcodec.latent.field import LatentConfig, LatentField


def _field(H, W, C=3, levels=4, seed=0):
    field = LatentField(H, W, C, LatentConfig(levels=levels), (1.0, 1.0), torch.Generator().manual_seed(seed))
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for g in field.grids:
            g.copy_(torch.from_numpy(rng.normal(0, 2, g.shape)))
    return field, torch.from_numpy(rng.random((H, W, C))).float()


def _grads(field):
    out = [p.grad.clone() for p in list(field.grids) + field.network_parameters()]
    field.zero_grad(set_to_none=True)
    return out


@pytest.mark.parametrize("H, W, stride, compiled", [
    (37, 45, 1, False), (40, 33, 2, False),
    pytest.param(37, 45, 1, True, marks=pytest.mark.skipif(fused._compiler() is None, reason="no C++ compiler"))])
def test_bands_give_the_whole_steps_loss_and_gradients(monkeypatch, H, W, stride, compiled):
    """Many small bands (rows with halos and parents, windows read by convolution and gathers) against one
    autograd pass over the whole image, soft latents through a nonlinear map as in training; the bands' terms
    eager or compiled (:mod:`snfcodec.latent.fused`: bands of many shapes)."""
    field, target = _field(H, W)
    lmbda, C = 0.01, target.shape[2]
    rows = torch.arange(1, H, stride)
    ys = [torch.sin(g) * 3 for g in field.grids]
    up = grids.Upsampler(field.shapes, pixel_centres(H), pixel_centres(W))
    mse = torch.mean((field.synthesis(up(ys, rows).reshape(-1, len(ys))) - target[rows].reshape(-1, C)) ** 2)
    bits = pyramid_bits(field.context, ys)
    (mse + lmbda * bits / (H * W)).backward()
    whole = _grads(field)

    monkeypatch.setattr(bands, "WHOLE_PIXELS", 0)
    monkeypatch.setattr(bands, "BAND_PIXELS", 3 * W)  # bands of 3 image rows, and of 2–4 latent rows a level
    parts = bands.row_bands(rows, H, W)
    assert len(parts) > 3
    up = bands.upsampler(field.shapes, H, W)
    assert any(reader.phases is not None for reader in up.cols)
    ys = [torch.sin(g) * 3 for g in field.grids]
    buffers = [torch.zeros_like(y) for y in ys]
    n = len(rows) * W * C
    terms = fused.Terms(compiled)
    banded_mse = bands.distortion(field.synthesis, up, ys, target, parts, 1 / n, buffers, terms) / n
    banded_bits = bands.rate(field.context, ys, bands.BAND_PIXELS, lmbda / (H * W), buffers, terms)
    torch.autograd.backward(ys, buffers)
    assert banded_mse == pytest.approx(float(mse.detach()), rel=1e-5)
    assert banded_bits == pytest.approx(float(bits.detach()), rel=1e-5)
    assert bands.rate(field.context, ys, bands.BAND_PIXELS) == pytest.approx(banded_bits, rel=1e-6)
    for a, b in zip(whole, _grads(field)):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5 * float(a.abs().max()))


def test_the_polyphase_reading_is_the_cubic_one():
    rng = np.random.default_rng(3)
    for H, W in ((37, 101), (20, 9)):
        shapes = grids.level_shapes(H, W, 5)
        pyramid = [torch.from_numpy(rng.normal(size=s)) for s in shapes]
        dense = grids.Upsampler(shapes, pixel_centres(H), pixel_centres(W), torch.float64)(pyramid)
        up = grids.Upsampler(shapes, pixel_centres(H), pixel_centres(W), torch.float64, dense_limit=0)
        assert all(reader.phases is not None for reader in up.cols[1:])
        np.testing.assert_allclose(up(pyramid).numpy(), dense.numpy(), atol=1e-12)
        rows = torch.tensor([3, 4, 9, H - 1])
        spans = up.windows(rows)
        window = [g[lo:hi] for g, (lo, hi) in zip(pyramid, spans)]
        np.testing.assert_allclose(up(window, rows, [lo for lo, _ in spans]).numpy(), dense[rows].numpy(), atol=1e-12)


def test_the_encoders_banded_choices_are_its_whole_ones(monkeypatch):
    """The synthesis step and the trim's sensitivities of a photo read band by band are those read whole."""
    H, W = 36, 44
    field, _ = _field(H, W, levels=3, seed=1)
    latents = [np.round(g.detach().double().numpy()) for g in field.grids]
    up = grids.Upsampler(field.shapes, pixel_centres(H), pixel_centres(W))
    with torch.no_grad():  # a target the field nearly is: finer weights pay at low λ
        target = field.synthesis(up([torch.tensor(g).float() for g in latents]).reshape(H * W, -1))
    target = target.clamp(0, 1).reshape(H, W, -1)
    lambdas = (0.0, 1e-7, 1e-6, 1e-4)
    whole = [encoder._synthesis_choice(field, latents, target, lmbda) for lmbda in lambdas]
    assert len({choice[1][0].exponent for choice in whole}) >= 3
    sensitivity = encoder._sensitivity(field, latents, target)
    monkeypatch.setattr(bands, "WHOLE_PIXELS", 0)
    monkeypatch.setattr(bands, "BAND_PIXELS", 5 * W)
    for lmbda, choice in zip(lambdas, whole):
        banded = encoder._synthesis_choice(field, latents, target, lmbda)
        assert banded[1] == choice[1] and banded[2] == choice[2]
    # other random probes per band: the same expectation, not the same draw
    np.testing.assert_allclose(encoder._sensitivity(field, latents, target), sensitivity, rtol=0.2)


@pytest.mark.parametrize("deadzone, slope", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.05)])
def test_the_coding_walk_predicts_in_bands_of_rows_the_same_integers(monkeypatch, deadzone, slope):
    field, _ = _field(30, 42, levels=3, seed=2)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():  # a context model that predicts something
        for t in field.context.parameters():
            t.normal_(0, 0.5, generator=generator)
    ctx = IntegerContext(quantize_context(field.context, [0] * 12))
    latents = [g.detach().double().numpy() for g in field.grids]

    def walk():
        record = []
        chooser = coding.encoder_chooser(latents, record, deadzone, slope, [0.5, 1.0, 2.0])
        grids = coding.walk(field.shapes, ctx, chooser)
        return grids, record

    whole = walk()
    monkeypatch.setattr(coding, "PREDICT_POSITIONS", 7)
    banded = walk()
    for a, b in zip(whole[0], banded[0]):
        np.testing.assert_array_equal(a, b)
    assert len(whole[1]) == len(banded[1]) == 6
    for (r, t), (r2, t2) in zip(whole[1], banded[1]):
        np.testing.assert_array_equal(r, r2)
        np.testing.assert_array_equal(t, t2)
    assert len(np.unique(np.concatenate([t for _, t in whole[1]]))) > 3  # the context model varies its tables
