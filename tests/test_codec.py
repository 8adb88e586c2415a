import numpy as np
import pytest

import snfcodec
from snfcodec import codec, container
from snfcodec.errors import SnfInputError
from snfcodec.field import FieldConfig


def test_encode_meets_the_rate_and_reports_honest_numbers(photo32):
    result = snfcodec.encode(photo32, bpp=6.0, steps=60)
    pixels = 32 * 32
    assert result.bpp == 8 * len(result.data) / pixels
    assert 0.95 * 6.0 <= result.bpp <= 6.0
    decoded = snfcodec.decode(result.data)
    assert decoded.shape == photo32.shape and decoded.dtype == np.uint8
    assert result.psnr == pytest.approx(codec.psnr_uint8(decoded, photo32))
    assert result.psnr > 18
    assert result.steps == 60 and result.qat_steps > 0


def test_more_bits_more_quality(photo32):
    low = snfcodec.encode(photo32, bpp=3.0, steps=80)
    high = snfcodec.encode(photo32, bpp=12.0, steps=80)
    assert high.psnr > low.psnr + 1


def test_encode_is_reproducible_and_seed_matters(photo32):
    a = snfcodec.encode(photo32, bpp=4.0, steps=20, seed=7).data
    b = snfcodec.encode(photo32, bpp=4.0, steps=20, seed=7).data
    c = snfcodec.encode(photo32, bpp=4.0, steps=20, seed=8).data
    assert a == b and a != c


def test_decode_is_deterministic(tiny_snf):
    assert snfcodec.decode(tiny_snf, scale=2.5).tobytes() == snfcodec.decode(tiny_snf, scale=2.5).tobytes()


def test_decode_sizes_scales_and_crops(tiny_snf):
    full = snfcodec.decode(tiny_snf)
    assert snfcodec.decode(tiny_snf, scale=2).shape == (64, 64, 3)
    assert snfcodec.decode(tiny_snf, scale=1.37).shape == (44, 44, 3)
    assert snfcodec.decode(tiny_snf, size=(50, 20)).shape == (20, 50, 3)
    crop = snfcodec.decode(tiny_snf, crop=(8, 4, 16, 12))
    np.testing.assert_array_equal(crop, full[4:16, 8:24])  # a 1x crop samples the same pixel centres
    assert snfcodec.decode(tiny_snf, crop=(8, 4, 16, 12), scale=2).shape == (24, 32, 3)


def test_upsampled_decode_agrees_with_the_original_grid(tiny_snf):
    # At 3x, every third output sample (offset 1) sits on an original pixel centre.
    full = snfcodec.decode(tiny_snf).astype(int)
    big = snfcodec.decode(tiny_snf, scale=3).astype(int)
    assert np.abs(big[1::3, 1::3] - full).max() <= 1


def test_grayscale_and_alpha_images_keep_their_channels(photo32):
    gray = photo32[:, :, :1]
    rgba = np.concatenate([photo32, np.full((32, 32, 1), 200, np.uint8)], axis=2)
    for img in (gray, rgba):
        out = snfcodec.decode(snfcodec.encode(img, bpp=8.0, steps=30).data)
        assert out.shape == img.shape
    assert snfcodec.info(snfcodec.encode(rgba, bpp=8.0, steps=5).data)["layout"] == "RGBA"


def test_bad_requests_are_input_errors(photo32, tiny_snf):
    with pytest.raises(SnfInputError, match="too low"):
        snfcodec.encode(photo32, bpp=0.01, steps=5)
    with pytest.raises(SnfInputError):
        snfcodec.encode(photo32, bpp=-1)
    with pytest.raises(SnfInputError):
        snfcodec.encode(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(SnfInputError, match="effort"):
        snfcodec.encode(photo32, effort="extreme")
    with pytest.raises(SnfInputError, match="inside"):
        snfcodec.decode(tiny_snf, crop=(20, 20, 20, 20))
    with pytest.raises(SnfInputError):
        snfcodec.decode(tiny_snf, scale=2, size=(3, 3))


def test_output_limit_is_enforced_before_allocating(tiny_snf):
    with pytest.raises(snfcodec.SnfFormatError, match="limit"):
        snfcodec.decode(tiny_snf, size=(100_000, 100_000))


def test_psnr_target_stops_fitting_early(photo32):
    result = snfcodec.encode(photo32, bpp=8.0, steps=500, psnr=20.0)
    assert result.steps < 500 and result.fit_psnr >= 20.0


def test_alpha_one_is_plain_siren_and_alpha_is_recorded(photo32):
    result = snfcodec.encode(photo32, bpp=8.0, steps=5, alpha=1.0)
    assert result.alpha == (1.0, 1.0)
    assert snfcodec.info(snfcodec.encode(photo32, bpp=8.0, steps=5, alpha=2.0).data)["field"]["alpha_first"] == 2.0


def test_auto_alpha_narrows_the_first_layer_of_narrow_image_fields_only(photo32):
    from snfcodec.presets import auto_alpha

    firsts = [auto_alpha(FieldConfig(2, 3, w))[0] for w in (8, 22, 27, 33, 64)]
    assert firsts[0] == firsts[1] == 0.5 and firsts[-2] == firsts[-1] == 1.0
    assert 0.5 < firsts[2] < 1.0
    assert auto_alpha(FieldConfig(1, 1, 16)) == (4.0, 1.0)
    result = snfcodec.encode(photo32, bpp=8.0, steps=5)
    assert result.alpha == auto_alpha(FieldConfig(2, 3, snfcodec.info(result.data)["field"]["width"]))


def test_tile_option_sets_the_tiling_and_rejects_nonsense(photo32):
    tiled = snfcodec.info(snfcodec.encode(photo32, bpp=8.0, steps=5, tile=16).data)["tiling"]
    assert tiled["tile"] == [16, 16] and tiled["tiles"] == 4
    whole = snfcodec.info(snfcodec.encode(photo32, bpp=8.0, steps=5, tile=1000).data)["tiling"]
    assert whole["tiles"] == 1
    for bad in (0, 4, 2.5, "big"):
        with pytest.raises(SnfInputError, match="tile"):
            snfcodec.encode(photo32, bpp=8.0, steps=5, tile=bad)
    with pytest.raises(SnfInputError, match="tile applies to images"):
        snfcodec.encode(np.zeros((1000, 1), np.float32), sample_rate=8000, steps=5, tile=16)


def test_default_tiles_grow_where_64_pixel_tiles_would_leave_too_narrow_fields():
    from snfcodec import presets
    from snfcodec.codec import image_architecture

    low, high = image_architecture(512, 768, 3, 0.25), image_architecture(512, 768, 3, 0.5)
    assert low.tiling.tile == (128, 128) and low.field.width >= presets.MIN_IMAGE_WIDTH
    assert image_architecture(512, 768, 3, 0.25, tile=64).field.width < presets.MIN_IMAGE_WIDTH
    assert high.tiling.tile == (64, 64) and high.field.width >= presets.MIN_IMAGE_WIDTH
    # A rate too low for any field on 64-pixel tiles still encodes on bigger ones, and the error below the
    # lowest workable rate names a rate that works.
    with pytest.raises(SnfInputError, match="rate is too low"):
        image_architecture(512, 768, 3, 0.08, tile=64)
    assert image_architecture(512, 768, 3, 0.08).tiling.tile == (128, 128)
    with pytest.raises(SnfInputError, match=r"at least ([0-9.]+) bpp") as info:
        image_architecture(512, 768, 3, 0.01)
    hint = float(info.value.args[0].rsplit("at least ", 1)[1].split()[0])
    assert image_architecture(512, 768, 3, hint * 1.01).field.width >= presets.MIN_WIDTH


def test_images_below_two_bpp_are_sized_for_fewer_bits_per_parameter():
    from snfcodec import presets
    from snfcodec.codec import image_architecture

    bits = [presets.image_bits_per_param(r) for r in (0.25, 1.0, 1.41, 2.0, 4.0)]
    assert bits[0] == bits[1] == 5.5 and bits[1] < bits[2] < bits[3] == bits[4] == presets.BITS_PER_PARAM
    one = image_architecture(512, 768, 3, 1.0)
    sized_for_default = presets.image_architecture(512, 768, 3, int(512 * 768 / 8 * 8 / presets.BITS_PER_PARAM))
    assert one.tiling == sized_for_default.tiling and one.field.width > sized_for_default.field.width


def test_audio_rate_too_low_names_the_lowest_rate_that_works():
    from snfcodec.codec import EncodeOptions, prepare_audio

    sound = np.zeros((8000, 1), np.float32)
    with pytest.raises(SnfInputError, match=r"at least ([0-9.]+) kbps") as info:
        prepare_audio(sound, 8000, EncodeOptions(kbps=0.01))
    hint = float(info.value.args[0].rsplit("at least ", 1)[1].split()[0])
    # The lowest rate is one field over the whole recording, not the shortest segments' many fields.
    assert prepare_audio(sound, 8000, EncodeOptions(kbps=hint * 1.01)).arch.tiling.num_tiles == 1


def test_narrow_image_fields_get_sub_grid_steps_at_a_higher_rate():
    from snfcodec import presets

    narrow, wide, audio = FieldConfig(2, 3, 15), FieldConfig(2, 3, 33), FieldConfig(1, 1, 15)
    assert [presets.fit_stride(c) for c in (narrow, wide, audio)] == [2, 1, 1]
    assert presets.auto_lr(narrow, (0.5, 1.0)) > presets.auto_lr(wide, (1.0, 1.0)) == presets.auto_lr(audio, (4, 1))
    assert presets.effort_steps(audio) == presets.EFFORT_STEPS[1]
    assert presets.effort_steps(wide) == presets.EFFORT_STEPS[2]
    steps = presets.effort_steps(narrow)
    assert steps["fast"] < steps["default"] < steps["slow"]


def test_every_field_offers_every_effort_in_rising_budgets():
    """The CLI's one --effort choice means a step budget for every field, more steps the higher the effort."""
    from snfcodec import presets

    tables = [presets.effort_steps(FieldConfig(d, 3, w)) for d, w in ((1, 15), (2, 15), (2, 33))]
    tables += [presets.LATENT_STEPS, {k: sum(v) for k, v in presets.SPECTRAL_STEPS.items()}]
    for table in tables:
        assert tuple(table) == presets.EFFORTS
        budgets = [table[e] for e in presets.EFFORTS]
        assert budgets == sorted(budgets) and len(set(budgets)) == len(budgets)


def test_psnr_is_summed_in_bands_without_changing_its_value(monkeypatch):
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0, 256, (61, 47, 3), dtype=np.uint8) for _ in range(2))
    x, y = (rng.uniform(-1, 1, (999, 2)).astype(np.float32) for _ in range(2))
    direct = 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2))
    direct_float = 10 * np.log10(4.0 / np.mean((x.astype(np.float64) - y) ** 2))
    monkeypatch.setattr(codec, "PSNR_BAND", 100)  # 61 bands of one row; 20 of 50 samples
    assert codec.psnr_uint8(a, b) == pytest.approx(direct, abs=1e-12)
    assert codec.psnr_float(x, y) == pytest.approx(direct_float, abs=1e-9)
    assert codec.psnr_uint8(a, a) == float("inf")
    with pytest.raises(ValueError):
        codec.psnr_uint8(a, b[:-1])


def test_an_input_too_large_for_the_format_is_refused_before_fitting(monkeypatch):
    from snfcodec import container

    monkeypatch.setattr(container, "MAX_PARAMS", 1000)
    monkeypatch.setattr(codec, "fit", lambda *a, **k: pytest.fail("fitted an input the format cannot hold"))
    with pytest.raises(SnfInputError, match="too large for one .snf file.*lower the rate or split"):
        snfcodec.encode(np.zeros((4000, 2), np.float32), sample_rate=8000, kbps=64, steps=5, field="tiles")


@pytest.mark.parametrize("shape, bpp, options, expected", [
    ((512, 768, 3), 0.5, {}, "latent"),
    ((512, 768, 3), 1.0, {"effort": "fast"}, "latent"),
    ((512, 768, 3), 2.0, {}, "latent"),
    ((256, 256, 3), 2.0, {}, "latent"),
    ((128, 128, 3), 2.0, {"effort": "fast"}, "latent"),  # its networks a third of the file
    ((512, 768, 3), 4.0, {}, "latent"),
    ((512, 768, 3), 4.5, {}, "tiles"),  # above the rates where it measured better
    ((256, 256, 3), 1.0, {}, "latent"),
    ((128, 128, 3), 1.0, {}, "tiles"),  # its networks would be most of the file
    ((3000, 4000, 3), 0.5, {}, "latent"),  # 12 MP: band by band
    ((4096, 8192, 3), 0.5, {}, "tiles"),  # above the sizes it was measured at
    ((512, 768, 3), 0.5, {"psnr": 30.0}, "tiles"),  # options only the tiled field has
    ((512, 768, 3), 0.5, {"tile": 64}, "tiles"),
    ((512, 768, 3), 0.5, {"prior": "none"}, "tiles"),
    ((512, 768, 3), 0.5, {"lr": 1e-3}, "tiles"),
    ((256, 256, 3), 2.0, {"lmbda": 1e-3}, "latent"),  # only the latent field takes λ
    ((512, 768, 3), 0.5, {"field": "tiles"}, "tiles"),
    ((128, 128, 3), 2.0, {"field": "latent"}, "latent"),
])
def test_auto_picks_the_field_measured_better_unless_an_option_names_one(shape, bpp, options, expected):
    assert codec.image_field(codec.EncodeOptions(bpp=bpp, **options), bpp, *shape) == expected


def test_auto_gives_a_large_enough_image_at_a_low_rate_the_latent_field():
    photo = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    latent = snfcodec.encode(photo, bpp=1.0, steps=4)
    assert container.version_of(latent.data) == 3
    tiled = snfcodec.encode(photo, bpp=1.0, steps=4, psnr=10.0)
    assert container.version_of(tiled.data) in (1, 2)
