import numpy as np
import pytest
import torch

from snfcodec.grid import Regular, SamplePlan, TileLayout, pixel_centres, pixel_grid, render, resample_axis


@pytest.mark.parametrize("layout", [
    TileLayout((37, 50), (16, 16), (4, 4)),
    TileLayout((37, 50), (16, 24), (0, 3)),
    TileLayout((100,), (32,), (8,)),
])
def test_blend_weights_form_a_partition_of_unity(layout):
    axes = [resample_axis(0, n, 3 * n + 1) for n in layout.shape]
    plan = SamplePlan(layout, axes)
    ones = render(lambda coords, tiles: torch.ones(coords.shape[0], coords.shape[1], 1, dtype=coords.dtype),
                  plan, 1, max_points=500)
    np.testing.assert_allclose(ones.numpy(), 1.0, atol=1e-12)


def test_render_is_continuous_across_tile_boundaries():
    # Tile-dependent constant fields: blended output must change smoothly, never jump by the full step.
    layout = TileLayout((64,), (16,), (4,))
    pos = resample_axis(0, 64, 640)
    plan = SamplePlan(layout, [pos])
    out = render(lambda coords, tiles: tiles.to(coords.dtype).reshape(-1, 1, 1).expand(-1, coords.shape[1], 1),
                 plan, 1).numpy()[:, 0]
    assert out[0] == 0 and out[-1] == 3
    assert np.abs(np.diff(out)).max() < 0.1  # a hard cut would jump by 1


def test_local_coordinates_span_the_tile_core():
    layout = TileLayout((64, 64), (32, 32), (4, 4))
    plan = SamplePlan(layout, [pixel_centres(64)] * 2)
    coords, weights, flat = plan.gather(np.array([3]))  # tile (1, 1)
    inside = weights[0, :, 0] == 1
    core = coords[0][inside]
    assert core.min() > -1 and core.max() < 1
    assert coords[0].min() < -1  # the margin reaches beyond the core
    assert flat.max() < 64 * 64


def test_crop_grid_only_activates_touching_tiles():
    layout = TileLayout((128, 128), (32, 32), (4, 4))
    plan = SamplePlan(layout, [resample_axis(0, 20, 40), resample_axis(90, 20, 40)])
    assert set(plan.active_tiles().tolist()) == {2, 3}


def test_invalid_tiling_is_rejected():
    with pytest.raises(ValueError):
        TileLayout((10, 10), (4, 4), (3, 3))


def test_a_regular_axis_is_its_array_bit_for_bit_sliced_and_searched():
    cases = [(pixel_grid(1000), pixel_centres(1000)),
             (Regular(997, a=0.5, step=37.25 / 997, b=3.5), resample_axis(3.5, 37.25, 997)),
             (Regular(661, a=0.0, step=44100 / 16000, b=0.5), np.arange(661, dtype=np.float64) * (44100 / 16000) + 0.5)]
    rng = np.random.default_rng(0)
    for regular, array in cases:
        assert len(regular) == len(array) and np.array_equal(np.asarray(regular), array)
        for key in (slice(3, 500), slice(1, None, 2), slice(0, None, 3), slice(7, 8), slice(900, 20)):
            part = regular[key]
            assert np.array_equal(np.asarray(part), array[key])
            probes = np.concatenate([array[key][:50], rng.uniform(-5, array[-1] + 5, 200), [-np.inf, np.inf]])
            for side in ("left", "right"):
                assert np.array_equal(part.searchsorted(probes, side), np.searchsorted(array[key], probes, side))
    layout = TileLayout((1000,), (64,), (8,))
    a, b = SamplePlan(layout, [pixel_grid(1000)]), SamplePlan(layout, [pixel_centres(1000)])
    tiles = a.active_tiles()
    assert np.array_equal(tiles, b.active_tiles())
    for x, y in zip(a.gather(tiles), b.gather(tiles)):
        assert torch.equal(x, y)
