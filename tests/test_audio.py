"""Audio through the same codec core: rates, channels, sample rates, resampling by sampling the field."""

import os
import wave

import numpy as np
import pytest
from click.testing import CliRunner

import snfcodec
from snfcodec.cli import main
from snfcodec.errors import SnfInputError
from snfcodec.media import read_audio, write_audio

SPEECH = os.path.join(os.path.dirname(__file__), "..", "samples", "speech.flac")


def tones(n, rate, freqs=(220.0, 440.0, 1250.0), channels=1):
    t = np.arange(n) / rate
    mono = sum(np.sin(2 * np.pi * f * t + k) for k, f in enumerate(freqs)) / (len(freqs) + 1)
    return np.stack([mono * (0.9 ** c) for c in range(channels)], axis=1).astype(np.float32)


@pytest.mark.parametrize("rate", [8000, 96000])
def test_multitone_round_trip_at_its_rate(rate):
    x = tones(1000, rate)
    r = snfcodec.encode(x, sample_rate=rate, kbps=rate * 0.004, steps=80)
    assert r.bpp is None and 0.9 * rate * 0.004 <= r.kbps <= rate * 0.004
    y = snfcodec.decode(r.data)
    assert y.shape == (1000, 1) and y.dtype == np.float32
    info = snfcodec.info(r.data)
    assert info["kind"] == "audio" and info["sample_rate"] == rate and info["shape"] == [1000]
    assert r.psnr > 10 * np.log10(4 / np.mean(x.astype(np.float64) ** 2))  # better than silence


def test_stereo_keeps_both_channels():
    x = tones(1000, 16000, channels=2)
    x[:, 1] = -x[:, 1]
    y = snfcodec.decode(snfcodec.encode(x, sample_rate=16000, kbps=100, steps=60).data)
    assert y.shape == (1000, 2)
    assert np.corrcoef(y[:, 0], y[:, 1])[0, 1] < 0  # the channels were not mixed


@pytest.mark.parametrize("new_rate", [8000, 22050, 44100, 96000])
def test_decode_at_another_rate_has_the_exact_length(new_rate):
    n, rate = 1001, 16000
    data = snfcodec.encode(tones(n, rate), sample_rate=rate, kbps=64, steps=10).data
    y = snfcodec.decode(data, sample_rate=new_rate)
    assert len(y) == round(n * new_rate / rate)


def test_decode_at_double_rate_interleaves_the_original_samples():
    data = snfcodec.encode(tones(800, 8000), sample_rate=8000, kbps=64, steps=30).data
    base = snfcodec.decode(data)
    double = snfcodec.decode(data, sample_rate=16000)
    np.testing.assert_allclose(double[::2], base, atol=1e-6)


def test_real_speech_improves_over_silence():
    x, rate = read_audio(SPEECH)
    x = x[254000:255000]  # the loudest stretch of the recording
    r = snfcodec.encode(x, sample_rate=rate, kbps=256, steps=100)
    silence = 10 * np.log10(4 / np.mean(x.astype(np.float64) ** 2))
    assert r.psnr > silence + 3


def test_rate_options_belong_to_their_media(photo32):
    with pytest.raises(SnfInputError, match="kbps"):
        snfcodec.encode(tones(100, 8000), sample_rate=8000, bpp=2.0)
    with pytest.raises(SnfInputError, match="bpp"):
        snfcodec.encode(photo32, kbps=32)
    with pytest.raises(SnfInputError, match="sample_rate"):
        snfcodec.encode(tones(100, 8000))


def test_empty_audio_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.wav"
    with wave.open(str(path), "wb") as w:  # a valid WAV header with no frames
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
    with pytest.raises(SnfInputError, match="no samples") as info:
        read_audio(path)
    assert "empty.wav" in str(info.value)
    with pytest.raises(SnfInputError, match="no samples"):
        snfcodec.encode(np.zeros((0, 1), np.float32), sample_rate=8000)


def test_audio_files_round_trip_through_the_cli(tmp_path):
    src = tmp_path / "in.wav"
    write_audio(src, tones(1200, 8000, channels=2), 8000)
    runner = CliRunner()
    r = runner.invoke(main, ["encode", str(src), "-o", str(tmp_path / "a.snf"), "--kbps", "96", "--steps", "20"])
    assert r.exit_code == 0, r.output
    assert "kb/s" in r.output
    r = runner.invoke(main, ["decode", str(tmp_path / "a.snf"), "-o", str(tmp_path / "out.flac"),
                             "--sample-rate", "16000"])
    assert r.exit_code == 0, r.output
    y, rate = read_audio(tmp_path / "out.flac")
    assert rate == 16000 and y.shape == (2400, 2)
    r = runner.invoke(main, ["decode", str(tmp_path / "a.snf"), "-o", str(tmp_path / "out.png")])
    assert r.exit_code == 1 and "holds audio" in r.output
    assert not (tmp_path / "out.png").exists()
    r = runner.invoke(main, ["info", str(tmp_path / "a.snf")])
    assert r.exit_code == 0 and "8000 Hz" in r.output
