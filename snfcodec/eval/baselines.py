"""Classical codecs to compare against, each a name, a sweep of settings and an encode/decode recipe.

Images through Pillow (JPEG, WebP, AVIF, JPEG 2000), audio through PyAV/FFmpeg (MP3, Opus, AAC). Every codec
returns the whole encoded file, so rates compare file sizes with file sizes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np
from PIL import Image

from ..media import decoded_chunks, encode_pcm


@dataclass(frozen=True)
class Codec:
    name: str
    settings: tuple  # the sweep, from low to high rate

    def encode(self, signal, setting, sample_rate: int | None = None) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes, like: np.ndarray, sample_rate: int | None = None) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class PillowCodec(Codec):
    """An image codec Pillow writes; ``setting`` is the quality parameter given to ``Image.save``."""

    pillow_format: str = ""
    option: str = "quality"

    def encode(self, pixels: np.ndarray, setting, sample_rate=None) -> bytes:
        im = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
        buf = io.BytesIO()
        extra = {"quality_mode": "dB", "quality_layers": [setting]} if self.option == "psnr_layers" else \
            {self.option: setting}
        im.save(buf, self.pillow_format, **extra)
        return buf.getvalue()

    def decode(self, data: bytes, like: np.ndarray, sample_rate=None) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as im:
            out = np.asarray(im.convert({1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[like.shape[2]]))
        return out.reshape(like.shape)


JPEG = PillowCodec("jpeg", (5, 10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95), "JPEG")
WEBP = PillowCodec("webp", (5, 10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95), "WEBP")
AVIF = PillowCodec("avif", (10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95), "AVIF")
# JPEG 2000 is swept by its target PSNR (OpenJPEG's "dB" quality mode).
JPEG2000 = PillowCodec("jpeg2000", (22, 25, 28, 30, 32, 34, 36, 38, 40, 44), "JPEG2000", "psnr_layers")
IMAGE_CODECS = (JPEG, WEBP, AVIF, JPEG2000)


@dataclass(frozen=True)
class FFmpegAudioCodec(Codec):
    """An FFmpeg audio encoder in a container; ``setting`` is the bit rate in kb/s."""

    container_format: str = ""
    encoder: str = ""
    rates: tuple = ()  # sample rates the encoder accepts (others go to the next one up); empty: any

    def stream_rate(self, sample_rate: int) -> int:
        if not self.rates or sample_rate in self.rates:
            return sample_rate
        return min((r for r in self.rates if r > sample_rate), default=max(self.rates))

    def encode(self, samples: np.ndarray, setting, sample_rate=None) -> bytes:
        buf = io.BytesIO()
        encode_pcm(buf, self.container_format, self.encoder, samples, sample_rate, int(setting * 1000),
                   self.stream_rate(sample_rate))
        return buf.getvalue()

    def decode(self, data: bytes, like: np.ndarray, sample_rate: int | None = None) -> np.ndarray:
        """Decode at ``sample_rate`` (Opus decoders always produce 48 kHz, whatever went in) and align to
        ``like`` (encoder delay differs between codecs and containers)."""
        with av.open(io.BytesIO(data), format=self.container_format) as src:
            decoded = np.concatenate(list(decoded_chunks(src, src.streams.audio[0], sample_rate)))
        return align(decoded.reshape(-1, like.shape[1]), like)


def align(decoded: np.ndarray, reference: np.ndarray, max_lag: int = 4096) -> np.ndarray:
    """Shift ``decoded`` by the lag (0..max_lag samples of leading delay) that best matches ``reference``, then
    cut or zero-pad it to the reference's length."""
    n = len(reference)
    a = reference.mean(axis=1)
    b = decoded.mean(axis=1)
    size = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    corr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)[: max_lag + 1]
    lag = int(np.argmax(corr))
    out = np.zeros_like(reference)
    part = decoded[lag:lag + n]
    out[: len(part)] = part
    return out


MP3 = FFmpegAudioCodec("mp3", (16, 24, 32, 48, 64, 96, 128), "mp3", "libmp3lame")
OPUS = FFmpegAudioCodec("opus", (8, 12, 16, 24, 32, 48, 64, 96), "ogg", "libopus",
                        rates=(8000, 12000, 16000, 24000, 48000))
AAC = FFmpegAudioCodec("aac", (16, 24, 32, 48, 64, 96, 128), "adts", "aac")
AUDIO_CODECS = (MP3, OPUS, AAC)
