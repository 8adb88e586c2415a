"""Reading and writing media files: images through Pillow, audio through PyAV.

Images become ``(H, W, C)`` uint8 arrays with C = 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA). Alpha is kept as a
channel of its own and coded like the others. 16-bit and float inputs are scaled to 8 bits, palette images are
expanded (to RGBA when they carry transparency), CMYK and YCbCr become RGB, EXIF orientation is applied, and an
animated file contributes its first frame.

Audio becomes ``(samples, channels)`` float32 in [-1, 1] plus its sample rate; the first audio stream of any
container FFmpeg reads (WAV, FLAC, MP3, Ogg, Opus, M4A, ...) is used, at its own rate and channel count.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Iterator

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import SnfInputError

LAYOUT_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
SNF_EXTENSION = ".snf"
# Refuse images above this many pixels before decoding them (decompression-bomb guard).
MAX_IMAGE_PIXELS = 1 << 26


def to_layout(im: Image.Image) -> Image.Image:
    """Bring any Pillow mode to one of L, LA, RGB, RGBA (the layouts a ``.snf`` image can hold)."""
    if im.mode in ("L", "LA", "RGB", "RGBA"):
        return im
    if im.mode == "1":
        return im.convert("L")
    if im.mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode == "PA":
        return im.convert("RGBA")
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.int64)
        peak = 65535 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255
        return Image.fromarray(np.clip(np.rint(a * (255.0 / peak)), 0, 255).astype(np.uint8), "L")
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        peak = 1.0 if a.max(initial=0.0) <= 1.0 else 255.0
        return Image.fromarray(np.clip(np.rint(a * (255.0 / peak)), 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBa", "La"):
        return im.convert("RGBA" if im.mode == "RGBa" else "LA")
    return im.convert("RGBA" if "A" in im.mode else "RGB")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file → (H, W, C) uint8. Raises :class:`SnfInputError` with a one-line reason."""
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise SnfInputError(f"{name}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(name) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise SnfInputError(f"{name}: {w}x{h} pixels is more than the {MAX_IMAGE_PIXELS} allowed")
                im.seek(0)
                im = ImageOps.exif_transpose(im)
                im.load()
                arr = np.asarray(to_layout(im))
    except SnfInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise SnfInputError(f"{name}: image has more pixels than allowed ({exc})") from None
    except UnidentifiedImageError:
        raise SnfInputError(f"{name}: not a readable image (unknown or damaged format)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise SnfInputError(f"{name}: cannot decode image: {exc}") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise SnfInputError(f"{name}: image has no pixels")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def check_image_array(pixels: np.ndarray) -> np.ndarray:
    """Validate an in-memory image: (H, W) or (H, W, C) uint8 with C in 1..4 → (H, W, C)."""
    a = np.asarray(pixels)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in LAYOUT_MODES or a.dtype != np.uint8:
        raise SnfInputError(f"image array must be (H, W, C) uint8 with C in 1..4, got {a.shape} {a.dtype}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise SnfInputError("image array has no pixels")
    return np.ascontiguousarray(a)


def image_extension_ok(path: str | os.PathLike) -> bool:
    """Whether Pillow can write a file with this name's extension.

    ``.snf`` never counts, even once :mod:`snfcodec.pillow` has registered it with Pillow: a ``.snf`` file is
    the codec's output, and the CLI and API must behave the same whether or not the plugin was imported.
    """
    Image.init()
    ext = os.path.splitext(os.fspath(path))[1].lower()
    return ext != SNF_EXTENSION and ext in Image.registered_extensions()


def to_pillow(pixels: np.ndarray) -> Image.Image:
    """(H, W, C) uint8 → a Pillow image in the layout's mode (L, LA, RGB, RGBA)."""
    return Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels, LAYOUT_MODES[pixels.shape[2]])


def on_white(im: Image.Image) -> Image.Image:
    """LA/RGBA composited onto white → L/RGB (for formats and displays without alpha); other modes as they are."""
    if im.mode not in ("LA", "RGBA"):
        return im
    base = Image.new(im.mode[:-1], im.size, "white")
    base.paste(im.convert(im.mode[:-1]), mask=im.getchannel("A"))
    return base


def write_image(path: str | os.PathLike, pixels: np.ndarray) -> None:
    """Write (H, W, C) uint8 pixels; the format follows the file extension.

    Formats without alpha (JPEG, BMP) get the image composited onto white; JPEG is written at quality 95.
    """
    name = os.fspath(path)
    Image.init()
    fmt = Image.registered_extensions().get(os.path.splitext(name)[1].lower())
    if fmt is None:
        raise SnfInputError(f"{name}: unknown image extension; use e.g. .png, .jpg, .webp, .bmp, .tif")
    im = to_pillow(pixels)
    options = {}
    if fmt in ("JPEG", "BMP", "PPM", "EPS", "PCX"):
        im = on_white(im)
    if fmt == "JPEG":
        options["quality"] = 95
    im.save(name, format=fmt, **options)


# FFmpeg's default layout for each channel count (the channel order a decoded file gets).
AUDIO_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
AUDIO_CODECS = {".wav": ("wav", "pcm_s16le"), ".flac": ("flac", "flac")}
MAX_AUDIO_SAMPLES = 1 << 31  # values (samples × channels) one input may hold


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read the first audio stream → ((N, C) float32 in [-1, 1], sample rate). Raises :class:`SnfInputError`."""
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise SnfInputError(f"{name}: no such file")
    try:
        with av.open(name) as container:
            if not container.streams.audio:
                raise SnfInputError(f"{name}: no audio stream")
            stream = container.streams.audio[0]
            channels = len(stream.layout.channels)
            rate = stream.rate
            if not channels or not rate:
                raise SnfInputError(f"{name}: audio stream has no channels or no sample rate")
            if channels > max(AUDIO_LAYOUTS):
                raise SnfInputError(f"{name}: {channels} channels; at most {max(AUDIO_LAYOUTS)} are supported")
            buffer, total = np.empty(_expected_values(container, stream, channels), np.float32), 0
            for chunk in decoded_chunks(container, stream):
                if total + chunk.size > MAX_AUDIO_SAMPLES:
                    raise SnfInputError(f"{name}: more than {MAX_AUDIO_SAMPLES} audio values")
                if total + chunk.size > buffer.size:  # the container's duration was short or unknown
                    buffer = np.resize(buffer, max(total + chunk.size, buffer.size * 3 // 2))
                buffer[total:total + chunk.size] = chunk
                total += chunk.size
    except SnfInputError:
        raise
    except av.error.FFmpegError as exc:
        raise SnfInputError(f"{name}: cannot decode audio: {exc.strerror or exc}") from None
    if total == 0:
        raise SnfInputError(f"{name}: audio has no samples")
    samples = buffer[:total] if total * 8 >= buffer.size * 7 else buffer[:total].copy()
    return np.clip(samples, -1.0, 1.0, out=samples).reshape(-1, channels), int(rate)


def _expected_values(container, stream, channels: int) -> int:
    """Values (samples × channels) the stream should decode to, from its declared duration, so that an hour of
    audio is read into one array without a second copy; a small start when nothing is declared."""
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / av.time_base
    else:
        seconds = 0.0
    return int(min(MAX_AUDIO_SAMPLES, max(1 << 16, math.ceil(seconds * stream.rate) * channels + (1 << 12))))


def decoded_chunks(container, stream, rate: int | None = None) -> Iterator[np.ndarray]:
    """Decode an audio stream to interleaved float32 blocks (flat arrays) at ``rate`` (default: the stream's),
    resampler flushed at the end."""
    resampler = av.AudioResampler(format="flt", layout=stream.layout, rate=rate or stream.rate)
    for frame in container.decode(stream):
        for out in resampler.resample(frame):
            yield out.to_ndarray().reshape(-1)
    for out in resampler.resample(None):
        yield out.to_ndarray().reshape(-1)


def encode_pcm(target, container_format: str, codec: str, samples: np.ndarray, rate: int,
               bit_rate: int | None = None, stream_rate: int | None = None) -> None:
    """Encode (N, C) float samples in [-1, 1] at ``rate`` with an FFmpeg encoder into ``target`` (a path or
    file object), at ``stream_rate`` (default: ``rate``; FFmpeg resamples on the way).

    The samples pass through 16-bit PCM, as they would through a WAV file, then whatever sample format the
    encoder wants.
    """
    layout = AUDIO_LAYOUTS[samples.shape[1]]
    pcm = np.clip(np.rint(samples * 32768.0), -32768, 32767).astype(np.int16)
    stream_rate = stream_rate or rate
    with av.open(target, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=stream_rate, layout=layout)
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=stream_rate)

        def mux(frame):
            for packet in stream.encode(frame):
                container.mux(packet)

        for start in range(0, len(pcm), 4096):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[start:start + 4096]).reshape(1, -1),
                                               format="s16", layout=layout)
            frame.rate = rate
            for converted in resampler.resample(frame):
                mux(converted)
        for converted in resampler.resample(None):
            mux(converted)
        mux(None)


def check_audio_array(samples: np.ndarray) -> np.ndarray:
    """Validate in-memory audio: (N,) or (N, C) floats in [-1, 1], C in 1..8 → (N, C) float32."""
    a = np.asarray(samples)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.floating) or not 1 <= a.shape[1] <= max(AUDIO_LAYOUTS):
        raise SnfInputError(f"audio array must be (samples, channels) floats with 1..8 channels, got "
                            f"{a.shape} {a.dtype}")
    if a.shape[0] == 0:
        raise SnfInputError("audio has no samples")
    band = max(1, (1 << 22) // a.shape[1])  # checked in bands: no signal-sized temporaries for an hour of audio
    inside = True
    for r in range(0, len(a), band):
        part = a[r:r + band]
        if not np.all(np.isfinite(part)):
            raise SnfInputError("audio contains NaN or infinite samples")
        inside = inside and bool(np.all(np.abs(part) <= 1.0))
    if inside and a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable:
        return a  # used as it is (never written to)
    return np.ascontiguousarray(np.clip(a, -1.0, 1.0), dtype=np.float32)


def audio_extension_ok(path: str | os.PathLike) -> bool:
    """Whether the decoder writes audio under this name's extension (.wav, .flac)."""
    return os.path.splitext(os.fspath(path))[1].lower() in AUDIO_CODECS


# Extensions taken as sound when walking a folder (any file named explicitly is tried through PyAV anyway).
AUDIO_INPUT_EXTENSIONS = frozenset({".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif",
                                    ".aiff", ".wma", ".mka", ".webm"})


def is_media_file(path: str | os.PathLike) -> bool:
    """Whether a file found in a folder walk is an image or a sound to encode (by extension)."""
    return image_extension_ok(path) or os.path.splitext(os.fspath(path))[1].lower() in AUDIO_INPUT_EXTENSIONS


def read_media(path: str | os.PathLike) -> np.ndarray | tuple[np.ndarray, int]:
    """An image file (by Pillow's extensions) → (H, W, C) uint8; anything else → ((N, C) float32, rate)."""
    if os.fspath(path).lower().endswith(SNF_EXTENSION):
        raise SnfInputError(f"{os.fspath(path)}: already a .snf file; decode it to an image or a sound first")
    return read_image(path) if image_extension_ok(path) else read_audio(path)


def write_audio(path: str | os.PathLike, samples: np.ndarray, rate: int) -> None:
    """Write (N, C) float samples in [-1, 1] as 16-bit PCM in WAV or FLAC (by extension)."""
    name = os.fspath(path)
    ext = os.path.splitext(name)[1].lower()
    if ext not in AUDIO_CODECS:
        raise SnfInputError(f"{name}: unknown audio extension; use .wav or .flac")
    container_format, codec = AUDIO_CODECS[ext]
    encode_pcm(name, container_format, codec, samples, rate)
