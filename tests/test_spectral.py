"""The version-3 audio field (snfcodec.spectral): the basis at any rate, the context order, the integer model,
and files end to end — rate, exact and deterministic decoding, other sample rates, a reader that trusts
nothing."""

import hashlib
import math
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import snfcodec
from snfcodec import container
from snfcodec.cli import main
from snfcodec.errors import SnfFormatError, SnfInputError
from snfcodec.latent.context import FRAC, MAX_ACT, quantize_context
from snfcodec.spectral import basis, context, lowpass
from snfcodec.spectral.encoder import quantize

RATE = 16000


def speechlike(n=8000, rate=RATE, channels=1, seed=0):
    """Harmonics with a moving pitch and an envelope, plus a little noise: tonal and transient, like speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    f0 = 140 + 40 * np.sin(2 * np.pi * 1.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    mono = sum(np.sin(h * phase) / h for h in range(1, 12)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) * 0.25
    mono = mono + 0.01 * rng.standard_normal(n)
    out = np.stack([mono * 0.9 ** c + 0.02 * c * rng.standard_normal(n) for c in range(channels)], axis=1)
    return out.astype(np.float32)


# ---- basis ------------------------------------------------------------------------------------------------

def _render(coefficients, N, length, rate, new_rate):
    """All frames of a grid at ``new_rate``."""
    return basis.synthesise(coefficients, N, rate, new_rate, 0, 0, basis.output_length(length, rate, new_rate))


def test_frames_analysed_in_parts_are_the_frames_analysed_whole():
    x = np.random.default_rng(8).standard_normal((900, 2))
    whole = basis.analyse(x, 32)
    np.testing.assert_allclose(np.concatenate([basis.analyse(x, 32, 0, 7), basis.analyse(x, 32, 7, whole.shape[1])],
                                              axis=1), whole, atol=1e-12)


def test_synthesis_at_the_original_rate_inverts_the_analysis():
    x = np.random.default_rng(0).standard_normal((1000, 2)) * 0.1
    c = basis.analyse(x, 32)
    assert c.shape == (2, basis.frames(1000, 32), 32)
    np.testing.assert_allclose(_render(c, 32, 1000, RATE, RATE), x, atol=1e-12)


def test_synthesis_at_the_original_rate_is_the_basis_summed():
    """The FFT path (the original rate) of frames 3 … 8 with 20 of 32 components, read from sample 70 on, is the
    sum of the basis functions themselves."""
    c = np.random.default_rng(4).standard_normal((2, 6, 20))
    got = basis.synthesise(c, 32, RATE, RATE, 3, 70, 150)
    want = np.zeros((2, 400))
    phi = basis._basis(torch.arange(64, dtype=torch.float64), 32, 20).numpy()  # (2N, K)
    for f in range(6):
        start = (3 + f - 1) * 32  # frame m covers samples (m − 1)·N … (m + 1)·N − 1
        want[:, start:start + 64] += c[:, f] @ phi.T
    np.testing.assert_allclose(got, want[:, 70:220].T, atol=1e-12)


@pytest.mark.parametrize("new_rate", [8000, 22050, 32000, 44100])
def test_the_field_between_samples_is_the_signal_between_samples(new_rate):
    """A 440 Hz tone sampled at 16 kHz, evaluated at another rate, is the same tone at those instants."""
    n = 4000
    x = (0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / RATE))[:, None]
    y = _render(basis.analyse(x, 64), 64, n, RATE, new_rate)
    assert y.shape == (round(n * new_rate / RATE), 1)
    t = np.arange(len(y)) / new_rate  # t_j in seconds
    inner = slice(len(y) // 10, -len(y) // 10)
    assert np.abs(y[inner, 0] - 0.5 * np.sin(2 * np.pi * 440 * t[inner])).max() < 5e-3


def test_a_decode_at_twice_the_rate_interleaves_the_original_samples():
    x = np.random.default_rng(6).standard_normal((500, 1)) * 0.1
    y = _render(basis.analyse(x, 32), 32, 500, RATE, 2 * RATE)
    np.testing.assert_allclose(y[::2], x, atol=1e-12)


# ---- low-pass (decoding below the file's rate) -------------------------------------------------------------

def _tones(n, rate, tones):
    t = np.arange(n) / rate
    return np.stack([sum(a * np.sin(2 * np.pi * f * t + f) for f, a in tones)], axis=1)


def _downsample(x, rate, new_rate, split=()):
    """x fed to the low-pass in blocks cut at ``split`` → the whole output, checked to be contiguous."""
    cuts = [0, *split, len(x)]
    pieces = [(a, x[a:b]) for a, b in zip(cuts, cuts[1:])]
    count = basis.output_length(len(x), rate, new_rate)
    out, at = [], 0
    for start, block in lowpass.downsample(iter(pieces), len(x), x.shape[1], rate, new_rate, count):
        assert start == at
        out.append(block)
        at += len(block)
    assert at == count
    return np.concatenate(out)


def test_below_the_rate_a_tone_above_the_new_nyquist_is_gone_and_one_below_is_whole():
    """The brick wall at 4 kHz (16 → 8 kHz): 3.9 kHz passes at full amplitude, 4.1 kHz is gone — leaving out
    components could do neither (each leaks across the cut)."""
    x = _tones(4000, RATE, [(3900, 0.3), (4100, 0.5)])
    y = _downsample(x, RATE, 8000)
    want = _tones(2000, 8000, [(3900, 0.3)])
    assert np.abs(y - want)[500:-500].max() < 2e-3  # (the tones' abrupt start and end are broadband)


@pytest.mark.parametrize("new_rate", [8000, 11025])
def test_the_low_pass_in_segments_is_the_low_pass_of_the_whole(monkeypatch, new_rate):
    """With margins of 256 samples, 6000 samples take several segments; the blocks they arrive in change nothing,
    and the joins are as good as the margins (the whole signal's brick wall for reference)."""
    monkeypatch.setattr(lowpass, "MARGIN", 256)
    x = _tones(6000, RATE, [(300, 0.3), (1234, 0.2), (2500, 0.1)]) * np.hanning(6000)[:, None]
    one = _downsample(x, RATE, new_rate)
    assert lowpass.segment_sizes(RATE, new_rate)[2] < len(x) // 3
    np.testing.assert_array_equal(_downsample(x, RATE, new_rate, (1000, 1001, 4096)), one)
    g = math.gcd(RATE, new_rate)
    padded = np.concatenate([x, np.zeros((-len(x) % (RATE // g) + RATE // g * 4096, 1))])  # no wrap-around
    whole = lowpass._brick_wall(padded, new_rate // g, RATE // g)[:len(one)]
    assert np.abs(one - whole).max() < 1e-3


def test_frames_are_about_20_ms_within_the_format():
    from snfcodec.presets import spectral_frame
    assert [spectral_frame(r) for r in (8000, 16000, 44100, 48000, 96000)] == [128, 256, 1024, 1024, 2048]
    assert spectral_frame(1) == 16 and spectral_frame(10_000_000) == 8192


# ---- context ----------------------------------------------------------------------------------------------

def test_magnitude_is_an_exact_integer_log():
    q = np.array([0, 1, -1, 2, 3, 7, 8, 100, -4095])
    ref = [0 if v == 0 else 8 * abs(v).bit_length() + (16 * abs(v) >> abs(v).bit_length()) - 8 for v in q.tolist()]
    assert context.magnitude(q).tolist() == ref


def test_component_positions_are_the_same_integer_log():
    k = np.arange(8192)
    assert [context._position(int(v)) for v in k] == context.magnitude(k + 1).tolist()


def test_every_pass_sees_only_what_is_decoded_before_it():
    """Decoding the passes in order, each pass's context (from a grid holding only earlier passes) equals the
    context the encoder computes from the whole grid."""
    rng = np.random.default_rng(1)
    q = np.round(rng.laplace(0, 3, (2, 9, 6))).astype(np.int64)
    full = context.all_features(q)
    grid = context.PassGrid(2, 9, 6)
    from snfcodec.spectral.coding import passes
    seen = 0
    for k, p, rows in passes(9, 6):
        got = grid.features(k, p)
        used = context.FEATURES[p]
        np.testing.assert_array_equal(got, full[:, rows, k].reshape(-1, 7)[:, :used])
        grid.record(k, p, q[:, rows, k])
        seen += q[:, rows, k].size
    assert seen == q.size


def _reference_scale(weights, p, row):
    """The one-output integer network in Python integers (formats/snf.md §9)."""
    w0, b0, w1, b1, w2, b2 = [w.tolist() for w in weights[6 * p:6 * p + 6]]
    s, fam = 1 << FRAC, context.FAMILY
    row = [int(v) for v in row[:context.FEATURES[p]]]
    h = [min(max(sum(row[i] * w0[i][j] for i in range(len(row))) + b0[j], 0), int(MAX_ACT)) for j in range(len(b0))]
    h = [min(max((sum(h[i] * w1[i][j] for i in range(len(h))) + b1[j] * s) // s, 0), int(MAX_ACT))
         for j in range(len(b1))]
    o = (sum(h[i] * w2[i][0] for i in range(len(h))) + b2[0] * s) // s
    return min(max((fam.scales_per_e * (o - int(fam.ln_b0) * s) + 128) // s, 0), fam.num_scales - 1)


def test_integer_model_equals_a_python_integer_reference():
    model = context.new_model(6, torch.Generator().manual_seed(2), 3.0)
    with torch.no_grad():
        for t in model.parameters():
            t.mul_(3.0)
    weights = [w << 1 for w in quantize_context(model, [1] * 12)]
    ctx = context.integer_model(weights)
    x = np.random.default_rng(3).integers(0, 110, (150, 7))
    for p in (0, 1):
        table, centre = ctx.predict(p, torch.from_numpy(x.astype(np.float64)))
        assert table.tolist() == [_reference_scale(weights, p, r) for r in x.tolist()]
        assert not centre.any()


def test_quantize_rounds_towards_zero_by_the_dead_zone():
    c = np.array([0.64, 0.66, -0.66, 1.64, 1.66, 10.0])
    assert quantize(c, 1.0, 0.15).tolist() == [0, 1, -1, 1, 2, 10]
    assert quantize(np.array([1e9]), 1.0, 0.0).tolist() == [context.MAX_COEFFICIENT]


# ---- files ------------------------------------------------------------------------------------------------

KBPS = 64.0


@pytest.fixture(scope="module")
def voice():
    return speechlike()


@pytest.fixture(scope="module")
def encoded(voice):
    return snfcodec.encode(voice, sample_rate=RATE, kbps=KBPS, effort="fast", seed=0)


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(a.tobytes()).hexdigest()


def test_round_trip_lands_at_the_rate_and_reports_the_decoded_psnr(voice, encoded):
    data = encoded.data
    assert container.version_of(data) == 3 and data[5] == container.KIND_AUDIO
    budget = int(KBPS * 1000 * len(voice) / RATE / 8)
    assert 0.98 * budget <= len(data) <= budget
    out = snfcodec.decode(data)
    assert out.shape == voice.shape and out.dtype == np.float32
    assert encoded.psnr == pytest.approx(snfcodec.codec.psnr_float(out, voice), abs=1e-9)
    assert encoded.psnr > 45


def test_a_higher_rate_gives_a_better_field(voice, encoded):
    low = snfcodec.encode(voice, sample_rate=RATE, kbps=KBPS / 2, effort="fast")
    assert len(low.data) < len(encoded.data) and low.psnr < encoded.psnr - 3


def test_same_seed_same_file(voice, encoded):
    assert snfcodec.encode(voice, sample_rate=RATE, kbps=KBPS, effort="fast", seed=0).data == encoded.data


def test_decoding_is_the_same_with_one_or_two_threads_and_in_another_process(encoded, tmp_path):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _sha(snfcodec.decode(encoded.data))
        torch.set_num_threads(2)
        two = _sha(snfcodec.decode(encoded.data))
    finally:
        torch.set_num_threads(before)
    path = tmp_path / "v.snf"
    path.write_bytes(encoded.data)
    code = ("import hashlib, snfcodec, sys; "
            "print(hashlib.sha256(snfcodec.decode(sys.argv[1]).tobytes()).hexdigest())")
    fresh = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert one == two == fresh.stdout.strip()


@pytest.mark.parametrize("new_rate", [8000, 44100])
def test_decoding_at_another_rate_samples_the_same_field(voice, encoded, new_rate):
    """Against the original at the new instants: band-limited interpolation above the file's rate, the ideal
    low-pass (the whole signal's brick wall) below it."""
    out = snfcodec.decode(encoded.data, sample_rate=new_rate)
    assert out.shape == (round(len(voice) * new_rate / RATE), 1)
    if new_rate > RATE:
        ref = _render(basis.analyse(voice.astype(np.float64), 256), 256, len(voice), RATE, new_rate)
    else:
        g = math.gcd(RATE, new_rate)
        ref = lowpass._brick_wall(voice.astype(np.float64), new_rate // g, RATE // g)
    assert snfcodec.codec.psnr_float(out, ref.astype(np.float32)) > encoded.psnr - 3


def test_a_rate_whose_segments_would_not_fit_is_refused(encoded, monkeypatch):
    monkeypatch.setattr(lowpass, "MAX_SEGMENT_VALUES", 100_000)  # 8 kHz from 16 kHz needs 131,072
    with pytest.raises(SnfInputError, match="low-pass segments of 131072 samples"):
        snfcodec.decode(encoded.data, sample_rate=8000)


def test_stereo_and_more_channels_round_trip():
    x = speechlike(6000, channels=2, seed=4)  # correlated channels: mid/side pays
    r = snfcodec.encode(x, sample_rate=RATE, kbps=96, effort="fast")
    assert snfcodec.info(r.data)["field"]["transform"] == "mid/side"
    assert snfcodec.decode(r.data).shape == (6000, 2) and r.psnr > 40
    x3 = np.concatenate([x, speechlike(6000, seed=5)], axis=1)
    r3 = snfcodec.encode(x3, sample_rate=RATE, kbps=144, effort="fast")
    assert snfcodec.info(r3.data)["field"]["transform"] == "none"
    assert snfcodec.decode(r3.data).shape == (6000, 3) and r3.psnr > 35


def test_a_long_file_is_searched_on_some_windows_and_corrected_on_all(monkeypatch):
    """Windows of 16 frames, a search that sees 3 of the 12: the rate still lands at or just under the target,
    and the windows decode into one continuous signal."""
    from snfcodec import presets
    from snfcodec.spectral import encoder
    x = speechlike(3 * 16 * 256 * 4 - 300, seed=9)
    whole = snfcodec.encode(x, sample_rate=RATE, kbps=48, effort="fast")
    monkeypatch.setattr(presets, "SPECTRAL_WINDOW", 16)
    monkeypatch.setattr(encoder, "SEARCH_COEFFICIENTS", 3 * 16 * 256)
    r = snfcodec.encode(x, sample_rate=RATE, kbps=48, effort="fast")
    assert snfcodec.info(r.data)["field"]["window"] == 16
    budget = int(48 * 1000 * len(x) / RATE / 8)
    assert 0.98 * budget <= len(r.data) <= budget
    assert r.psnr > whole.psnr - 1.0  # windows cost little
    assert snfcodec.codec.psnr_float(snfcodec.decode(r.data), x) == pytest.approx(r.psnr, abs=1e-9)


def test_the_tiled_field_is_still_there_for_audio(voice):
    r = snfcodec.encode(voice[:1000], sample_rate=RATE, kbps=128, field="tiles", steps=20)
    assert container.version_of(r.data) in (1, 2)


def test_auto_gives_sound_the_tiled_field_when_an_option_names_it():
    big = 10 ** 6  # bytes: the spectral field's fixed cost is a small share
    assert snfcodec.codec.audio_field(snfcodec.codec.EncodeOptions(), big) == "latent"
    for option in ({"psnr": 40.0}, {"alpha": 2.0}, {"lr": 1e-3}, {"prior": "none"}, {"device": "cuda"}):
        assert snfcodec.codec.audio_field(snfcodec.codec.EncodeOptions(**option), big) == "tiles", option


def test_user_mistakes_are_one_line_errors(voice, encoded):
    with pytest.raises(SnfInputError, match="rate is too low"):
        snfcodec.encode(voice, sample_rate=RATE, kbps=1)
    with pytest.raises(SnfInputError, match="psnr applies to the tiled field"):
        snfcodec.encode(voice, sample_rate=RATE, kbps=KBPS, psnr=40, field="latent")
    with pytest.raises(SnfInputError, match="fitted on the CPU"):  # the image field's GPU fit is not audio's
        snfcodec.encode(voice, sample_rate=RATE, kbps=KBPS, device="cuda", field="latent")
    with pytest.raises(SnfInputError, match="lmbda"):
        snfcodec.encode(voice, sample_rate=RATE, lmbda=0.01)
    with pytest.raises(SnfInputError, match="holds audio"):
        snfcodec.codec.decode_image(encoded.data)
    with pytest.raises(SnfInputError, match="apply to images"):
        snfcodec.decode(encoded.data, scale=2)
    with pytest.raises(SnfInputError, match="positive whole number"):
        snfcodec.decode(encoded.data, sample_rate=0)


def test_cli_encodes_shows_and_decodes_at_another_rate(tmp_path, voice):
    from snfcodec.media import read_audio, write_audio
    src = tmp_path / "v.wav"
    write_audio(src, voice, RATE)
    runner = CliRunner()
    r = runner.invoke(main, ["encode", str(src), "-o", str(tmp_path / "v.snf"), "--kbps", "48", "--effort", "fast"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["info", str(tmp_path / "v.snf")])
    assert r.exit_code == 0 and "spectral field" in r.output and "16000 Hz" in r.output
    r = runner.invoke(main, ["decode", str(tmp_path / "v.snf"), "-o", str(tmp_path / "o.wav"), "--sample-rate",
                             "22050"])
    assert r.exit_code == 0, r.output
    out, rate = read_audio(tmp_path / "o.wav")
    assert rate == 22050 and out.shape == (round(len(voice) * 22050 / RATE), 1)


# ---- a reader that trusts nothing ----------------------------------------------------------------------

def _resign(data: bytes) -> bytes:
    return data[:-4] + zlib.crc32(data[:-4]).to_bytes(4, "little")


def test_every_truncation_is_a_format_error(encoded):
    data = encoded.data
    for n in list(range(0, 120)) + list(range(120, len(data), max(1, len(data) // 50))):
        with pytest.raises(SnfFormatError):
            snfcodec.decode(data[:n])


def test_crafted_headers_and_payloads_end_in_a_format_error_or_audio(encoded):
    rng = np.random.default_rng(7)
    data = bytearray(encoded.data)
    for trial in range(120):
        bad = bytearray(data)
        at = int(rng.integers(16, len(bad) - 4)) if trial % 2 else int(rng.integers(16, 16 + 12 + 72))
        bad[at] ^= 1 << int(rng.integers(0, 8))
        try:
            out = snfcodec.decode(_resign(bytes(bad)), max_samples=1 << 22)
        except (SnfFormatError, SnfInputError):
            continue
        assert out.dtype == np.float32 and np.all(np.abs(out) <= 1)


def test_header_limits_are_checked_before_allocating(encoded):
    import struct
    data = bytearray(encoded.data)
    struct.pack_into("<I", data, 16 + 4, 0xFFFFFFFF)  # length: 4 G samples
    data[16 + 8], data[16 + 9], data[16 + 10] = 8, 13, 16  # 8 channels, frames of 8192, windows of 65536 frames
    with pytest.raises(SnfFormatError, match="exceed"):
        snfcodec.decode(_resign(bytes(data)))
