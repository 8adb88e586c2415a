"""The committed conformance files decode to the committed SHA-256 digests (formats/snf.md §7)."""

import importlib.util
import json
import math
import os

import numpy as np
import pytest

import snfcodec

DIR = os.path.join(os.path.dirname(__file__), "..", "formats", "conformance")
with open(os.path.join(DIR, "manifest.json")) as f:
    MANIFEST = json.load(f)
_spec = importlib.util.spec_from_file_location("generate", os.path.join(DIR, "generate.py"))
generate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generate)


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_conformance_file_decodes_to_its_digest(entry):
    """Images decode to their digests exactly; audio too, or — on a machine whose float sums round otherwise
    (§7's tolerance: every sample within 10⁻⁶) — to block sums within that tolerance."""
    with open(os.path.join(DIR, entry["file"]), "rb") as f:
        data = f.read()
    for case in entry["decodes"]:
        out = generate.decode(data, case["request"])
        if generate.sha256(out) == case["sha256"]:
            continue
        assert out.dtype != np.uint8, (entry["file"], case["request"], "an image decodes exactly")
        block = math.ceil(out.size / generate.BLOCKS)
        np.testing.assert_allclose(generate.block_sums(out), case["block_sums"], rtol=0, atol=block * 1e-6,
                                   err_msg=f"{entry['file']} {case['request']}")


def test_conformance_files_are_valid_and_described():
    assert len(MANIFEST) >= 4
    infos = [snfcodec.info(os.path.join(DIR, e["file"])) for e in MANIFEST]
    assert {"L", "RGB", "RGBA"} <= {i["layout"] for i in infos}
    assert {1, 2} <= {i["channels"] for i in infos if i["kind"] == "audio"}
    assert {1, 2, 3} <= {i["version"] for i in infos}  # without and with a learned prior; latent grids
    assert {"image", "audio"} == {i["kind"] for i in infos if i["version"] == 3}  # latent grids, spectral field
    # latent grids from the pixels' own scale and from 1:2 (§8's F)
    assert {0, 1} == {i["field"]["first"] for i in infos if i["version"] == 3 and i["kind"] == "image"}
