"""Regenerate the conformance files: ``python formats/conformance/generate.py``.

Each case encodes a small signal derived from a shipped sample and records the SHA-256 of the reference
decoder's output (raw uint8 samples, row-major (H, W, C)) at 1× and at the listed extra decode requests.
Run it only when the format changes; the test suite checks the committed files against the manifest.
"""

import hashlib
import json
import os

import numpy as np
from PIL import Image

import snfcodec

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(HERE, "..", "..", "samples", "images", "coffee.png")

CASES = [
    # name, mode, size (w, h), encode options, extra decodes
    ("rgb_24x16", "RGB", (24, 16), {"bpp": 8.0, "steps": 60}, [{"scale": 2}, {"crop": [4, 2, 10, 9], "scale": 1.5}]),
    ("gray_20x20", "L", (20, 20), {"bpp": 6.0, "steps": 60}, [{"size": [33, 17]}]),
    ("rgba_16x16", "RGBA", (16, 16), {"bpp": 12.0, "steps": 40, "alpha": 1.5}, [{"scale": 0.5}]),
    ("rgb_tiled_80x72", "RGB", (80, 72), {"bpp": 3.0, "steps": 40}, [{"scale": 1.37}]),
]


def decoded_sha256(data: bytes, request: dict) -> str:
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in request.items()}
    return hashlib.sha256(snfcodec.decode(data, **kwargs).tobytes()).hexdigest()


def main() -> None:
    manifest = []
    with Image.open(SAMPLE) as src:
        for name, mode, size, options, extra in CASES:
            img = src.convert("RGBA").resize(size, Image.LANCZOS)
            if mode == "RGBA":  # give the alpha channel some structure
                a = np.asarray(img).copy()
                a[:, :, 3] = np.linspace(40, 255, size[0], dtype=np.uint8)[None, :]
                img = Image.fromarray(a, "RGBA")
            pixels = np.asarray(img.convert(mode))
            data = snfcodec.encode(pixels, seed=0, **options).data
            with open(os.path.join(HERE, f"{name}.snf"), "wb") as f:
                f.write(data)
            requests = [{}] + extra
            manifest.append({"file": f"{name}.snf", "decodes": [
                {"request": r, "sha256": decoded_sha256(data, r)} for r in requests]})
    with open(os.path.join(HERE, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
