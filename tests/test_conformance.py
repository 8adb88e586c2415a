"""The committed conformance files decode to the committed SHA-256 digests (formats/snf.md §7)."""

import hashlib
import json
import os

import pytest

import snfcodec

DIR = os.path.join(os.path.dirname(__file__), "..", "formats", "conformance")
with open(os.path.join(DIR, "manifest.json")) as f:
    MANIFEST = json.load(f)


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_conformance_file_decodes_to_its_digest(entry):
    with open(os.path.join(DIR, entry["file"]), "rb") as f:
        data = f.read()
    for case in entry["decodes"]:
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in case["request"].items()}
        out = snfcodec.decode(data, **kwargs)
        digest = hashlib.sha256(out.astype(out.dtype.newbyteorder("<")).tobytes()).hexdigest()
        assert digest == case["sha256"], (entry["file"], case["request"])


def test_conformance_files_are_valid_and_described():
    assert len(MANIFEST) >= 4
    infos = [snfcodec.info(os.path.join(DIR, e["file"])) for e in MANIFEST]
    assert {"L", "RGB", "RGBA"} <= {i["layout"] for i in infos}
    assert {1, 2} <= {i["channels"] for i in infos if i["kind"] == "audio"}
    assert {1, 2, 3} <= {i["version"] for i in infos}  # without and with a learned prior; latent grids
    assert {"image", "audio"} == {i["kind"] for i in infos if i["version"] == 3}  # latent grids, spectral field
