import numpy as np
import pytest
import torch

from snfcodec.field import BatchedSiren, FieldConfig
from snfcodec.fit import FitOptions, Problem, fit
from snfcodec.grid import SamplePlan, TileLayout, pixel_centres


def _problem(photo32, gradient=0.0):
    layout = TileLayout((32, 32), (16, 16), (2, 2))
    plan = SamplePlan(layout, [pixel_centres(32)] * 2)
    target = torch.from_numpy(photo32.reshape(-1, 3).astype(np.float32) / 127.5 - 1)
    return layout, Problem(plan, target, torch.device("cpu"), gradient)


def _model(layout, seed=0):
    return BatchedSiren(FieldConfig(2, 3, 16, 3), layout.num_tiles, torch.Generator().manual_seed(seed))


def test_fit_improves_psnr_and_keeps_the_best_state(photo32):
    layout, problem = _problem(photo32)
    model = _model(layout)
    report = fit(model, problem, FitOptions(steps=60, lr=3e-3))
    first = report.curve[0][1]
    assert report.steps == 60 and len(report.curve) == 61
    assert report.psnr > first + 5
    assert report.psnr == max(p for _, p in report.curve)
    with torch.no_grad():
        now = 10 * np.log10(4 / float(problem.mse(model)))
    assert now == report.psnr


def test_psnr_target_stops_at_the_first_step_that_reaches_it(photo32):
    layout, problem = _problem(photo32)
    full = fit(_model(layout), problem, FitOptions(steps=80, lr=3e-3))
    target = full.curve[40][1] - 0.01
    first = next(s for s, p in full.curve if p >= target)
    stopped = fit(_model(layout), problem, FitOptions(steps=80, lr=3e-3, psnr=target))
    assert stopped.reached and stopped.steps == first


def test_same_seed_same_result(photo32):
    layout, problem = _problem(photo32)
    a = fit(_model(layout, 3), problem, FitOptions(steps=20, lr=3e-3))
    b = fit(_model(layout, 3), problem, FitOptions(steps=20, lr=3e-3))
    assert a.curve == b.curve


def test_time_budget_stops_early(photo32):
    layout, problem = _problem(photo32)
    report = fit(_model(layout), problem, FitOptions(steps=10_000, lr=3e-3, max_seconds=0.2))
    assert report.steps < 10_000


def test_gradient_term_adds_the_mse_of_neighbour_differences_of_the_error(photo32):
    layout, plain = _problem(photo32)
    _, weighted = _problem(photo32, gradient=0.7)
    model = _model(layout)
    with torch.no_grad():
        loss0, mse0 = plain.objective(model)
        loss, mse = weighted.objective(model)
        error = (weighted.render(model) - weighted.target).numpy().astype(np.float64).reshape(32, 32, 3)
    expected = np.mean(np.diff(error, axis=0) ** 2) + np.mean(np.diff(error, axis=1) ** 2)
    assert float(loss0) == float(mse0) == float(mse)
    assert float(loss) == pytest.approx(float(mse) + 0.7 * expected, rel=1e-5)
    assert float(loss) > float(mse)


def test_fit_with_a_gradient_term_reports_the_psnr_of_the_mse(photo32):
    layout, problem = _problem(photo32, gradient=1.0)
    model = _model(layout)
    report = fit(model, problem, FitOptions(steps=40, lr=3e-3))
    with torch.no_grad():
        now = 10 * np.log10(4 / float(problem.mse(model)))
    assert now == pytest.approx(report.psnr) and report.psnr > report.curve[0][1] + 3


def test_gradient_term_works_on_one_dimensional_signals():
    layout = TileLayout((1000,), (250,), (16,))
    plan = SamplePlan(layout, [pixel_centres(1000)])
    t = np.arange(1000) / 1000
    target = torch.from_numpy(np.sin(2 * np.pi * 7 * t).astype(np.float32)[:, None] * 0.5)
    problem = Problem(plan, target, torch.device("cpu"), gradient=16.0)
    model = BatchedSiren(FieldConfig(1, 1, 8, 3), layout.num_tiles, torch.Generator().manual_seed(0))
    with torch.no_grad():
        loss, mse = problem.objective(model)
        error = (problem.render(model) - target).numpy().astype(np.float64)[:, 0]
    assert float(loss) == pytest.approx(float(mse) + 16.0 * np.mean(np.diff(error) ** 2), rel=1e-5)


def test_a_single_tile_renders_without_blending_and_identically(photo32):
    layout = TileLayout((32, 32), (32, 32), (4, 4))
    plan = SamplePlan(layout, [pixel_centres(32)] * 2)
    target = torch.from_numpy(photo32.reshape(-1, 3).astype(np.float32) / 127.5 - 1)
    problem = Problem(plan, torch.stack([target, target.flip(0)]), torch.device("cpu"), 1.0)
    assert problem.one_tile
    model = BatchedSiren.concatenate([_model(layout, 1), _model(layout, 2)])
    with torch.no_grad():
        shortcut = problem.objective(model)
        problem.one_tile = False  # the general path: weights and index_add
        general = problem.objective(model)
    for a, b in zip(shortcut, general):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    _, tiled = _problem(photo32)
    assert not tiled.one_tile


def test_signals_fitted_together_each_get_their_own_loss_and_best_state(photo32):
    layout, one = _problem(photo32)
    other = np.ascontiguousarray(photo32[::-1])
    _, two = _problem(other)
    plan = SamplePlan(layout, [pixel_centres(32)] * 2)
    both = Problem(plan, torch.stack([one.target, two.target]), torch.device("cpu"))
    model = BatchedSiren.concatenate([_model(layout, 1), _model(layout, 2)])
    with torch.no_grad():
        mse = both.mse(model)
        torch.testing.assert_close(mse[0], one.mse(_model(layout, 1))[0])
        torch.testing.assert_close(mse[1], two.mse(_model(layout, 2))[0])
    report = fit(model, both, FitOptions(steps=30, lr=3e-3))
    assert len(report.psnrs) == 2 and report.psnr == pytest.approx(sum(report.psnrs) / 2)
    with torch.no_grad():
        now = [10 * np.log10(4 / float(m)) for m in both.mse(model)]
    assert now == pytest.approx(report.psnrs, abs=1e-9)


def test_the_separable_first_layer_renders_the_same_field(photo32):
    layout, problem = _problem(photo32, gradient=1.0)  # 2x2 tiles with cross-fades: padded tile grids
    plan = SamplePlan(layout, [pixel_centres(32)] * 2)
    # The direct form: one sine per point in the first layer.
    direct_problem = Problem(plan, problem.target, torch.device("cpu"), 1.0, separable=False)
    assert problem.axes is not None and problem.coords is None and direct_problem.axes is None
    model = _model(layout, 4)
    with torch.no_grad():
        grid = problem.render(model)
        losses = problem.objective(model)
        direct = direct_problem.render(model)
        direct_losses = direct_problem.objective(model)
    torch.testing.assert_close(grid, direct, rtol=0, atol=2e-3)
    for a, b in zip(losses, direct_losses):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=0)


def _gradients(model, problem, tensors=None):
    model.zero_grad(set_to_none=True)
    loss, mse = problem.backward(model, tensors)
    return loss, mse, [p.grad.clone() for p in model.tensors()]


@pytest.mark.parametrize("separable", [True, False])
@pytest.mark.parametrize("quantized", [False, True])
def test_chunked_backward_gives_the_full_batch_gradient(photo32, separable, quantized):
    from snfcodec.quantize import fake_quantize
    layout = TileLayout((32, 32), (16, 16), (2, 2))
    plan = SamplePlan(layout, [pixel_centres(32)] * 2)
    target = torch.from_numpy(photo32.reshape(-1, 3).astype(np.float32) / 127.5 - 1)
    targets = torch.stack([target, target.flip(0)])
    whole = Problem(plan, targets, torch.device("cpu"), 1.0, separable=separable)
    # Every problem chunked, one field per chunk (18×18 samples: 16 and a 2-sample margin): 2 signals × 4 tiles.
    chunked = Problem(plan, targets, torch.device("cpu"), 1.0, separable=separable, chunk_work=0,
                      chunk_size=20 * 20 * 16)
    assert len(whole.chunks(16)) == 1 and len(chunked.chunks(16)) == 8
    model = BatchedSiren.concatenate([_model(layout, 1), _model(layout, 2)])
    tensors = (lambda: [fake_quantize(p, 0.01) for p in model.tensors()]) if quantized else (lambda: None)
    loss, mse, grads = _gradients(model, whole, tensors())
    c_loss, c_mse, c_grads = _gradients(model, chunked, tensors())
    torch.testing.assert_close(c_loss, loss, rtol=1e-5, atol=0)
    torch.testing.assert_close(c_mse, mse, rtol=1e-5, atol=0)
    for a, b in zip(c_grads, grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert max(float(g.abs().max()) for g in grads) > 1e-3  # a gradient worth comparing


def test_chunked_audio_and_single_tile_signals_get_the_full_batch_gradient():
    rng = np.random.default_rng(0)
    layout = TileLayout((300,), (100,), (10,))  # 1-D segments: the direct form
    plan = SamplePlan(layout, [pixel_centres(300)])
    target = torch.from_numpy(rng.uniform(-1, 1, (3, 300, 2)).astype(np.float32))
    config = FieldConfig(1, 2, 8, 3)
    model = BatchedSiren.concatenate([BatchedSiren(config, 3, torch.Generator().manual_seed(s)) for s in range(3)])
    whole = Problem(plan, target, torch.device("cpu"), 16.0)
    chunked = Problem(plan, target, torch.device("cpu"), 16.0, chunk_work=0, chunk_size=120 * 8 * 2)
    assert len(chunked.chunks(8)) == 5
    for (a, b) in zip(_gradients(model, whole)[2], _gradients(model, chunked)[2]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    # Three signals of one field each (the shortcut without blending), split across chunks.
    one = SamplePlan(TileLayout((300,), (300,), (0,)), [pixel_centres(300)])
    model = BatchedSiren.concatenate([BatchedSiren(config, 1, torch.Generator().manual_seed(s)) for s in range(3)])
    whole, chunked = Problem(one, target, torch.device("cpu")), Problem(one, target, torch.device("cpu"),
                                                                          chunk_work=0, chunk_size=300 * 8)
    assert whole.one_tile and len(chunked.chunks(8)) == 3
    for (a, b) in zip(_gradients(model, whole)[2], _gradients(model, chunked)[2]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_a_chunked_fit_follows_the_full_batch_fit(photo32):
    layout, whole = _problem(photo32, gradient=1.0)
    plan = SamplePlan(layout, [pixel_centres(32)] * 2)
    chunked = Problem(plan, whole.target, torch.device("cpu"), 1.0, chunk_work=0, chunk_size=20 * 20 * 16)
    a = fit(_model(layout, 5), whole, FitOptions(steps=30, lr=3e-3))
    b = fit(_model(layout, 5), chunked, FitOptions(steps=30, lr=3e-3))
    assert b.psnr == pytest.approx(a.psnr, abs=0.01) and b.psnr > a.curve[0][1] + 3


def test_subgrids_are_the_full_problem_at_every_stride_th_sample(photo32):
    layout, problem = _problem(photo32, gradient=1.0)
    subs = problem.subgrids(2)
    assert len(subs) == 4 and problem.subgrids(1) == [] and problem.subgrids(17) == []
    model = _model(layout, 5)
    with torch.no_grad():
        full = problem.render(model).reshape(32, 32, 3)
        target = problem.target.reshape(32, 32, 3)
        for sub, (py, px) in zip(subs, [(0, 0), (0, 1), (1, 0), (1, 1)]):
            assert sub.shape == (16, 16)
            torch.testing.assert_close(sub.target.reshape(16, 16, 3), target[py::2, px::2], rtol=0, atol=0)
            torch.testing.assert_close(sub.render(model).reshape(16, 16, 3), full[py::2, px::2])


def test_a_strided_fit_keeps_and_reports_a_state_judged_on_the_full_grid(photo32):
    layout, problem = _problem(photo32, gradient=1.0)
    model = _model(layout)
    options = FitOptions(steps=60, lr=5e-3, stride=2, full_fraction=0.25, seed=1)
    report = fit(model, problem, options)
    with torch.no_grad():
        now = 10 * np.log10(4 / float(problem.mse(model)))
    assert now == pytest.approx(report.psnr, abs=1e-9)
    assert report.psnr > report.curve[0][1] + 5
    again = fit(_model(layout), problem, options)
    assert again.curve == report.curve
    other = fit(_model(layout), problem, FitOptions(steps=60, lr=5e-3, stride=2, full_fraction=0.25, seed=2))
    assert other.curve != report.curve  # the seed draws the phases


def test_strided_stops_are_confirmed_on_the_full_grid(photo32):
    layout, problem = _problem(photo32)
    report = fit(_model(layout), problem, FitOptions(steps=10_000, lr=5e-3, stride=2, max_seconds=0.2))
    assert report.steps < 10_000 and report.psnr > -np.inf  # the state left was evaluated on the full grid
    target = fit(_model(layout), problem, FitOptions(steps=80, lr=5e-3)).psnr - 1.0
    stopped = fit(_model(layout), problem, FitOptions(steps=400, lr=5e-3, stride=2, psnr=target))
    assert stopped.reached and stopped.steps < 400 and stopped.psnr >= target


def test_a_long_one_dimensional_signal_is_streamed_with_the_full_batch_gradient():
    rng = np.random.default_rng(2)
    layout = TileLayout((2400,), (50,), (8,))  # 48 tiles of 66 points
    plan = SamplePlan(layout, [pixel_centres(2400)])
    config = FieldConfig(1, 2, 8, 3)
    for G in (1, 3):
        target = torch.from_numpy(rng.uniform(-1, 1, (G, 2400, 2)).astype(np.float32))
        model = BatchedSiren.concatenate([BatchedSiren(config, 48, torch.Generator().manual_seed(s))
                                          for s in range(G)])
        whole = Problem(plan, target, torch.device("cpu"), 16.0)
        streamed = Problem(plan, target, torch.device("cpu"), 16.0, chunk_size=100 * 8)
        assert streamed.streamed and not whole.streamed and streamed.flat is None
        windows = streamed.windows(8)  # at least 8 tiles' worth (528 samples) each: 5 per signal
        assert len(windows) == 5 * G and all(w[1] == w[0] + 1 for w in windows)
        a, b = _gradients(model, whole), _gradients(model, streamed)
        for x, y in zip(a[:2], b[:2]):
            torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-7)
        for x, y in zip(a[2], b[2]):
            torch.testing.assert_close(y, x, rtol=1e-4, atol=1e-6)
        with torch.no_grad():
            torch.testing.assert_close(streamed.render(model), whole.render(model))
            torch.testing.assert_close(streamed.mse(model), whole.mse(model))
    # Signals shorter than a window are taken whole, several to a window.
    plan = SamplePlan(TileLayout((2400,), (50,), (25,)), [pixel_centres(2400)])  # 48 tiles of 100 points
    whole = Problem(plan, target, torch.device("cpu"), 16.0)
    grouped = Problem(plan, target, torch.device("cpu"), 16.0, chunk_size=10_000)
    assert grouped.streamed and grouped.windows(1) == [(0, 2, 0, 2400, 0, 48), (2, 3, 0, 2400, 0, 48)]
    for x, y in zip(_gradients(model, whole)[2], _gradients(model, grouped)[2]):
        torch.testing.assert_close(y, x, rtol=1e-4, atol=1e-6)


def test_a_streamed_signal_keeps_no_copy_of_itself():
    target = torch.rand(5000, 2) * 2 - 1
    problem = Problem(SamplePlan(TileLayout((5000,), (100,), (8,)), [pixel_centres(5000)]), target,
                      torch.device("cpu"), chunk_size=1000)
    assert problem.streamed and problem.target.data_ptr() == target.data_ptr()
