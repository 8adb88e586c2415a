import os
import sys

import numpy as np
import pytest
from PIL import Image

import snfcodec
from snfcodec import batch, codec
from snfcodec.media import write_audio

FAST = dict(bpp=12.0, steps=15)


@pytest.fixture()
def collection(tmp_path, photo32):
    """Four 16x16 photos (one group), one 24x16 photo, a sound, a damaged file and a non-media file."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    for i, (y, x) in enumerate([(0, 0), (0, 16), (16, 0), (16, 16)]):
        folder = root if i < 2 else root / "sub"
        Image.fromarray(np.ascontiguousarray(photo32[y:y + 16, x:x + 16])).save(folder / f"p{i}.png")
    Image.fromarray(np.ascontiguousarray(photo32[:24, :16])).save(root / "tall.png")
    t = np.arange(1000) / 8000
    write_audio(str(root / "tone.wav"), (0.4 * np.sin(2 * np.pi * 300 * t))[:, None].astype(np.float32), 8000)
    (root / "broken.png").write_bytes(b"not a png")
    (root / "notes.txt").write_text("not media")
    (root / ".hidden.png").write_bytes(b"skipped")
    return root


def test_plan_walks_folders_mirrors_paths_and_refuses_clashes(collection, tmp_path):
    out = tmp_path / "out"
    (tmp_path / "extra").mkdir()
    clash = tmp_path / "extra" / "p0.jpg"
    Image.new("RGB", (8, 8)).save(clash)
    jobs, refused = batch.plan([collection, clash, tmp_path / "missing.png"], out)
    rel = sorted(os.path.relpath(j.output, out) for j in jobs)
    assert rel == ["broken.snf", "p0.snf", "p1.snf", "sub/p2.snf", "sub/p3.snf", "tall.snf", "tone.snf"]
    assert [r.status for r in refused] == ["error", "error"]
    assert "same output" in refused[0].error and "no such file" in refused[1].error


def test_batched_files_get_the_quality_of_one_file_encodes(collection, tmp_path):
    out = tmp_path / "out"
    results = {r.source: r for r in snfcodec.encode_many([collection], out, kbps=48, **FAST)}
    broken = results.pop(str(collection / "broken.png"))
    assert broken.status == "error" and "broken.png" in broken.error  # reported; the others went on
    assert len(results) == 6
    for source, r in results.items():
        assert r.status == "ok", r.error
        # Each input takes the rate of its kind: bpp for the photos, kbps for the sound.
        rate = dict(kbps=48) if source.endswith(".wav") else dict(bpp=FAST["bpp"])
        alone = snfcodec.encode(source, steps=FAST["steps"], **rate)
        assert open(r.output, "rb").read() == r.result.data
        # Same initialisation, gradients and rules; only float round-off differs (batched kernels).
        assert abs(r.result.psnr - alone.psnr) < 0.05
        assert (r.result.bpp or 0) <= FAST["bpp"] and (r.result.kbps or 0) <= 48  # rate control per file
    again = {r.source: r.result.data for r in snfcodec.encode_many([collection], kbps=48, **FAST) if r.result}
    assert again == {s: r.result.data for s, r in results.items()}  # a batch encode is reproducible


def test_audio_recordings_of_one_length_are_batched_too(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        t = np.arange(1200) / 8000
        x = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t) + 0.05 * rng.standard_normal(1200)
        paths.append(tmp_path / f"s{i}.wav")
        write_audio(str(paths[-1]), x[:, None].astype(np.float32), 8000)
    results = list(snfcodec.encode_many(paths, kbps=48, steps=15))
    assert [r.status for r in results] == ["ok"] * 3 and all(r.output is None for r in results)
    for path, r in zip(paths, results):
        alone = snfcodec.encode(path, kbps=48, steps=15)
        assert abs(r.result.psnr - alone.psnr) < 0.05 and r.result.kbps <= 48


def test_groups_are_cut_to_the_work_bound(monkeypatch, photo32):
    opts = codec.EncodeOptions(**FAST)
    items = [codec.prepare_image(photo32[:16, :16], opts) for _ in range(5)] + [codec.prepare_image(photo32, opts)]
    width = items[0].arch.field.width
    monkeypatch.setattr(batch, "GROUP_WORK", 2 * 256 * width)  # two 16x16 images per group
    assert batch.groups(items) == [[0, 1], [2, 3], [4], [5]]
    monkeypatch.setattr(batch, "GROUP_WORK", 1 << 30)
    assert batch.groups(items, parts=2) == [[0, 1, 2], [3, 4], [5]]  # one piece per worker where possible
    monkeypatch.setattr(batch, "GROUP_WORK", 3 * 256 * width)  # at most three per group
    # Balanced for two workers: six groups of 3, 3, 3, 2, 2, 2 rather than five of three.
    assert batch.groups(items[:5] * 3, parts=2) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10], [11, 12], [13, 14]]


def test_worker_processes_write_the_files_an_in_process_batch_writes(collection, tmp_path):
    images = [collection / "p0.png", collection / "p1.png", collection / "sub" / "p2.png", collection / "tall.png"]
    here = {r.source: r for r in snfcodec.encode_many(images, tmp_path / "here", **FAST)}
    pool = {r.source: r for r in snfcodec.encode_many(images, tmp_path / "pool", jobs=2, **FAST)}
    assert set(pool) == set(here) and all(r.status == "ok" for r in pool.values())
    for source, r in pool.items():
        assert open(r.output, "rb").read() == r.result.data
        # One thread instead of several: the same fit up to float round-off.
        assert abs(r.result.psnr - here[source].result.psnr) < 0.05 and r.result.bpp <= FAST["bpp"]


@pytest.mark.parametrize("jobs, cluster, message", [(-1, None, "whole number"), (1.5, None, "whole number"),
                                                    (2, "local", "Ray cluster")])
def test_bad_jobs_are_clear_errors(photo32, tmp_path, jobs, cluster, message):
    path = tmp_path / "p.png"
    Image.fromarray(photo32).save(path)
    with pytest.raises(snfcodec.SnfInputError, match=message):
        list(snfcodec.encode_many([path], jobs=jobs, cluster=cluster, **FAST))


def test_an_interrupted_run_resumes_with_skip_existing_and_writes_every_file_once(collection, tmp_path):
    out = tmp_path / "out"
    images = [collection / "p0.png", collection / "p1.png", collection / "tall.png"]
    first = snfcodec.encode_many(images, out, **FAST)
    assert next(first).status == "ok"
    first.close()  # stopped after the first file was written
    written = sorted(p.name for p in out.iterdir())
    assert len(written) >= 1 and not [p for p in out.iterdir() if ".part" in p.name]
    second = list(snfcodec.encode_many(images, out, skip_existing=True, **FAST))
    assert sorted(r.status for r in second) == sorted(["skipped"] * len(written) + ["ok"] * (3 - len(written)))
    assert sorted(p.name for p in out.iterdir()) == ["p0.snf", "p1.snf", "tall.snf"]


def test_ray_path_gives_the_same_files_on_a_local_cluster(collection, tmp_path):
    pytest.importorskip("ray")
    images = [collection / "p0.png", collection / "p1.png", collection / "tall.png"]
    local = {r.source: r.result.psnr for r in snfcodec.encode_many(images, **FAST)}
    out = tmp_path / "ray"
    results = list(snfcodec.encode_many(images, out, cluster="local", **FAST))
    assert sorted(r.status for r in results) == ["ok"] * 3
    for r in results:  # groups are cut per worker on a cluster: the same files up to float round-off
        assert open(r.output, "rb").read() == r.result.data
        assert abs(r.result.psnr - local[r.source]) < 0.05


def test_ray_missing_is_a_clear_error(monkeypatch, photo32, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were not installed
    path = tmp_path / "p.png"
    Image.fromarray(photo32).save(path)
    with pytest.raises(snfcodec.SnfInputError, match=r"snfcodec\[cluster\]"):
        list(snfcodec.encode_many([path], cluster="local", **FAST))
