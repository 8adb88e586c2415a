import json
import os

import pytest
from click.testing import CliRunner
from PIL import Image

from snfcodec.cli import main


@pytest.fixture()
def photo_file(tmp_path, photo32):
    path = tmp_path / "photo.png"
    Image.fromarray(photo32).save(path)
    return path


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_encode_decode_info_round_trip(tmp_path, photo_file):
    snf = tmp_path / "photo.snf"
    r = _run("encode", photo_file, "-o", snf, "--bpp", 6, "--steps", 30, "--json")
    assert r.exit_code == 0, r.output
    stats = json.loads(r.output)
    assert stats["bytes"] == os.path.getsize(snf)
    assert stats["bpp"] == pytest.approx(8 * stats["bytes"] / (32 * 32))
    for key in ("psnr", "seconds", "steps"):
        assert key in stats

    out = tmp_path / "big.png"
    r = _run("decode", snf, "-o", out, "--scale", 2)
    assert r.exit_code == 0, r.output
    assert Image.open(out).size == (64, 64)

    r = _run("decode", snf, "-o", tmp_path / "crop.jpg", "--crop", "0,0,16,8", "--size", "32x16")
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "crop.jpg").size == (32, 16)

    r = _run("info", snf, "--json")
    assert r.exit_code == 0 and json.loads(r.output)["shape"] == [32, 32]
    r = _run("info", snf)
    assert r.exit_code == 0 and "32x32" in r.output and "tiles" in r.output


def test_errors_are_one_line_with_status_1_and_leave_no_file(tmp_path, photo_file):
    bad = tmp_path / "bad.snf"
    bad.write_bytes(b"\x89SNF" + b"\x00" * 50)
    out = tmp_path / "out.png"
    r = _run("decode", bad, "-o", out)
    assert r.exit_code == 1
    assert "error" in r.output and "Traceback" not in r.output
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if "part" in p.name] == []

    notimg = tmp_path / "fake.png"
    notimg.write_bytes(b"hello")
    r = _run("encode", notimg, "-o", tmp_path / "x.snf")
    assert r.exit_code == 1 and "fake.png" in r.output
    assert not (tmp_path / "x.snf").exists()

    r = _run("encode", photo_file, "-o", photo_file)
    assert r.exit_code == 1 and "overwrite the input" in r.output

    r = _run("encode", photo_file, "-o", tmp_path / "t.snf", "--tile", "4")
    assert r.exit_code == 1 and "tile must be" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "t.snf").exists()


def test_existing_output_survives_a_failed_decode(tmp_path):
    out = tmp_path / "keep.png"
    out.write_bytes(b"precious")
    bad = tmp_path / "bad.snf"
    bad.write_bytes(b"garbage")
    assert _run("decode", bad, "-o", out).exit_code == 1
    assert out.read_bytes() == b"precious"


def test_usage_errors_exit_2(tmp_path, photo_file):
    assert _run("encode", photo_file).exit_code == 2  # no -o
    assert _run("decode", photo_file, "-o", tmp_path / "x.png", "--size", "abc").exit_code == 2


def _bad_inputs(tmp_path, photo32):
    """(name, path) of inputs a user may hand the encoder by mistake."""
    import struct
    import wave
    import zlib

    cases = {}
    (tmp_path / "empty.png").write_bytes(b"")
    cases["empty file"] = tmp_path / "empty.png"
    (tmp_path / "text.jpg").write_bytes(b"this is not a picture\n" * 20)
    cases["non-image bytes"] = tmp_path / "text.jpg"
    Image.fromarray(photo32).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    cases["truncated PNG"] = tmp_path / "truncated.png"
    Image.fromarray(photo32).save(tmp_path / "whole.jpg")
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    cases["truncated JPEG"] = tmp_path / "truncated.jpg"
    Image.new("RGB", (1, 1)).save(tmp_path / "one.png")
    cases["1x1 image"] = tmp_path / "one.png"

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                                        + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    cases["huge declared size"] = tmp_path / "bomb.png"
    with wave.open(str(tmp_path / "silent.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
    cases["audio with 0 samples"] = tmp_path / "silent.wav"
    (tmp_path / "noise.ogg").write_bytes(bytes(range(256)) * 8)
    cases["unsupported/garbage audio"] = tmp_path / "noise.ogg"
    cases["missing file"] = tmp_path / "does_not_exist.png"
    return cases


def test_bad_inputs_fail_cleanly(tmp_path, photo32):
    for name, path in _bad_inputs(tmp_path, photo32).items():
        out = tmp_path / f"out_{path.stem}.snf"
        r = CliRunner().invoke(main, ["encode", str(path), "-o", str(out), "--steps", "5"])
        assert r.exit_code == 1, (name, r.output)
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("snfcodec: error: ") and path.name in lines[0], (name, r.output)
        assert "Traceback" not in r.output
        assert not out.exists(), name
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


def test_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    r = CliRunner().invoke(main, ["encode", str(bad), "-o", str(tmp_path / "x.snf"), "--debug"])
    assert r.exit_code != 0 and r.exception is not None


def test_encode_many_files_into_a_folder(tmp_path, photo32):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(photo32[:, i:i + 24]).save(src / f"p{i}.png")
    (src / "bad.png").write_bytes(b"nope")
    out = tmp_path / "out"
    r = _run("encode", src, "-o", out, "--bpp", 8, "--steps", 10, "--json")
    assert r.exit_code == 1  # one input failed; the others were written
    lines = [json.loads(line) for line in r.output.splitlines()]
    assert sorted(d["status"] for d in lines) == ["error", "ok", "ok", "ok"]
    assert sorted(p.name for p in out.iterdir()) == ["p0.snf", "p1.snf", "p2.snf"]
    ok = next(d for d in lines if d["status"] == "ok")
    assert ok["bytes"] == os.path.getsize(ok["output"]) and ok["bpp"] <= 8
    r = _run("encode", src / "p0.png", src / "p1.png", "-o", out, "--bpp", 8, "--steps", 10, "--skip-existing")
    assert r.exit_code == 0 and r.output.count("exists, skipped") == 2, r.output


@pytest.mark.parametrize("flag", [["--ray"], ["--jobs", "2"]])
def test_ray_and_jobs_need_an_output_folder(tmp_path, photo_file, flag):
    r = _run("encode", photo_file, "-o", tmp_path / "one.snf", *flag)
    assert r.exit_code == 2 and "output folder" in r.output and flag[0] in r.output
