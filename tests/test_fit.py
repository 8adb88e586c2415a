import numpy as np
import torch

from snfcodec.field import BatchedSiren, FieldConfig
from snfcodec.fit import FitOptions, Problem, fit
from snfcodec.grid import SamplePlan, TileLayout, pixel_centres


def _problem(photo32):
    layout = TileLayout((32, 32), (16, 16), (2, 2))
    plan = SamplePlan(layout, [pixel_centres(32)] * 2)
    target = torch.from_numpy(photo32.reshape(-1, 3).astype(np.float32) / 127.5 - 1)
    return layout, Problem(plan, target, torch.device("cpu"))


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
