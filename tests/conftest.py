"""Shared fixtures: tiny signals so that every fit in the default run takes well under a second or two."""

import os
import struct
import zlib

import numpy as np
import pytest
import torch

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "samples")

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def photo32() -> np.ndarray:
    """A 32×32 RGB crop of a shipped photo: (32, 32, 3) uint8."""
    from PIL import Image

    with Image.open(os.path.join(SAMPLES, "images", "astronaut_face.png")) as im:
        return np.asarray(im.convert("RGB").resize((32, 32), Image.LANCZOS))


@pytest.fixture(scope="session")
def tiny_snf(photo32) -> bytes:
    """A small valid .snf file, encoded once per session."""
    import snfcodec

    return snfcodec.encode(photo32, bpp=8.0, steps=40, seed=0).data


@pytest.fixture(scope="session")
def resign():
    """Recompute a .snf file's CRC-32 after tampering: what a crafted (not merely damaged) file looks like."""

    def _resign(data: bytes) -> bytes:
        body = data[:-4]
        return body + struct.pack("<I", zlib.crc32(body))

    return _resign
