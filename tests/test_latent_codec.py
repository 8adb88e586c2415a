"""Version-3 files end to end (snfcodec.latent.encoder / .decoder through the codec, the CLI and Pillow): rate,
exact and deterministic decoding, any output grid, and a reader that trusts nothing."""

import hashlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import snfcodec
from snfcodec import container, pillow, presets  # noqa: F401  (pillow registers .snf with Pillow)
from snfcodec.cli import main
from snfcodec.codec import psnr_uint8
from snfcodec.errors import SnfFormatError, SnfInputError
from snfcodec.latent import bitstream, fused

BPP = 6.0  # a 48×48 field's networks alone cost about 3.5 bpp


@pytest.fixture(scope="module")
def photo48():
    from conftest import SAMPLES

    with Image.open(os.path.join(SAMPLES, "images", "astronaut_face.png")) as im:
        return np.asarray(im.convert("RGB").resize((48, 48), Image.LANCZOS))


@pytest.fixture(scope="module")
def encoded48(photo48):
    return snfcodec.encode(photo48, field="latent", bpp=BPP, steps=60, seed=0)


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(a.tobytes()).hexdigest()


def test_round_trip_meets_the_rate_and_reports_the_decoded_psnr(photo48, encoded48):
    data = encoded48.data
    assert container.version_of(data) == 3
    assert len(data) <= BPP * 48 * 48 / 8
    out = snfcodec.decode(data)
    assert out.shape == (48, 48, 3) and out.dtype == np.uint8
    assert encoded48.psnr == pytest.approx(psnr_uint8(out, photo48), abs=1e-9)
    assert encoded48.psnr > 22  # a mean-colour image scores about 12 dB here


def test_same_seed_same_file_other_seed_other_file(photo48, encoded48):
    again = snfcodec.encode(photo48, field="latent", bpp=BPP, steps=60, seed=0)
    other = snfcodec.encode(photo48, field="latent", bpp=BPP, steps=60, seed=1)
    assert again.data == encoded48.data
    assert other.data != encoded48.data


def test_the_cpu_fit_is_the_default_one_and_says_where_it_ran(photo48, encoded48):
    on_cpu = snfcodec.encode(photo48, field="latent", bpp=BPP, steps=60, seed=0, device="cpu")
    assert on_cpu.data == encoded48.data
    assert on_cpu.device == encoded48.device == "cpu"  # "auto" fits this field on the CPU, GPU or not


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal where no GPU is")
def test_a_gpu_fit_without_a_gpu_is_a_one_line_error(photo48):
    with pytest.raises(SnfInputError, match="no CUDA device") as info:
        snfcodec.encode(photo48, field="latent", bpp=BPP, steps=2, device="cuda")
    assert "\n" not in str(info.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_fit_decodes_on_the_cpu_like_a_cpu_fit(photo48, encoded48):
    r = snfcodec.encode(photo48, field="latent", bpp=BPP, steps=60, seed=0, device="cuda")
    assert r.device == "cuda" and container.version_of(r.data) == 3
    assert len(r.data) <= BPP * 48 * 48 / 8
    out = snfcodec.decode(r.data)
    assert r.psnr == pytest.approx(psnr_uint8(out, photo48), abs=1e-9)
    assert r.psnr > encoded48.psnr - 1.0  # the same fit up to float rounding


@pytest.mark.skipif(fused._compiler() is None, reason="no C++ compiler for torch.compile")
def test_a_compiled_fit_writes_a_file_like_the_eager_one(monkeypatch, photo48, encoded48):
    """SNFCODEC_COMPILE=1 compiles the step of any fit (:mod:`snfcodec.latent.fused`): the file meets the rate,
    scores within the float noise of the eager fit's trajectory, and repeats with the same seed."""
    monkeypatch.setenv(fused.ENVIRONMENT, "1")
    made = []
    init = fused.Terms.__init__

    def spy(self, compiled):
        init(self, compiled)
        made.append(self.compiled)

    monkeypatch.setattr(fused.Terms, "__init__", spy)
    first = snfcodec.encode(photo48, field="latent", bpp=BPP, steps=60, seed=0)
    again = snfcodec.encode(photo48, field="latent", bpp=BPP, steps=60, seed=0)
    assert made == [True, True]  # compiled, and no fallback
    assert again.data == first.data
    assert len(first.data) <= BPP * 48 * 48 / 8
    assert first.psnr == pytest.approx(encoded48.psnr, abs=0.5)


def test_decode_is_the_same_at_any_thread_count_and_in_a_fresh_process(tmp_path, encoded48):
    path = tmp_path / "f.snf"
    path.write_bytes(encoded48.data)
    threads = torch.get_num_threads()
    try:
        digests = set()
        for n in (1, 2):
            torch.set_num_threads(n)
            digests.add(_sha(snfcodec.decode(encoded48.data, scale=1.5)))
    finally:
        torch.set_num_threads(threads)
    code = ("import hashlib, sys, snfcodec; "
            "print(hashlib.sha256(snfcodec.decode(open(sys.argv[1], 'rb').read(), scale=1.5).tobytes()).hexdigest())")
    fresh = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    digests.add(fresh.stdout.strip())
    assert len(digests) == 1


def test_crops_and_sizes_sample_the_same_field(encoded48):
    full = snfcodec.decode(encoded48.data)
    crop = snfcodec.decode(encoded48.data, crop=(8, 4, 20, 30))
    np.testing.assert_array_equal(crop, full[4:34, 8:28])
    big = snfcodec.decode(encoded48.data, scale=2)
    assert big.shape == (96, 96, 3)
    # a 2× decode averaged back to 1× is close to the 1× decode: the field is smooth between pixel centres
    pooled = big.astype(np.float64).reshape(48, 2, 48, 2, 3).mean(axis=(1, 3))
    assert psnr_uint8(np.rint(pooled).astype(np.uint8), full) > 30
    assert snfcodec.decode(encoded48.data, size=(10, 7)).shape == (7, 10, 3)


def test_lambda_trades_rate_for_quality(photo48):
    cheap = snfcodec.encode(photo48, field="latent", lmbda=0.05, steps=60)
    rich = snfcodec.encode(photo48, field="latent", lmbda=0.0005, steps=60)
    assert len(cheap.data) < len(rich.data)
    assert cheap.psnr < rich.psnr


def test_the_trim_moves_the_latents_that_save_most_for_least(monkeypatch):
    from conftest import SAMPLES

    from snfcodec.latent import encoder

    with Image.open(os.path.join(SAMPLES, "images", "astronaut_face.png")) as im:
        photo = np.asarray(im.convert("RGB").resize((96, 96), Image.LANCZOS))
    free = snfcodec.encode(photo, field="latent", lmbda=1e-4, steps=60)  # no budget: plain rounding
    budget = 0.93 * free.bpp
    trimmed = snfcodec.encode(photo, field="latent", lmbda=1e-4, bpp=budget, steps=60)
    monkeypatch.setattr(encoder, "SLOPE_RANGE", (1e-12, 1e-12))  # no slope fits: the dead zone instead
    blunt = snfcodec.encode(photo, field="latent", lmbda=1e-4, bpp=budget, steps=60)
    assert trimmed.bpp <= budget and blunt.bpp <= budget
    assert free.psnr > trimmed.psnr > blunt.psnr + 0.3  # measured: 25.37 > 25.11 > 24.55


def test_the_latents_learning_rate_follows_the_run_and_the_rate(monkeypatch, photo48):
    """Short runs start the latents faster, and so do higher rates (in proportion above LATENT_LR_BPP, up to a
    cap); a rate given as λ keeps the run's rate (a bpp beside it only caps the file), and a user's lr wins."""
    from snfcodec import presets
    from snfcodec.latent import encoder

    class Stop(Exception):
        pass

    seen = []

    def capture(pixels, layout, options):
        seen.append(options.lr_latent)
        raise Stop  # before training (and before the rate check: any rate will do here)

    monkeypatch.setattr(encoder, "encode", capture)
    short, default, cap = presets.LATENT_SHORT_LR, presets.LATENT_LR, presets.LATENT_LR_MAX
    cases = [({"effort": "fast", "bpp": 0.25}, short), ({"effort": "default", "bpp": 0.25}, default),
             ({"steps": 100, "bpp": 0.5}, short), ({"effort": "default", "bpp": 1.0}, 2 * default),
             ({"effort": "fast", "bpp": 1.0}, 2 * short), ({"effort": "default", "bpp": 2.0}, 4 * default),
             ({"effort": "default", "bpp": 8.0}, cap), ({"effort": "fast", "bpp": 8.0}, cap),
             ({"effort": "default", "lmbda": 0.01}, default),
             ({"effort": "default", "lmbda": 0.01, "bpp": 2.0}, default),
             ({"effort": "fast", "bpp": 1.0, "lr": 0.05}, 0.05)]
    for kwargs, _ in cases:
        with pytest.raises(Stop):
            snfcodec.encode(photo48, field="latent", **kwargs)
    assert seen == pytest.approx([lr for _, lr in cases])
    assert short != default and 4 * default < cap < 16 * short


def test_user_mistakes_are_one_line_errors(photo48):
    for kwargs, words in [(dict(field="latent", bpp=0.5), "at least"),
                          (dict(field="tiles", lmbda=0.01), "latent"),
                          (dict(field="latent", psnr=30.0), "psnr"),
                          (dict(field="latent", tile=16), "tile"),
                          (dict(field="bogus"), "field")]:
        with pytest.raises(SnfInputError, match=words) as info:
            snfcodec.encode(photo48, steps=2, **kwargs)
        assert "\n" not in str(info.value)


def test_info_describes_a_version_3_file(encoded48):
    info = snfcodec.info(encoded48.data)
    assert info["version"] == 3 and info["shape"] == [48, 48] and info["layout"] == "RGB"
    assert info["latents"] == sum((-(-48 // 2 ** l)) ** 2 for l in range(info["field"]["levels"]))
    assert info["bpp"] == pytest.approx(8 * len(encoded48.data) / 48 ** 2)


def test_cli_encodes_latent_and_shows_it(tmp_path, photo48):
    src, snf = tmp_path / "p.png", tmp_path / "p.snf"
    Image.fromarray(photo48).save(src)
    runner = CliRunner()
    r = runner.invoke(main, ["encode", str(src), "-o", str(snf), "--field", "latent", "--bpp", "6", "--steps",
                             "20", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["bytes"] == os.path.getsize(snf)
    r = runner.invoke(main, ["info", str(snf)])
    assert r.exit_code == 0, r.output
    assert "version 3" in r.output and "latents:" in r.output
    r = runner.invoke(main, ["encode", str(src), "-o", str(tmp_path / "q.snf"), "--lmbda", "0.01", "--field",
                             "tiles"])
    assert r.exit_code == 1 and "latent" in r.output and not (tmp_path / "q.snf").exists()


def test_pillow_opens_and_drafts_a_version_3_file(encoded48):
    with Image.open(io.BytesIO(encoded48.data)) as im:
        assert im.size == (48, 48) and im.mode == "RGB"
        im.draft("RGB", (12, 12))
        small = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(small, snfcodec.decode(encoded48.data, size=(12, 12)))


def test_every_truncation_is_a_format_error(encoded48):
    data = encoded48.data
    for n in range(0, len(data), 7):
        with pytest.raises(SnfFormatError):
            snfcodec.decode(data[:n])


@pytest.fixture(scope="module")
def half_scale_vector():
    """The conformance file whose grids start at 1:2 (F = 1)."""
    with open(os.path.join(os.path.dirname(__file__), "..", "formats", "conformance",
                           "rgb_latent_half_256x192.snf"), "rb") as f:
        return f.read()


@pytest.mark.parametrize("which", ["from 1:1", "from 1:2"])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_crafted_files_end_in_format_errors_or_images(encoded48, half_scale_vector, resign, which, data):
    """Bytes changed and the CRC recomputed (a crafted, not a damaged file): only SnfFormatError escapes."""
    raw = bytearray(encoded48.data if which == "from 1:1" else half_scale_vector)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 5))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        out = snfcodec.decode(resign(bytes(raw)), max_samples=1 << 20)
    except SnfFormatError:
        return
    assert out.dtype == np.uint8 and out.ndim == 3


def test_encode_many_trains_images_of_one_size_together(tmp_path, photo48):
    """Two 48×48 images go in one group (one batched training, :func:`snfcodec.latent.train.train_batch`); each
    file is a version-3 file within its budget whose reported PSNR is its decode's (that the batched training is
    each field's own: test_latent_model)."""
    from snfcodec import batch, codec
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"im{i}.png")
        Image.fromarray(np.roll(photo48, 7 * i, axis=1)).save(paths[-1])
    options = codec.EncodeOptions(field="latent", bpp=BPP, steps=40)
    items = [codec.prepare_image(np.asarray(Image.open(p)), options) for p in paths]
    assert all(item.batchable for item in items) and batch.groups(items) == [[0, 1]]
    results = list(snfcodec.encode_many(paths, tmp_path / "out", field="latent", bpp=BPP, steps=40))
    assert [r.status for r in results] == ["ok", "ok"]
    for r, path in zip(results, paths):
        data = open(r.output, "rb").read()
        assert container.version_of(data) == 3 and len(data) <= int(BPP * 48 * 48 / 8)
        original = np.asarray(Image.open(path))
        assert r.result.psnr == pytest.approx(psnr_uint8(snfcodec.decode(data), original))
        assert r.result.steps == 40


def test_latent_images_are_grouped_by_size_and_only_where_small_and_uncompiled(photo48, monkeypatch):
    from snfcodec import batch, codec
    from snfcodec.latent import fused
    options = codec.EncodeOptions(field="latent", bpp=BPP, steps=40)
    items = [codec.prepare_image(px, options) for px in (photo48, photo48[:40], photo48, photo48[:40])]
    assert batch.groups(items) == [[0, 2], [1, 3]]
    assert presets.latent_batchable(256, 256, presets.LATENT_STEPS["default"], compiled=False)
    assert not presets.latent_batchable(256, 256, presets.LATENT_STEPS["default"], compiled=True)
    assert not presets.latent_batchable(512, 512, presets.LATENT_STEPS["default"], compiled=False)  # not measured
    assert not presets.latent_batchable(256, 256, presets.LATENT_STEPS["slow"], compiled=False)
    # a compiled fit asked for through the environment is one file's, as the encoder would run it
    monkeypatch.setattr(fused, "_compiler", lambda: "c++")
    monkeypatch.setenv(fused.ENVIRONMENT, "1")
    items = [codec.prepare_image(px, options) for px in (photo48, photo48)]
    assert not any(item.batchable for item in items) and batch.groups(items) == [[0], [1]]


@pytest.mark.parametrize("guess", [1e-8, 1e-2, 1e2])
def test_the_trim_search_finds_the_smallest_fitting_slope_from_any_guess(guess):
    """Wherever training's λ points it, the search ends on a pass that fits and is either within its tolerance
    of the room or a resolution step above a slope that does not fit."""
    from snfcodec.latent import encoder
    from snfcodec.latent.field import LatentConfig, LatentField

    field = LatentField(64, 64, 3, LatentConfig(levels=4), (1.0, 1.0), torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    latents = [rng.laplace(0.0, 2.0, shape) for shape in field.shapes]
    ctx = encoder._integer_context(field.context, 2)[1]
    weights = np.array([1.0, 2.0, 4.0, 8.0])

    def bits(slope):
        return encoder._latent_pass(field.shapes, ctx, latents, slope=slope, weights=weights, keep=False)[2]

    room = 0.9 * bits(0.0)
    deadzone, slope, chosen = encoder._trim(field.shapes, ctx, latents, weights, room, guess)
    assert deadzone == 0.0 and slope > 0
    assert chosen[2] <= room and chosen[2] == bits(slope)
    assert chosen[2] >= room * (1 - encoder.TRIM_TOLERANCE) or bits(slope / encoder.SLOPE_RESOLUTION) > room


def test_a_field_from_half_scale_round_trips_and_says_so(photo48, resign):
    """A field whose finest level is 1:2 (the presets' choice at low rates) is written, read and sampled with
    its levels' scales: the header keeps ``first``, the decode is the encoder's, crops sample the same field."""
    from snfcodec.latent import decoder, encoder
    from snfcodec.latent.field import LatentConfig

    config = LatentConfig(levels=3, first=1)
    encoded = encoder.encode(photo48, 3, encoder.LatentOptions(config, 60, bpp=BPP))
    field = decoder.read_field(encoded.data)
    assert field.header.config == config
    assert [g.shape for g in field.grids] == [(24, 24), (12, 12), (6, 6)]
    assert snfcodec.info(encoded.data)["latents"] == 24 * 24 + 12 * 12 + 6 * 6
    full = snfcodec.decode(encoded.data)
    assert psnr_uint8(full, photo48) > 20
    np.testing.assert_array_equal(snfcodec.decode(encoded.data, crop=(8, 4, 20, 30)), full[4:34, 8:28])
    beyond = bytearray(encoded.data)
    beyond[31] = bitstream.MAX_FIRST + 1  # the header's finest-level byte
    with pytest.raises(SnfFormatError, match="finest level"):
        snfcodec.decode(resign(bytes(beyond)))


def test_the_presets_start_at_half_scale_at_low_rates_only():
    low, high, given = (presets.latent_config(512, 768, bpp) for bpp in (0.25, 0.5, None))
    long_run, long_low, longest_low = (presets.latent_config(512, 768, bpp, presets.LATENT_STEPS[effort])
                                       for bpp, effort in ((0.25, "slow"), (0.125, "slow"), (0.125, "placebo")))
    assert (low.first, high.first, given.first) == (1, 0, 0)
    assert (long_run.first, long_low.first, longest_low.first) == (0, 1, 0)
    # the coarsest level is the same size either way
    assert low.first + low.levels == high.first + high.levels
