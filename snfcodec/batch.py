"""Many files at once: inputs that share an architecture are fitted together as one batched model.

A collection of small files is where per-file encoding wastes a machine: a 32×32 thumbnail's fields are so small
that one fitting step is all overhead. Here inputs are read in bounded windows, grouped by
:attr:`snfcodec.codec.Prepared.key` (same kind, shape, channels, rate), and each group — cut to a bounded amount
of work — is fitted as one :class:`~snfcodec.field.BatchedSiren` by :func:`snfcodec.codec.encode_prepared`, which
keeps every per-file rule (initialisation, best state, sensitivities, exact rate control). Groups run in this
process or as Ray tasks; either way the driver writes each output atomically as its group completes, so an
interrupted run loses no finished file and ``skip_existing`` resumes it.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch

from . import codec, presets
from .codec import EncodeOptions, EncodeResult, Prepared
from .errors import SnfError, SnfInputError
from .files import write_bytes_atomic
from .media import SNF_EXTENSION, is_media_file, read_media

GROUP_WORK = 1 << 23  # samples × field width fitted at once: one activation stays ~32 MB, near the caches
WINDOW_VALUES = 1 << 26  # decoded input values held before grouping (256 MB of float32)
WINDOW_FILES = 4096


@dataclass(frozen=True)
class Job:
    source: str  # input path
    output: str | None  # where its .snf goes (None: kept in memory only)


@dataclass
class BatchResult:
    """What happened to one input: ``status`` is "ok" (``result`` set), "skipped" or "error" (``error`` set)."""

    source: str
    output: str | None
    status: str
    result: EncodeResult | None = None
    error: str | None = None

    def summary(self) -> dict:
        """One JSON-ready line."""
        out = {"input": self.source, "output": self.output, "status": self.status}
        if self.result is not None:
            out.update(self.result.summary())
        if self.error is not None:
            out["error"] = self.error
        return out


def plan(sources: Iterable[str | os.PathLike], out_dir: str | os.PathLike | None) -> tuple[list[Job], list[BatchResult]]:
    """Inputs → jobs. Folders are walked (sorted; media files by extension, hidden entries skipped) and their
    relative paths mirrored under ``out_dir``; a file named directly lands at ``out_dir``/its name. Returns the
    jobs and the inputs refused outright (missing, or a second input with the same output)."""
    jobs, refused, taken = [], [], {}
    for source in sources:
        source = os.fspath(source)
        if os.path.isdir(source):
            found = []
            for root, dirs, files in os.walk(source):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found += [os.path.join(root, f) for f in sorted(files) if not f.startswith(".")]
            pairs = [(p, os.path.relpath(p, source)) for p in found if is_media_file(p)]
        elif os.path.isfile(source):
            pairs = [(source, os.path.basename(source))]
        else:
            refused.append(BatchResult(source, None, "error", error=f"{source}: no such file or folder"))
            continue
        for path, rel in pairs:
            output = None if out_dir is None else os.path.join(os.fspath(out_dir),
                                                                os.path.splitext(rel)[0] + SNF_EXTENSION)
            key = path if output is None else os.path.abspath(output)
            if key in taken:
                refused.append(BatchResult(path, output, "error",
                                           error=f"{path}: same output {output} as {taken[key]}; rename one"))
                continue
            taken[key] = path
            jobs.append(Job(path, output))
    return jobs, refused


def run(jobs: list[Job], options: EncodeOptions, skip_existing: bool = False,
        cluster: str | None = None, workers: int = 1) -> Iterator[BatchResult]:
    """Encode ``jobs``, yielding one result per job as its group completes.

    cluster: None runs the groups on this machine; "local" starts a Ray cluster on this machine; anything else
    is a Ray address (e.g. "auto", "ray://head:10001"). workers: without a cluster, how many processes fit
    groups side by side, one torch thread each (1: this process, with torch's threads; 0: one per CPU core).
    """
    runner = _runner(cluster, workers)
    try:
        window: list[tuple[Job, Prepared]] = []
        values = 0
        for job in jobs:
            if skip_existing and job.output is not None and os.path.exists(job.output):
                yield BatchResult(job.source, job.output, "skipped")
                continue
            try:
                item = _prepare(job.source, options)
            except SnfError as exc:
                yield BatchResult(job.source, job.output, "error", error=str(exc))
                continue
            window.append((job, item))
            values += item.target.numel()
            if values >= WINDOW_VALUES or len(window) >= WINDOW_FILES:
                yield from _run_window(window, options, runner)
                window, values = [], 0
        if window:
            yield from _run_window(window, options, runner)
    finally:
        if runner is not None:
            runner.close()


def _prepare(path: str, options: EncodeOptions) -> Prepared:
    """Read and prepare one input. A collection mixes media: each input takes the rate of its kind (bpp and
    tile for images, kbps for sounds) and ignores the other's."""
    try:
        media = read_media(path)
        if isinstance(media, np.ndarray):
            return codec.prepare_image(media, dataclasses.replace(options, kbps=None))
        return codec.prepare_audio(*media, dataclasses.replace(options, bpp=None, tile=None))
    except SnfError as exc:
        raise type(exc)(_naming(path, exc)) from None


def _naming(path: str, exc: Exception) -> str:
    """The error's message, prefixed with the input it is about unless it already names it."""
    message = str(exc)
    return message if message.startswith(path) else f"{path}: {message}"


def groups(items: list[Prepared], parts: int = 1) -> list[list[int]]:
    """Indices of ``items`` by key (first appearance order), each cut into groups of at most GROUP_WORK samples ×
    width (latent images: LATENT_GROUP_PIXELS pixels) and of nearly equal size, their number a multiple of
    ``parts`` where a key has that many inputs (so that ``parts`` workers finish together: 16 photos of 256², at
    most 5 a group, go 4, 4, 4, 4, not 5, 5, 5, 1)."""
    by_key: dict[tuple, list[int]] = {}
    for i, item in enumerate(items):
        by_key.setdefault(item.key, []).append(i)
    out = []
    for indices in by_key.values():
        first = items[indices[0]]
        if first.arch is not None:
            largest = max(1, GROUP_WORK // (first.target.shape[0] * first.arch.field.width))
        else:  # a latent image: alone, or with others of its size where it is batchable
            largest = max(1, presets.LATENT_GROUP_PIXELS // first.original[..., 0].size) if first.batchable else 1
        count = -(-len(indices) // largest)
        count = min(len(indices), -(-count // parts) * parts)
        out += [[int(i) for i in part] for part in np.array_split(indices, count)]
    return out


def _encode_group(items: list[Prepared], options: EncodeOptions) -> list[EncodeResult | SnfError]:
    """One group, whatever stops it as a whole (a bad option) reported for each of its inputs."""
    try:
        return codec.encode_prepared(items, options)
    except SnfError as exc:
        return [exc] * len(items)


def _run_window(window: list[tuple[Job, Prepared]], options: EncodeOptions, runner) -> Iterator[BatchResult]:
    items = [item for _, item in window]
    chunks = groups(items, 1 if runner is None else runner.workers)
    if runner is None:
        completed = ((chunk, _encode_group([items[i] for i in chunk], options)) for chunk in chunks)
    else:
        completed = runner.map(chunks, items, options)
    for chunk, results in completed:
        for i, result in zip(chunk, results):
            yield _finish(window[i][0], result)


def _finish(job: Job, result: EncodeResult | SnfError) -> BatchResult:
    if isinstance(result, SnfError):
        return BatchResult(job.source, job.output, "error", error=_naming(job.source, result))
    if job.output is not None:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(job.output)), exist_ok=True)
            write_bytes_atomic(job.output, result.data)
        except (OSError, SnfError) as exc:
            return BatchResult(job.source, job.output, "error", error=f"{job.output}: cannot write: {exc}")
    return BatchResult(job.source, job.output, "ok", result=result)


def _runner(cluster: str | None, workers: int):
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise SnfInputError(f"jobs must be a whole number >= 0 (0: one per CPU core), got {workers!r}")
    if cluster is not None:
        if workers > 1:
            raise SnfInputError("jobs sets worker processes on this machine; with a Ray cluster leave it at 1")
        return _RayRunner(cluster)
    workers = workers or os.cpu_count() or 1
    return _PoolRunner(workers) if workers > 1 else None


def _one_thread() -> None:
    torch.set_num_threads(1)


class _PoolRunner:
    """Groups in worker processes of this machine, one torch thread each.

    Why: a field's products are small (width ≈ 4–30), so torch's intra-op threads share them poorly: on the
    2-core CPU a 256×256 photo encodes in 13.5 s on two threads and 20.5 s on one, and two one-thread workers
    encode 16 such photos 1.14× faster than the in-process batch, 1,000 thumbnails of 32×32 1.11× faster
    (docs/scale.md). Workers are spawned (never forked from a process whose torch already runs threads); the
    driver keeps writing every output itself.
    """

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_one_thread)

    def map(self, chunks: list[list[int]], items: list[Prepared], options: EncodeOptions):
        """(chunk, results) pairs in completion order."""
        pending = {self.pool.submit(_encode_group, [items[i] for i in chunk], options): chunk for chunk in chunks}
        for future in as_completed(pending):
            chunk = pending[future]
            try:
                results = future.result()
            except BrokenProcessPool as exc:  # a worker killed (e.g. out of memory): those inputs fail, not the run
                results = [SnfInputError(f"worker process failed: {exc}")] * len(chunk)
            yield chunk, results

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


class _RayRunner:
    """Groups as Ray tasks (one CPU each); results come back to the driver, which writes the files."""

    def __init__(self, cluster: str):
        try:
            import ray
        except ImportError:
            raise SnfInputError("--ray needs Ray, which is not installed; pip install 'snfcodec[cluster]'") from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            try:
                ray.init(address=None if cluster == "local" else cluster, include_dashboard=False,
                         logging_level="ERROR", log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise SnfInputError(f"cannot reach the Ray cluster at {cluster}: {exc}") from None
        self.task = ray.remote(num_cpus=1, max_retries=2)(_encode_group)
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def map(self, chunks: list[list[int]], items: list[Prepared], options: EncodeOptions):
        """(chunk, results) pairs in completion order."""
        options_ref = self.ray.put(options)
        pending = {self.task.remote([items[i] for i in chunk], options_ref): chunk for chunk in chunks}
        while pending:
            done, _ = self.ray.wait(list(pending), num_returns=1)
            chunk = pending.pop(done[0])
            try:
                results = self.ray.get(done[0])
            except self.ray.exceptions.RayError as exc:  # a worker lost for good: those inputs fail, not the run
                results = [SnfInputError(f"Ray task failed: {exc.__class__.__name__}")] * len(chunk)
            yield chunk, results

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def encode_many(sources: Iterable[str | os.PathLike], out_dir: str | os.PathLike | None = None, *,
                skip_existing: bool = False, cluster: str | None = None, jobs: int = 1,
                **options) -> Iterator[BatchResult]:
    """See :func:`snfcodec.encode_many`."""
    planned, refused = plan(sources, out_dir)
    yield from refused
    yield from run(planned, EncodeOptions(**options), skip_existing, cluster, jobs)

