"""The latent field's parts (snfcodec.latent.grids, .context, .tables): the training path computes what the
coding path codes, and the integer entropy model is exactly the reference arithmetic."""

import math

import numpy as np
import pytest
import torch

from snfcodec.grid import pixel_centres
from snfcodec.latent import coding, grids, tables
from snfcodec.latent.context import (FEATURES, FRAC, MAX_ACT, MAX_LATENT, SUBLATTICES, ContextModel,
                                     IntegerContext, checkerboard, features, laplace_bits, pyramid_bits,
                                     pyramid_bits_sampled,
                                     quantize_context, sublattice_columns)
from snfcodec.latent.tables import LATENT as L


def _pyramid(rng, shapes, spread=3.0):
    return [torch.from_numpy(np.round(rng.normal(0, spread, s))).double() for s in shapes]


def test_level_shapes_halve_with_ceiling():
    assert grids.level_shapes(33, 20, 4) == [(33, 20), (17, 10), (9, 5), (5, 3)]


def test_a_field_from_half_scale_reads_the_coarser_levels_as_the_full_pyramid_does(monkeypatch):
    """``first`` = 1: the levels are the full pyramid's levels 1.., read at the same positions by every reader
    (matrix, gather, polyphase) — the pixel-size level is left out, nothing else changes."""
    rng = np.random.default_rng(6)
    H, W = 20, 28
    assert grids.level_shapes(H, W, 3, first=1) == grids.level_shapes(H, W, 4)[1:]
    full = _pyramid(rng, grids.level_shapes(H, W, 4))
    for rows, cols in ((pixel_centres(H), pixel_centres(W)), (np.linspace(0.1, 19.7, 37), np.linspace(-0.5, 28.5, 11))):
        for limit in (grids.DENSE_LIMIT, 0):
            monkeypatch.setattr(grids, "DENSE_LIMIT", limit)
            whole = grids.Upsampler([tuple(g.shape) for g in full], rows, cols, torch.float64)(full)
            half = grids.Upsampler([tuple(g.shape) for g in full[1:]], rows, cols, torch.float64, first=1)(full[1:])
            np.testing.assert_allclose(half.numpy(), whole[..., 1:].numpy(), atol=1e-12)


def test_upsampling_matches_torch_bicubic_at_power_of_two_scales():
    """At 2^l × the level's own size the cubic reading is torch's bicubic (a = −0.75, border clamped)."""
    rng = np.random.default_rng(0)
    H, W = 32, 48
    shapes = grids.level_shapes(H, W, 4)
    pyramid = _pyramid(rng, shapes)
    up = grids.Upsampler(shapes, pixel_centres(H), pixel_centres(W), torch.float64)(pyramid)
    for l, g in enumerate(pyramid):
        ref = torch.nn.functional.interpolate(g[None, None], scale_factor=2 ** l, mode="bicubic",
                                              align_corners=False)[0, 0]
        np.testing.assert_allclose(up[..., l].numpy(), ref.numpy(), atol=1e-9)
    np.testing.assert_array_equal(up[..., 0].numpy(), pyramid[0].numpy())  # level 0 reads back its samples


def test_dense_and_gathered_readings_agree(monkeypatch):
    rng = np.random.default_rng(1)
    shapes = grids.level_shapes(20, 28, 3)
    pyramid = _pyramid(rng, shapes)
    rows, cols = np.linspace(0.1, 19.7, 37), np.linspace(-0.5, 28.5, 11)  # off-grid, past the border
    dense = grids.Upsampler(shapes, rows, cols, torch.float64)(pyramid)
    monkeypatch.setattr(grids, "DENSE_LIMIT", 0)
    gathered = grids.Upsampler(shapes, rows, cols, torch.float64)(pyramid)
    np.testing.assert_allclose(dense.numpy(), gathered.numpy(), atol=1e-12)


def test_a_subset_of_rows_reads_those_rows_of_the_whole(monkeypatch):
    """Training's sub-sampled steps read exactly the rows they ask for, by every reader (copy, matrix, gather)."""
    rng = np.random.default_rng(5)
    shapes = grids.level_shapes(20, 28, 3)
    pyramid = _pyramid(rng, shapes)
    rows = torch.tensor([1, 4, 7, 19])
    for limit in (grids.DENSE_LIMIT, 0):
        monkeypatch.setattr(grids, "DENSE_LIMIT", limit)
        up = grids.Upsampler(shapes, np.arange(20) + 0.5, np.arange(28) + 0.5, torch.float64)
        np.testing.assert_allclose(up(pyramid, rows).numpy(), up(pyramid)[rows].numpy(), atol=1e-12)


def test_sublattice_columns_are_the_features_of_those_positions():
    """The decoder's strided context (NumPy) is the normative per-position one, on odd and even sizes."""
    rng = np.random.default_rng(3)
    for h, w in ((9, 12), (8, 7), (1, 5)):
        grid, parent = _pyramid(rng, [(h, w), ((h + 1) // 2, (w + 1) // 2)])
        ref = features(grid, parent).numpy().reshape(h, w, -1)
        gp, pp = np.pad(grid.numpy(), 1), np.pad(parent.numpy(), 1)
        for r0, c0 in SUBLATTICES:
            cols = sublattice_columns(gp, pp, r0, c0, h, w)
            want = ref[r0::2, c0::2, :len(cols)]
            assert len(cols) == (9 if (r0 + c0) % 2 == 0 else 13)
            np.testing.assert_array_equal(np.stack(cols, axis=-1), want)


def _per_position_bits(model, pyramid):
    """The training rate by definition: every position's own context (:func:`features` with what its pass has
    decoded), its pass's network, its Laplace bits."""
    total = 0
    for l, grid in enumerate(pyramid):
        h, w = grid.shape
        parent = pyramid[l + 1] if l + 1 < len(pyramid) else None
        for p in (0, 1):
            where = torch.from_numpy(checkerboard(h, w, p))
            if not len(where):
                continue
            known = torch.zeros(h * w, dtype=grid.dtype)
            if p == 1:  # pass 1 sees only the anchors; pass 0 no latent of its own level
                anchors = torch.from_numpy(checkerboard(h, w, 0))
                known = known.index_put((anchors,), grid.reshape(-1)[anchors])
            mu, log_b = model(p, features(known.reshape(h, w), parent)[where])
            total = total + laplace_bits(grid.reshape(-1)[where], mu, log_b).sum()
    return total


def test_training_rate_is_every_position_with_its_pass_context():
    """The batched training rate (all levels' columns at once, a hand-written backward) has the value and the
    gradients of the per-position definition, on odd and even sizes and down to a 1×1 level."""
    model = ContextModel(8, torch.Generator().manual_seed(0)).double()
    rng = np.random.default_rng(2)
    shapes = [(9, 12), (5, 6), (3, 3), (2, 2), (1, 1)]
    pyramid = [(g + torch.from_numpy(rng.uniform(-0.5, 0.5, g.shape))).requires_grad_()
               for g in _pyramid(rng, shapes)]
    params = pyramid + list(model.parameters())
    want = _per_position_bits(model, pyramid)
    got = pyramid_bits(model, pyramid)
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-12)
    for a, b in zip(torch.autograd.grad(want, params), torch.autograd.grad(got, params)):
        np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-10)


@pytest.mark.parametrize("stride", [1, 3, 4])
def test_sampled_rate_averages_to_the_exact_rate_over_its_phases(stride):
    """The controller's count with the finest level sampled: every phase a different count (on a pyramid whose
    finest level is not uniform), their mean the exact one; stride 1 is the exact count."""
    model = ContextModel(8, torch.Generator().manual_seed(0)).double()
    rng = np.random.default_rng(4)
    pyramid = _pyramid(rng, [(11, 14), (6, 7), (3, 4), (2, 2)])
    pyramid[0][:, :5] *= 4  # detail on one side: sampled columns see different content
    with torch.no_grad():
        exact = float(pyramid_bits(model, pyramid))
        counts = [float(pyramid_bits_sampled(model, pyramid, stride, phase)) for phase in range(stride)]
    assert np.mean(counts) == pytest.approx(exact, rel=1e-12)
    if stride > 1:
        assert len(set(round(c, 6) for c in counts)) == stride


def test_laplace_bits_gradients_are_the_closed_forms():
    """The hand-written gradient of the rate against autograd through the probability it is −log2 of,
    including the clamps of ln b and of the bits (zero gradient beyond) and a broadcast centre."""
    gen = torch.Generator().manual_seed(4)
    y = (torch.randn(4000, generator=gen, dtype=torch.float64) * 6).requires_grad_()
    mu = torch.randn(4000, generator=gen, dtype=torch.float64).requires_grad_()
    log_b = (torch.randn(4000, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    lo, hi = L.ln_b_range
    assert float(log_b.detach().min()) < lo and float(log_b.detach().max()) > hi

    def definition(y, mu, log_b):
        b = torch.exp(log_b.clamp(lo, hi))
        d = (y - mu).abs()
        cdf = lambda x: torch.where(x < 0, 0.5 * torch.exp(x / b), 1 - 0.5 * torch.exp(-x / b))
        return -torch.log2((cdf(d + 0.5) - cdf(d - 0.5)).clamp_min(2.0 ** -16))

    weight = torch.rand(4000, generator=gen, dtype=torch.float64)
    for centre in (mu, torch.zeros((), dtype=torch.float64, requires_grad=True)):
        want, got = definition(y, centre, log_b), laplace_bits(y, centre, log_b)
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-9, atol=1e-9)
        assert bool((want.detach() >= 16).any())
        for a, b in zip(torch.autograd.grad((want * weight).sum(), [y, centre, log_b]),
                        torch.autograd.grad((got * weight).sum(), [y, centre, log_b])):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-6)
    with_graph = laplace_bits(y, mu, log_b).detach()
    with torch.no_grad():  # without a graph the forward is the same
        np.testing.assert_array_equal(laplace_bits(y, mu, log_b).numpy(), with_graph.numpy())


def _reference_predict(weights, p, x):
    """The integer model of formats/snf.md §6 in Python integers, one latent at a time."""
    w0, b0, w1, b1, w2, b2 = [w.tolist() for w in weights[6 * p:6 * p + 6]]
    s, out = 1 << FRAC, []
    for row in x.tolist():
        row = [int(v) for v in row[:FEATURES[p]]]
        h = [min(max(sum(row[i] * w0[i][j] for i in range(len(row))) + b0[j], 0), int(MAX_ACT))
             for j in range(len(b0))]
        h = [min(max((sum(h[i] * w1[i][j] for i in range(len(h))) + b1[j] * s) // s, 0), int(MAX_ACT))
             for j in range(len(b1))]
        o = [(sum(h[i] * w2[i][j] for i in range(len(h))) + b2[j] * s) // s for j in range(2)]
        mu = min(max(o[0], -MAX_LATENT * s), MAX_LATENT * s)
        quarter = (mu + 32) // 64
        m, offset = divmod(quarter, L.offsets)
        scale = min(max((L.scales_per_e * (o[1] - L.ln_b0 * s) + 128) // s, 0), L.num_scales - 1)
        out.append((scale * L.offsets + offset, m))
    return out


def test_integer_context_equals_python_integer_reference():
    gen = torch.Generator().manual_seed(3)
    model = ContextModel(6, gen)
    with torch.no_grad():
        for t in model.parameters():
            t.mul_(4.0)  # larger activations, so the clamps and floors are exercised
    weights = quantize_context(model, [1] * 12)
    weights = [w << 1 for w in weights]
    ctx = IntegerContext(weights)
    rng = np.random.default_rng(4)
    x = torch.from_numpy(rng.integers(-MAX_LATENT, MAX_LATENT + 1, (200, 13)).astype(np.float64))
    for p in (0, 1):
        table, centre = ctx.predict(p, x)
        assert list(zip(table.tolist(), centre.tolist())) == _reference_predict(weights, p, x)
        assert table.min() >= 0 and table.max() < L.num_scales * L.offsets


def test_deterministic_exp_is_exp():
    x = -np.linspace(0, 60, 6001)
    np.testing.assert_allclose(tables.det_exp(x), np.exp(x), rtol=1e-14)
    assert L.scale_of(0) == pytest.approx(math.exp(L.ln_b0), rel=1e-15)


def test_laplace_bits_are_the_coded_tables_bits():
    """The training rate of a rounded latent is −log2 of the table the coder uses for it."""
    s, offset = 20, 1
    b = L.scale_of(s)
    centre = offset / L.offsets
    residuals = np.arange(-4, 6)  # under 16 bits, where training's clamp does not apply
    trained = laplace_bits(torch.from_numpy(residuals.astype(np.float64)), torch.tensor(centre),
                           torch.tensor(math.log(b)))
    coded = L.bits(s * L.offsets + offset)[residuals + L.radius]
    np.testing.assert_allclose(trained.numpy(), coded, rtol=1e-6)


def test_residuals_round_trip_through_the_range_coder():
    rng = np.random.default_rng(5)
    table = rng.integers(0, L.num_scales * L.offsets, 500)
    residuals = np.clip(np.round(rng.laplace(0, 4, 500)), -L.radius, L.radius).astype(np.int64)
    enc = coding.new_encoder()
    L.encode(enc, residuals, table)
    dec = coding.new_decoder(coding.finish(enc))
    np.testing.assert_array_equal(L.decode(dec, table), residuals)


def test_weights_round_trip_and_their_bits():
    rng = np.random.default_rng(6)
    symbols = np.round(rng.laplace(0, 30, 1000)).astype(np.int64)
    lo, hi, s = int(symbols.min()), int(symbols.max()), tables.fit_scale_index(symbols)
    enc = coding.new_encoder()
    tables.encode_weights(enc, symbols, lo, hi, s)
    data = coding.finish(enc)
    np.testing.assert_array_equal(tables.decode_weights(coding.new_decoder(data), 1000, lo, hi, s), symbols)
    assert abs(8 * len(data) - tables.weight_bits(symbols, lo, hi, s)) <= 64


def _direct_probabilities(lo, hi, centre, b):
    """formats/snf.md §8's table, every bin's CDF difference computed."""
    k = np.arange(lo, hi + 1, dtype=np.float64)

    def cdf(z):
        return np.where(z < 0, 0.5 * tables.det_exp(np.minimum(z, 0.0)), 1.0 - 0.5 * tables.det_exp(-np.maximum(z, 0.0)))

    p = np.maximum(cdf((k + 0.5 - centre) / b) - cdf((k - 0.5 - centre) / b), 2.0 ** -30)
    return p / math.fsum(p)


@pytest.mark.parametrize("family", [L, tables.LaplaceTables(-3.0, 6, 72, 1, 16383)], ids=["latent", "spectral"])
def test_tables_skip_only_what_the_floor_hides(family):
    """Leaving out the CDF far from the centre gives bit-identical tables."""
    for t in range(0, family.count, 3):
        s, o = divmod(t, family.offsets)
        np.testing.assert_array_equal(family.probabilities(t), _direct_probabilities(
            -family.radius, family.radius, o / family.offsets, family.scale_of(s)))


@pytest.mark.parametrize("lo, hi", [(-5, 3), (2, 40), (100, 130), (-70, -60), (0, 0)])
def test_tables_of_any_alphabet_are_the_direct_ones(lo, hi):
    """The network weights' alphabets lo..hi need not hold the centre: the run of computed edges may be short,
    one-sided or empty."""
    for b in (0.05, 0.7, 3.0, 90.0):
        np.testing.assert_array_equal(tables.laplace_probabilities(lo, hi, 0.0, b),
                                      _direct_probabilities(lo, hi, 0.0, b))


def test_softround_spans_rounding_to_identity():
    """Soft rounding is rounding as t → 0 and the identity for large t, monotone in between, and fixes the
    integers."""
    from snfcodec.latent.train import softround
    x = torch.linspace(-3.4, 3.4, 681, dtype=torch.float64)
    away = (x - torch.floor(x) - 0.5).abs() > 0.05  # off the rounding boundaries
    np.testing.assert_array_equal(softround(x, 1e-3)[away].numpy(), torch.round(x)[away].numpy())
    np.testing.assert_allclose(softround(x, 50.0).numpy(), x.numpy(), atol=1e-4)
    for t in (0.1, 0.3):
        assert bool(torch.all(torch.diff(softround(x, t)) > 0))
        ints = torch.arange(-3.0, 4.0, dtype=torch.float64)
        np.testing.assert_allclose(softround(ints, t).numpy(), ints.numpy(), atol=1e-12)


@pytest.mark.parametrize("quantizer", ["noise", "softround"])
def test_training_stand_in_for_rounding(quantizer):
    """Uniform noise moves a latent by at most half a step, with the same spread at the start and end of the
    stage; the soft-rounded value is within a step of the rounded latent and its spread grows along the stage
    (Kumaraswamy a = 2, peaked, to a = 1, uniform). Both are unbiased."""
    from snfcodec.latent.train import TrainOptions, _soft
    torch.manual_seed(0)
    g = torch.linspace(-2.0, 2.0, 200_001, dtype=torch.float64)
    options = TrainOptions(steps=1, quantizer=quantizer)
    spreads = []
    for progress in (0.0, 1.0):
        y = _soft(g, progress, options)
        if quantizer == "noise":
            assert float((y - g).abs().max()) <= 0.5
        else:
            assert float((y - torch.round(g)).abs().max()) <= 1.0
        assert abs(float((y - g).mean())) < 0.01
        spreads.append(float((y - torch.round(g)).std()))
    if quantizer == "noise":
        assert spreads[0] == pytest.approx(spreads[1], rel=0.02)
    else:
        assert spreads[0] < 0.9 * spreads[1]


def test_noisy_soft_rounding_is_the_composition_with_its_gradient():
    """The training stand-in's hand-written derivative is autograd's through s_T(s_T(y) + n)."""
    from snfcodec.latent.train import _NoisySoftRound, softround
    gen = torch.Generator().manual_seed(1)
    y = (torch.randn(5000, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    n = torch.rand(5000, generator=gen, dtype=torch.float64) - 0.5
    for t in (0.1, 0.3, 1.0):
        want, got = softround(softround(y, t) + n, t), _NoisySoftRound.apply(y, n, t)
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(torch.autograd.grad(got.sum(), y)[0].numpy(),
                                   torch.autograd.grad(want.sum(), y)[0].numpy(), rtol=1e-9, atol=1e-12)


def test_last_stage_trains_the_networks_on_fixed_rounded_latents():
    """After the soft stage the latents are the decoder's (rounded) and stay fixed; the networks still learn."""
    from snfcodec.latent.field import LatentConfig, LatentField
    from snfcodec.latent.train import TrainOptions, train
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.uniform(0, 1, (16, 16, 3)).astype(np.float32))
    field = LatentField(16, 16, 3, LatentConfig(levels=3, width=8), (1.0, 1.0), torch.Generator().manual_seed(0))
    with torch.no_grad():
        for g in field.grids:
            g.copy_(torch.from_numpy(rng.normal(0, 2, g.shape)))
    latents = [g.detach().clone() for g in field.grids]
    weights = [p.detach().clone() for p in field.network_parameters()]
    train(field, target, TrainOptions(steps=5, noise_fraction=0.0, lmbda=1e-3))
    for before, after in zip(latents, field.grids):
        np.testing.assert_array_equal(after.detach().numpy(), before.numpy())
    assert all(not torch.equal(b, a) for b, a in zip(weights, field.network_parameters()))
    train(field, target, TrainOptions(steps=5, noise_fraction=1.0, lmbda=1e-3))  # the soft stage moves them
    assert not all(torch.equal(b, a.detach()) for b, a in zip(latents, field.grids))


def test_the_rate_controller_calibrates_once_against_the_exact_rate():
    from snfcodec.latent.context import pyramid_bits
    from snfcodec.latent.field import LatentConfig, LatentField
    from snfcodec.latent.train import TrainOptions, train
    target = torch.from_numpy(np.random.default_rng(0).uniform(0, 1, (16, 16, 3)).astype(np.float32))
    calls = []

    def measured(latent_factor, network_bits):
        def exact(rounded, lmbda):
            assert all(torch.equal(g, torch.round(g)) for g in rounded) and lmbda > 0
            calls.append(len(rounded))
            with torch.no_grad():
                return latent_factor * float(pyramid_bits(field.context, rounded)), network_bits
        return exact

    lambdas = []
    for exact in (None, measured(2.0, 0.0), measured(1.0, 2.0 * 256)):
        field = LatentField(16, 16, 3, LatentConfig(levels=3, width=8), (1.0, 1.0), torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        lambdas.append(train(field, target, TrainOptions(steps=40, target_bpp=4.0, exact_bits=exact)).lmbda)
    assert calls == [3, 3]  # once a fit, with every level
    assert lambdas[1] > lambdas[0]  # the doubled latent rate raised λ
    assert lambdas[2] > lambdas[0]  # so did networks measured at 2 bpp (the estimate: none)



def _fields(B, H, W, rng):
    from snfcodec.latent.field import LatentConfig, LatentField
    fields = [LatentField(H, W, 3, LatentConfig(levels=3, width=8), (1.0, 1.0), torch.Generator().manual_seed(b))
              for b in range(B)]
    with torch.no_grad():
        for f in fields:
            for g in f.grids:
                g.copy_(torch.from_numpy(rng.normal(0, 2, g.shape)))
    return fields


def test_a_batch_of_pyramids_gives_each_its_own_columns_bits_readings_and_synthesis():
    """The batched forms (a leading axis B) compute, for each entry, what the one-field forms compute."""
    from snfcodec.latent import bands, synthesis
    from snfcodec.latent.context import StackedContext, columns_bits, pyramid_columns
    rng = np.random.default_rng(0)
    H, W = 13, 18
    fields = _fields(3, H, W, rng)
    stacked = [torch.stack([f.grids[l] for f in fields]).detach().round() for l in range(3)]
    y, x0, x1 = pyramid_columns(stacked)
    stacked_context = StackedContext([torch.stack(ps) for ps in zip(*(f.context.parameters() for f in fields))])
    bits = columns_bits(stacked_context, (y, x0, x1))
    up = bands.upsampler(fields[0].shapes, H, W)
    rows = torch.arange(1, H, 2)
    read, read_rows = up(stacked), up(stacked, rows)
    out = synthesis.run([torch.stack(t) for t in zip(*(f.synthesis.tensors() for f in fields))], "sine",
                        read.reshape(3, H * W, -1))
    for b, f in enumerate(fields):
        own = [g[b] for g in stacked]
        for batched, single in zip((y[b], x0[b], x1[b]), pyramid_columns(own)):
            assert torch.equal(batched, single)
        assert float(bits[b].detach()) == pytest.approx(float(pyramid_bits(f.context, own).detach()), rel=1e-5)
        torch.testing.assert_close(read[b], up(own))
        torch.testing.assert_close(read_rows[b], up(own, rows))
        torch.testing.assert_close(out[b], f.synthesis(up(own).reshape(H * W, -1)))


def test_a_batched_fit_is_the_fits_of_its_fields(monkeypatch):
    """With the soft stage's noise fixed, training B fields together moves each as training it alone does, λ
    included (each field its own rate controller)."""
    from snfcodec.latent.train import TrainOptions, train, train_batch
    monkeypatch.setattr(torch, "rand_like", lambda g: torch.full_like(g, 0.3))
    rng = np.random.default_rng(1)
    targets = torch.from_numpy(rng.uniform(0, 1, (2, 16, 16, 3)).astype(np.float32))
    together, alone = _fields(2, 16, 16, np.random.default_rng(2)), _fields(2, 16, 16, np.random.default_rng(2))
    options = TrainOptions(steps=24, noise_fraction=0.75, target_bpp=3.0, row_stride=1, lr_latent=0.2)
    reports = train_batch(together, targets, options)
    for b in range(2):
        report = train(alone[b], targets[b], options)
        assert reports[b].lmbda == pytest.approx(report.lmbda, rel=1e-3)
        assert reports[b].psnr == pytest.approx(report.psnr, abs=1e-3)
        for p, q in zip(together[b].parameters(), alone[b].parameters()):
            torch.testing.assert_close(p, q, atol=2e-3, rtol=0)
    assert reports[0].lmbda != reports[1].lmbda  # different images, different λ


def test_short_runs_start_lambda_higher_above_1_bpp_only():
    """The fast effort's runs start λ higher between 1 and 3 bpp, where from the rule's λ their rate overshot."""
    from snfcodec.latent.train import SHORT_RUN_LAMBDA, SHORT_RUN_STEPS, RateControl, TrainOptions, initial_lambda

    def first(steps, bpp):
        return float(RateControl(TrainOptions(steps=steps, target_bpp=bpp), 64 * 64, None).lmbda[0])

    assert first(SHORT_RUN_STEPS, 2.0) == pytest.approx(SHORT_RUN_LAMBDA * initial_lambda(2.0))
    assert first(SHORT_RUN_STEPS, 3.0) == pytest.approx(SHORT_RUN_LAMBDA * initial_lambda(3.0))
    for steps, bpp in ((SHORT_RUN_STEPS + 1, 2.0), (SHORT_RUN_STEPS, 1.0), (SHORT_RUN_STEPS, 4.0)):
        assert first(steps, bpp) == pytest.approx(initial_lambda(bpp))
