"""Regenerate the conformance files: ``python formats/conformance/generate.py``.

Each case encodes a small signal derived from a shipped sample and records the SHA-256 of the reference
decoder's output at 1× and at the listed extra decode requests: images as raw uint8 samples in row-major
(H, W, C) order, audio as little-endian float32 samples in (N, C) order, audio also with its block sums
(``formats/snf.md`` §7: what the tests check where another machine's float sums miss the digest).
A case whose file exists is not encoded again (files of a format version stay as they were written: the encoder
may have changed since, the decoder must not); ``--force`` re-encodes every case. The manifest is always
recomputed from the files. The test suite checks the committed files against the manifest.
"""

import hashlib
import json
import os
import sys

import numpy as np
from PIL import Image

import snfcodec
from snfcodec.media import read_audio

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(HERE, "..", "..", "samples", "images", "coffee.png")
SPEECH = os.path.join(HERE, "..", "..", "samples", "speech.flac")

CASES = [
    # name, mode, size (w, h), encode options, extra decodes
    ("rgb_24x16", "RGB", (24, 16), {"bpp": 8.0, "steps": 60}, [{"scale": 2}, {"crop": [4, 2, 10, 9], "scale": 1.5}]),
    ("gray_20x20", "L", (20, 20), {"bpp": 6.0, "steps": 60}, [{"size": [33, 17]}]),
    ("rgba_16x16", "RGBA", (16, 16), {"bpp": 12.0, "steps": 40, "alpha": 1.5}, [{"scale": 0.5}]),
    ("rgb_tiled_80x72", "RGB", (80, 72), {"bpp": 3.0, "steps": 40}, [{"scale": 1.37}]),
    # Version 2: the field the presets choose here (width 17, one 64-pixel tile) has a shipped prior.
    ("rgb_prior_64x64", "RGB", (64, 64), {"bpp": 1.5, "steps": 40, "prior": "auto"}, [{"scale": 1.5}]),
    # Version 3: latent grids (§8), written on a CPU.
    ("rgb_latent_48x32", "RGB", (48, 32), {"field": "latent", "bpp": 10.0, "steps": 40},
     [{"scale": 2}, {"crop": [5, 3, 20, 15], "scale": 1.5}, {"size": [13, 9]}]),
    ("gray_latent_40x40", "L", (40, 40), {"field": "latent", "bpp": 9.0, "steps": 40}, [{"scale": 0.5}]),
    # ... at a low rate, where the presets start the levels at 1:2 (§8's F = 1)
    ("rgb_latent_half_256x192", "RGB", (256, 192), {"field": "latent", "bpp": 0.3, "steps": 40}, [{"scale": 1.5}]),
]
AUDIO_CASES = [
    # name, (start, stop, step) samples of the speech sample (48 kHz; step 6: every sixth, taken as 8 kHz),
    # channels, encode options, extra decodes
    ("speech_mono_1500", (254000, 255500, 1), 1, {"kbps": 128.0, "steps": 40, "field": "tiles"},
     [{"sample_rate": 44100}]),
    ("speech_stereo_600", (250000, 250600, 1), 2, {"kbps": 256.0, "steps": 30, "field": "tiles"},
     [{"sample_rate": 8000}]),
    # Version 2: one second at 8 kHz and 32 kb/s has a shipped audio prior.
    ("speech_prior_8k", (200000, 248000, 6), 1, {"kbps": 32.0, "steps": 20, "prior": "auto", "field": "tiles"},
     [{"sample_rate": 11025}]),
    # Version 3: the spectral field (§9), written on a CPU.
    ("speech_spectral_16k", (200000, 248000, 3), 1, {"kbps": 48.0, "effort": "fast", "field": "latent"},
     [{"sample_rate": 44100}, {"sample_rate": 8000}]),
    ("speech_spectral_stereo_48k", (230000, 254000, 1), 2, {"kbps": 96.0, "effort": "fast", "field": "latent"},
     [{"sample_rate": 16000}, {"sample_rate": 96000}]),
]


BLOCKS = 64


def decode(data: bytes, request: dict) -> np.ndarray:
    return snfcodec.decode(data, **{k: tuple(v) if isinstance(v, list) else v for k, v in request.items()})


def sha256(out: np.ndarray) -> str:
    return hashlib.sha256(out.astype(out.dtype.newbyteorder("<")).tobytes()).hexdigest()


def block_sums(out: np.ndarray) -> list[float]:
    """Sums of BLOCKS consecutive runs of an audio decode's samples (row-major (N, C)): §7's tolerance (every
    sample within 10⁻⁶) bounds each by its length · 10⁻⁶ on a machine whose float sums round otherwise."""
    return [float(b.astype(np.float64).sum()) for b in np.array_split(out.reshape(-1), BLOCKS)]


def described(data: bytes, request: dict) -> dict:
    out = decode(data, request)
    case = {"request": request, "sha256": sha256(out)}
    if out.dtype != np.uint8:
        case["block_sums"] = block_sums(out)
    return case


def _record(manifest: list, name: str, encode, extra: list, force: bool) -> None:
    path = os.path.join(HERE, f"{name}.snf")
    if force or not os.path.exists(path):
        data = encode()  # before opening: a failed encode leaves no file
        with open(path, "wb") as f:
            f.write(data)
    with open(path, "rb") as f:
        data = f.read()
    manifest.append({"file": f"{name}.snf", "decodes": [described(data, r) for r in [{}] + extra]})


def main(force: bool = False) -> None:
    manifest = []
    with Image.open(SAMPLE) as src:
        for name, mode, size, options, extra in CASES:
            img = src.convert("RGBA").resize(size, Image.LANCZOS)
            if mode == "RGBA":  # give the alpha channel some structure
                a = np.asarray(img).copy()
                a[:, :, 3] = np.linspace(40, 255, size[0], dtype=np.uint8)[None, :]
                img = Image.fromarray(a, "RGBA")
            pixels = np.asarray(img.convert(mode))
            _record(manifest, name, lambda: snfcodec.encode(pixels, seed=0, **options).data, extra, force)
    speech, rate = read_audio(SPEECH)
    for name, (start, stop, step), channels, options, extra in AUDIO_CASES:
        clip = speech[start:stop:step, 0]
        samples = np.stack([clip, clip[::-1]][:channels], axis=1)  # a second channel that differs
        _record(manifest, name, lambda: snfcodec.encode(samples, sample_rate=rate // step, seed=0, **options).data,
                extra, force)
    with open(os.path.join(HERE, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main(force="--force" in sys.argv[1:])
