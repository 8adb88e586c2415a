"""Learned priors: the shipped set, files coded against a prior, and what a decoder without it does."""

import dataclasses

import numpy as np
import pytest
import torch

import snfcodec
from snfcodec import codec, container, priors, presets
from snfcodec.errors import SnfFormatError, SnfInputError
from snfcodec.field import BatchedSiren
from snfcodec.priors import Prior
from snfcodec.media import write_audio
from snfcodec.priors.train import corpus_speech, train_audio_prior, train_image_prior

BPP = 4.0


def _prior_for(pixels: np.ndarray, bpp: float, prior_id: int = 9, scale: float = 1.0) -> Prior:
    """A prior for the field the presets choose for ``pixels`` at ``bpp``: a random first layer, hidden layers
    spread at random (what the trained priors look like)."""
    arch = codec.image_architecture(*pixels.shape, bpp)
    config = dataclasses.replace(arch.field, alpha_first=presets.auto_alpha(arch.field)[0])
    start = BatchedSiren(config, 1, torch.Generator().manual_seed(prior_id))
    first = [t.detach()[0].numpy() * scale for t in start.tensors()]
    tensors = tuple((f if k < 2 else np.zeros_like(f)).astype(np.float32) for k, f in enumerate(first))
    return Prior(prior_id, "test-prior", config, tensors, (0.0, 0.0) + (1.0,) * (len(tensors) - 2),
                 tuple(arch.tiling.tile))


@pytest.fixture
def with_prior(monkeypatch, photo32):
    prior = _prior_for(photo32, BPP)
    monkeypatch.setattr(priors, "shipped", lambda: (prior,))
    return prior


def test_a_file_coded_against_a_prior_is_version_2_and_decodes_to_what_the_encoder_measured(with_prior, photo32):
    result = snfcodec.encode(photo32, bpp=BPP, steps=60)
    header, tensors = codec.read_field(result.data)
    assert result.data[4] == container.VERSION_PRIOR and header.prior == with_prior.ref
    assert codec.psnr_uint8(codec.decode_image(result.data), photo32) == pytest.approx(result.psnr, abs=1e-9)
    assert 8 * len(result.data) <= BPP * photo32.shape[0] * photo32.shape[1]
    # The stored numbers are residuals: the parameters minus the prior are whole multiples of each step.
    for t, base, th in zip(tensors, with_prior.torch_tensors(), header.tensors):
        symbols = (t - base) / th.step
        assert torch.allclose(symbols, symbols.round(), atol=1e-6)


def test_prior_none_writes_version_1_and_the_same_bytes_as_without_any_prior(with_prior, photo32, monkeypatch):
    plain = snfcodec.encode(photo32, bpp=BPP, steps=30, prior="none").data
    assert plain[4] == container.VERSION and codec.read_field(plain)[0].prior is None
    monkeypatch.setattr(priors, "shipped", lambda: ())
    assert snfcodec.encode(photo32, bpp=BPP, steps=30).data == plain  # auto without a prior for the shape


def test_the_prior_is_where_fitting_starts(with_prior, photo32):
    """With no fitting step the field is the prior's first layer (hidden layers drawn at random)."""
    header, tensors = codec.read_field(snfcodec.encode(photo32, bpp=BPP, steps=0).data)
    for k in (0, 1):
        step = header.tensors[k].step
        assert torch.all((tensors[k] - with_prior.torch_tensors()[k]).abs() <= step * 0.5 + 1e-12)


def test_a_decoder_without_the_prior_refuses_and_names_it(with_prior, photo32, monkeypatch):
    data = snfcodec.encode(photo32, bpp=BPP, steps=20).data
    monkeypatch.setattr(priors, "shipped", lambda: ())
    with pytest.raises(SnfFormatError, match=r"prior #9 \(checksum [0-9a-f]{8}\).*upgrade snfcodec"):
        snfcodec.decode(data)


def test_a_decoder_with_a_different_prior_under_that_number_refuses(with_prior, photo32, monkeypatch):
    data = snfcodec.encode(photo32, bpp=BPP, steps=20).data
    other = _prior_for(photo32, BPP, prior_id=9, scale=0.5)
    assert other.checksum != with_prior.checksum
    monkeypatch.setattr(priors, "shipped", lambda: (other,))
    with pytest.raises(SnfFormatError, match="differs from this installation"):
        snfcodec.decode(data)


def test_a_bad_prior_option_is_a_clear_error(photo32):
    with pytest.raises(SnfInputError, match="prior must be 'auto' or 'none'"):
        snfcodec.encode(photo32, bpp=BPP, steps=1, prior="best")


def test_save_and_read_keep_every_prior_and_catch_damage(tmp_path, photo32):
    a, b = _prior_for(photo32, BPP, 1), _prior_for(photo32, 2.0, 2)
    priors.save([a, b], tmp_path)
    back = priors.read(tmp_path)
    assert [(p.id, p.checksum, p.tile, p.spread) for p in back] == [(p.id, p.checksum, p.tile, p.spread) for p in (a, b)]
    text = (tmp_path / priors.MANIFEST).read_text()
    (tmp_path / priors.MANIFEST).write_text(text.replace(f"{a.checksum:08x}", f"{a.checksum ^ 1:08x}"))
    with pytest.raises(ValueError, match="damaged"):
        priors.read(tmp_path)


def _shipped_arch(p: Prior):
    """The presets' field and tiling at the rate and size (or sample rate) a shipped prior records."""
    if p.config.in_dim == 1:
        silence = np.zeros((int(6.5 * p.rate), 1), np.float32)  # not the training's nominal length: rounding
        return codec.prepare_audio(silence, p.rate, codec.EncodeOptions(kbps=p.info["kbps"], field="tiles")).arch
    return codec.image_architecture(p.info["size"][0], p.info["size"][1], 3, p.info["bpp"])


def test_every_shipped_prior_is_for_a_field_the_presets_choose():
    """The shipped set must follow the presets: each prior's recorded rate and size give its shape and tile."""
    shipped = priors.shipped()
    assert shipped, "the package ships its priors (snfcodec/priors/priors.json)"
    assert len({p.id for p in shipped}) == len(shipped)
    assert {p.config.in_dim for p in shipped} == {1, 2}
    for p in shipped:
        arch = _shipped_arch(p)
        assert p.fits(arch.field, arch.tiling.tile, p.rate)
        assert priors.for_config(arch.field, arch.tiling.tile, p.rate) is p


def test_an_audio_prior_serves_its_sample_rate_and_segment_duration_only():
    p = next(p for p in priors.shipped() if p.config.in_dim == 1)
    arch = _shipped_arch(p)
    (segment,) = arch.tiling.tile
    assert p.fits(arch.field, (segment + 1,), p.rate)  # the same duration, rounded otherwise
    assert not p.fits(arch.field, (2 * segment,), p.rate)  # another kb/s
    assert not p.fits(arch.field, (segment * 6,), 6 * p.rate)  # the same duration at another sample rate
    assert not p.fits(arch.field, arch.tiling.tile, 0)  # not an image's tile


def _speech_like(seconds: float, rate: int, seed: int) -> np.ndarray:
    """(N, 1) float32: a few gliding partials under a syllable-rate envelope, and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    voice = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / rate) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    return (0.2 * voice * envelope + 0.01 * rng.normal(size=t.size)).astype(np.float32)[:, None]


def test_audio_training_learns_a_prior_that_a_sound_at_its_rate_is_coded_against(monkeypatch):
    rate, kbps = 8000, 64.0
    speech = _speech_like(3.0, rate, 0)
    runs = [train_audio_prior(speech, rate, kbps, 7, excerpts=2, segments=2, steps=3, seed=1, progress=False)
            for _ in range(2)]
    p = runs[0]
    assert p.checksum == runs[1].checksum and p.rate == rate and p.id == 7
    assert p.spread == (0.0, 0.0) + (1.0,) * (len(p.tensors) - 2) and not any(t.any() for t in p.tensors[2:])
    monkeypatch.setattr(priors, "shipped", lambda: (p,))
    sound = _speech_like(1.0, rate, 1)
    result = snfcodec.encode(sound, sample_rate=rate, kbps=kbps, steps=20, field="tiles")
    header, _ = codec.read_field(result.data)
    assert result.data[4] == container.VERSION_PRIOR and header.prior == p.ref
    decoded, _ = codec.decode_audio(result.data)
    assert codec.psnr_float(decoded, sound) == pytest.approx(result.psnr, abs=1e-6)
    other = snfcodec.encode(_speech_like(1.0, 16000, 1), sample_rate=16000, kbps=kbps, steps=5, field="tiles")
    assert other.data[4] == container.VERSION  # another sample rate: no prior


def test_corpus_speech_joins_recordings_of_one_sample_rate(tmp_path):
    write_audio(tmp_path / "a.wav", _speech_like(0.5, 8000, 0), 8000)
    write_audio(tmp_path / "b.flac", _speech_like(0.25, 8000, 1), 8000)
    speech, names, rate = corpus_speech(str(tmp_path))
    assert names == ["a.wav", "b.flac"] and rate == 8000 and speech.shape == (6000, 1)
    write_audio(tmp_path / "c.wav", _speech_like(0.25, 16000, 1), 16000)
    with pytest.raises(SnfInputError, match="different sample rates"):
        corpus_speech(str(tmp_path))


def test_training_learns_the_first_layer_only_and_is_reproducible():
    rng = np.random.default_rng(0)
    photos = [np.clip(rng.normal(128, 40, (80, 80, 3)), 0, 255).astype(np.uint8) for _ in range(2)]
    runs = [train_image_prior(photos, 2.0, (64, 64), 5, crops=2, crop=64, steps=3, seed=1, progress=False)
            for _ in range(2)]
    p = runs[0]
    arch = codec.image_architecture(64, 64, 3, 2.0)
    assert p.fits(arch.field, arch.tiling.tile) and p.id == 5
    assert p.spread == (0.0, 0.0) + (1.0,) * (len(p.tensors) - 2)
    assert all(not t.any() for t in p.tensors[2:]) and p.tensors[0].any()
    assert p.checksum == runs[1].checksum
    plain = train_image_prior(photos, 2.0, (64, 64), 5, crops=2, crop=64, steps=3, seed=1, progress=False,
                              alpha_first=1.0)
    assert plain.config.alpha_first == 1.0 and plain.checksum != p.checksum


def test_cli_prior_option_and_info(with_prior, photo32, tmp_path, monkeypatch):
    from click.testing import CliRunner
    from PIL import Image

    from snfcodec.cli import main

    src = tmp_path / "p.png"
    Image.fromarray(photo32).save(src)
    run = lambda *a: CliRunner().invoke(main, [str(x) for x in a])  # noqa: E731
    for prior, version in (("auto", 2), ("none", 1)):
        r = run("encode", src, "-o", tmp_path / f"{prior}.snf", "--bpp", BPP, "--steps", 10, "--prior", prior, "-q")
        assert r.exit_code == 0, r.output
        assert (tmp_path / f"{prior}.snf").read_bytes()[4] == version
    r = run("info", tmp_path / "auto.snf")
    assert r.exit_code == 0 and f"prior:       #9 (checksum {with_prior.checksum:08x})" in r.output
    assert "prior:" not in run("info", tmp_path / "none.snf").output
    r = run("encode", src, "-o", tmp_path / "x.snf", "--prior", "best")
    assert r.exit_code == 2 and "best" in r.output
    monkeypatch.setattr(priors, "shipped", lambda: ())
    r = run("decode", tmp_path / "auto.snf", "-o", tmp_path / "out.png")
    assert r.exit_code == 1 and "prior #9" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "out.png").exists()
