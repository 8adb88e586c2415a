import json
import math
import os

import numpy as np
import pytest
from PIL import Image

from snfcodec.eval import rd
from snfcodec.eval.baselines import JPEG, MP3, OPUS, align
from snfcodec.eval.crops import GAP
from snfcodec.eval.metrics import bd_rate, ms_ssim, psnr_uint8


def test_bd_rate_of_a_uniformly_cheaper_codec():
    # B needs exactly 80 % of A's rate at every quality: BD-rate is -20 %, whatever the curve's shape.
    q = np.array([28.0, 31.0, 34.0, 37.0, 40.0])
    rate_a = np.exp(0.2 * q) / 100
    assert bd_rate(rate_a, q, 0.8 * rate_a, q) == pytest.approx(-20.0, abs=1e-6)
    assert bd_rate(rate_a, q, 1.5 * rate_a, q) == pytest.approx(50.0, abs=1e-6)
    # Three points (the --quick sweep) still give the exact answer for a log-quadratic curve.
    assert bd_rate(rate_a, q, 0.8 * rate_a[:3], q[:3]) == pytest.approx(-20.0, abs=1e-6)


def test_bd_rate_without_overlap_is_nan():
    assert math.isnan(bd_rate([1, 2, 3, 4], [20, 21, 22, 23], [1, 2, 3, 4], [30, 31, 32, 33]))


def test_ms_ssim_falls_back_to_ssim_for_small_images(photo32):
    value, name = ms_ssim(photo32, photo32)
    assert name == "ssim" and value == pytest.approx(1.0)
    big = np.repeat(np.repeat(photo32, 6, axis=0), 6, axis=1)
    noisy = np.clip(big.astype(int) + np.random.default_rng(0).integers(-20, 20, big.shape), 0, 255).astype(np.uint8)
    value, name = ms_ssim(noisy, big)
    assert name == "ms_ssim" and 0.5 < value < 1.0


def test_baselines_round_trip(photo32):
    data = JPEG.encode(photo32, 90)
    assert psnr_uint8(JPEG.decode(data, photo32), photo32) > 30
    t = np.arange(8000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t))[:, None].astype(np.float32)
    y = MP3.decode(MP3.encode(x, 64, 16000), x)
    assert y.shape == x.shape and 10 * np.log10(4 / np.mean((y - x) ** 2)) > 30


def test_opus_at_16_khz_is_measured_at_16_khz():
    """Opus decoders always give 48 kHz; the baseline resamples to the input's rate before comparing."""
    t = np.arange(16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t))[:, None].astype(np.float32)
    y = OPUS.decode(OPUS.encode(x, 32, 16000), x, 16000)
    assert y.shape == x.shape and 10 * np.log10(4 / np.mean((y - x) ** 2)) > 30


def test_align_finds_a_known_delay():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 1)).astype(np.float32)
    delayed = np.concatenate([np.zeros((123, 1), np.float32), x])
    np.testing.assert_array_equal(align(delayed, x), x)


def test_crops_show_the_same_region_from_every_codec_near_the_same_rate(tmp_path, photo32):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(photo32).save(folder / "im.png")
    out = tmp_path / "out"
    rd.run(str(folder), "image", str(out), rates=(4.0, 8.0), effort="fast", progress=False, crops=True,
           crop_rate=5.0)
    with Image.open(out / "crops" / "im.png") as im:
        strip = np.asarray(im.convert("RGB"))
    panels = 2 + len(rd.IMAGE_CODECS)  # original, snfcodec, the baselines
    zoom = 256 // 32
    assert strip.shape[1] == panels * 32 * zoom + (panels - 1) * GAP
    label_h = strip.shape[0] - 32 * zoom
    original = strip[label_h:, : 32 * zoom][::zoom, ::zoom]
    np.testing.assert_array_equal(original, photo32)  # the 32x32 image is its own most detailed region
    assert (strip[:label_h] < 128).any()  # labels are drawn


def test_tiny_image_sweep_writes_all_outputs(tmp_path, photo32):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.roll(photo32, 5 * i, axis=1)).save(folder / f"im{i}.png")
    out = tmp_path / "out"
    summary = rd.run(str(folder), "image", str(out), rates=(4.0, 8.0), effort="fast", progress=False)
    for name in ("results.csv", "summary.json", "rd.png"):
        assert (out / name).stat().st_size > 0
    lines = (out / "results.csv").read_text().splitlines()
    assert lines[0].split(",")[:5] == ["image", "codec", "setting", "bytes", "bpp"]
    assert len(lines) == 1 + 2 * (2 + sum(len(c.settings) for c in rd.IMAGE_CODECS))
    saved = json.loads((out / "summary.json").read_text())
    assert set(saved["bd_rate"]) == {"jpeg", "webp", "avif", "jpeg2000"}
    assert saved["curves"]["snfcodec"][0]["items"] == 2
    assert "BD-rate" in rd.format_table(summary)


def test_sweep_of_two_fields_gives_each_its_curve_and_bd_rates(tmp_path, photo32):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(photo32).save(folder / "im.png")
    summary = rd.run(str(folder), "image", str(tmp_path / "out"), rates=(14.0, 20.0), effort="fast",
                     progress=False, fields=("tiles", "latent"))
    assert {"snfcodec", "snfcodec-latent"} <= set(summary["curves"])
    assert set(summary["bd_rate"]) == {"jpeg", "webp", "avif", "jpeg2000"}
    assert set(summary["bd_rate_of"]["snfcodec-latent"]) == {"snfcodec", "jpeg", "webp", "avif", "jpeg2000"}
    assert "BD-rate of snfcodec-latent" in rd.format_table(summary)


def test_seam_ratio_sees_hard_tile_edges_and_ignores_smooth_ones():
    from snfcodec.eval.metrics import seam_ratio

    y, x = np.mgrid[0:64, 0:64]
    smooth = ((x + y) * 2).astype(np.uint8)[:, :, None]
    assert seam_ratio(smooth, (64, 64), (16, 16)) == pytest.approx(1.0)
    blocky = smooth.copy()
    blocky[:, 16:32] += 20  # a step at the boundaries x = 16 and x = 32
    assert seam_ratio(blocky, (64, 64), (16, 16)) > 3
    # The same image sampled at 2x: boundaries fall between output pixels 31|32 and 63|64.
    big = np.repeat(np.repeat(blocky, 2, axis=0), 2, axis=1)
    assert seam_ratio(big, (64, 64), (16, 16)) > 3
    assert math.isnan(seam_ratio(smooth, (64, 64), (64, 64)))


def test_field_decodes_have_no_seams(tiny_snf):
    import snfcodec
    from snfcodec.eval.metrics import seam_ratio

    # tiny_snf is one tile; make a 2x2-tile encode of a smooth gradient and check every scale.
    y, x = np.mgrid[0:96, 0:96]
    img = np.stack([(x * 2.5), (y * 2.5), (x + y) * 1.2], axis=2).clip(0, 255).astype(np.uint8)
    data = snfcodec.encode(img, bpp=4.0, steps=150, field="tiles").data
    assert snfcodec.info(data)["tiling"]["tiles"] == 4
    for scale in (1.0, 2.0, 1.37):
        ratio = seam_ratio(snfcodec.decode(data, scale=scale), (96, 96), (64, 64))
        assert ratio < 1.5, (scale, ratio)


def test_upscale_report_on_a_small_image(tmp_path, photo32):
    from snfcodec.eval.upscale import evaluate

    path = tmp_path / "p.png"
    # 160x160 → L of 80x80: two tiles a side, so the seam columns hold numbers.
    Image.fromarray(np.asarray(Image.fromarray(photo32).resize((160, 160), Image.BICUBIC))).save(path)
    row, strip = evaluate(str(path), 2, 4.0, "fast")
    assert row["seam_source"] == "low"
    for key in ("psnr_field", "psnr_decoded_bicubic", "psnr_decoded_lanczos", "psnr_low_bicubic",
                "seam_ratio_1x", "seam_excess_2x", "seam_excess_1.37x", "seam_paired_1.37x"):
        assert math.isfinite(row[key]), key
    # Blended tiles: a boundary jumps at most 1.15x as much as the same content in a tile's middle (1.05 here;
    # hard-edged tiles, margin 0, measure 1.18 / 1.79 / 1.39).
    assert all(row[f"seam_paired_{s}x"] < 1.15 for s in ("1", "2", "1.37"))
    assert row["psnr_field"] > 15
    assert strip.size[0] == 4 * 2 * 96 + 3 * GAP and strip.size[1] > 2 * 96  # four labelled panels, zoom 2


def test_speed_benchmark_writes_its_outputs(tmp_path, photo32):
    from click.testing import CliRunner

    from snfcodec.eval import speed

    path = tmp_path / "p.png"
    Image.fromarray(photo32).save(path)
    out = tmp_path / "speed"
    r = CliRunner().invoke(speed.main, [str(path), "--alphas", "1,2", "--lrs", "1e-3,3e-3", "--steps", "30",
                                        "--target-psnr", "15", "--bpp", "8", "--out", str(out)])
    assert r.exit_code == 0, r.output
    saved = json.loads((out / "speed.json").read_text())
    entry = saved["results"][0]
    assert set(entry["alphas"]) == {"1", "2"}
    b = entry["alphas"]["1"]["best"]
    assert b["steps_to_target"] == next(i for i, p in enumerate(b["curve"]) if p >= 15)
    assert (out / "speed.png").stat().st_size > 0
    assert len((out / "speed.csv").read_text().splitlines()) == 1 + 4


def test_speed_paper_preset_takes_a_width(tmp_path, photo32):
    from click.testing import CliRunner

    from snfcodec.eval import speed

    path = tmp_path / "p.png"
    Image.fromarray(photo32).save(path)
    r = CliRunner().invoke(speed.main, [str(path), "--preset", "paper", "--gray", "--width", "12", "--alphas", "1",
                                        "--lrs", "1e-3", "--steps", "5", "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    entry = json.loads((tmp_path / "s" / "speed.json").read_text())["results"][0]
    assert (entry["tiles"], entry["width"], entry["shape"]) == (1, 12, [32, 32, 1])
    assert entry["params"] == 2 * 12 + 12 + 2 * (12 * 12 + 12) + 12 + 1


def test_best_prefers_reaching_the_target():
    from snfcodec.eval.speed import best

    runs = [{"steps_to_target": None, "final_psnr": 50}, {"steps_to_target": 90, "final_psnr": 30},
            {"steps_to_target": 40, "final_psnr": 29}]
    assert best(runs)["steps_to_target"] == 40


def test_draft_benchmark_compares_the_three_ways_to_a_small_picture(tiny_snf, tmp_path):
    from click.testing import CliRunner

    from snfcodec.eval import draft

    r = draft.measure(tiny_snf, 4, 1)
    assert r["size"] == [32, 32] and r["small"] == [8, 8]
    assert all(r[f"{k}_seconds"] > 0 for k in ("full_then_resize", "draft", "thumbnail"))
    assert 10 < r["psnr_draft_vs_resize"] < 60 and 10 < r["psnr_thumbnail_vs_resize"]
    path = tmp_path / "t.snf"
    path.write_bytes(tiny_snf)
    result = CliRunner().invoke(draft.main, [str(path), "--repeat", "1"])
    assert result.exit_code == 0 and "draft 8x8 + load" in result.output, result.output


def test_device_check_runs_end_to_end_on_the_cpu(tmp_path):
    from click.testing import CliRunner

    from snfcodec.eval import device

    r = CliRunner().invoke(device.main, ["--device", "cpu", "--sizes", "32x24,24x16", "--steps", "5", "--bpp", "8",
                                         "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "device.json").read_text())
    assert [row["size"] for row in saved["rows"]] == [[32, 24], [24, 16]]
    for row in saved["rows"]:
        assert all(row["checks"].values()) and row["steps_per_second"] > 0 and row["device"] == "cpu"
    bad = CliRunner().invoke(device.main, ["--sizes", "12"])
    assert bad.exit_code == 2 and "WxH" in bad.output
    latent = CliRunner().invoke(device.main, ["--device", "cpu", "--sizes", "48x32", "--steps", "10", "--bpp", "8",
                                              "--field", "latent", "--out", str(tmp_path / "v3")])
    assert latent.exit_code == 0, latent.output
    row = json.loads((tmp_path / "v3" / "device.json").read_text())["rows"][0]
    assert row["version"] == 3 and row["steps"] == 10 and all(row["checks"].values())


def test_scale_eval_runs_each_size_in_its_own_process(tmp_path):
    from click.testing import CliRunner

    from snfcodec.eval import scale

    photo = os.path.join(os.path.dirname(__file__), "..", "samples", "astronaut.png")
    r = CliRunner().invoke(scale.main, [photo, "--sizes", "32x24,48x32", "--steps", "5", "--bpp", "8",
                                        "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "scale.json").read_text())["rows"]
    assert [row["size"] for row in rows] == [[32, 24], [48, 32]]
    for row in rows:
        assert all(row["checks"].values()) and 0 < row["fit_seconds"] < row["encode_seconds"]
        assert 0 < row["fit_share"] < 1 and row["peak_rss_mb"] >= row["encode_peak_rss_mb"] > 50
        assert row["decode2x_seconds_cpu"] > 0
    assert "relative to the first size: 1.00x" in r.output


def test_latent_curve_encodes_every_alpha_at_every_step_count(tmp_path):
    from click.testing import CliRunner

    from snfcodec.eval import curve

    with Image.open(os.path.join(os.path.dirname(__file__), "..", "samples", "images", "astronaut_face.png")) as im:
        im.convert("RGB").resize((48, 48), Image.LANCZOS).save(tmp_path / "p.png")
    out = tmp_path / "c"
    r = CliRunner().invoke(curve.main, [str(tmp_path / "p.png"), "--bpp", "6", "--steps", "8,16", "--alphas",
                                        "1,1;2,1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = json.loads((out / "curve.json").read_text())
    assert [(row["alpha_first"], row["alpha_hidden"], row["steps"]) for row in rows] == \
        [(1, 1, 8), (1, 1, 16), (2, 1, 8), (2, 1, 16)]
    assert all(row["bpp"] <= 6 and row["psnr"] > 10 and row["seconds"] >= row["fit_seconds"] > 0 for row in rows)
    assert rows[0]["psnr"] != rows[2]["psnr"]  # α reached the synthesis network
    assert (out / "curve.png").stat().st_size > 0
    assert len((out / "curve.csv").read_text().splitlines()) == 1 + 4
    bad = CliRunner().invoke(curve.main, [str(tmp_path / "p.png"), "--alphas", "1,0", "--out", str(out)])
    assert bad.exit_code != 0 and "positive pairs" in bad.output
