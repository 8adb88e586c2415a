"""Long recordings: peak memory and time of ``snfcodec encode`` on minutes to an hour of stereo audio.

    python -m snfcodec.eval.longaudio SOUND [--minutes 1,10,60] [--kbps 64] [--effort fast] [--steps N]
                                      [--out DIR]

For each duration a stereo recording is built by concatenating SOUND (a shipped or public recording; the right
channel is the same sound half its length later) and written as 16-bit WAV, block by block; then the command
line encoder runs on it in a process of its own, and that process's peak resident memory (what
``/usr/bin/time -v`` reports as its maximum resident set size) is read with ``os.wait4``. Prints one line per
duration and writes longaudio.json with ``--out``. The encoder's own time per fitting step grows with the
duration; an hour at ``--effort fast`` (100 + 20 steps) takes hours on a 2-core CPU, so ``--steps`` measures
the memory of every stage in less.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import wave

import click
import numpy as np

from .. import presets
from ..media import read_audio

BLOCK = 1 << 20  # samples written at a time


def write_long(sound: np.ndarray, rate: int, seconds: float, path: str) -> int:
    """Write ``seconds`` of stereo 16-bit WAV built from the mono ``sound`` (N,) repeated; returns the samples."""
    total = int(round(seconds * rate))
    n = len(sound)
    pcm = np.clip(np.rint(sound * 32767.0), -32768, 32767).astype(np.int16)
    with wave.open(path, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        for start in range(0, total, BLOCK):
            idx = np.arange(start, min(start + BLOCK, total))
            block = np.stack([pcm[idx % n], pcm[(idx + n // 2) % n]], axis=1)
            w.writeframes(block.tobytes())
    return total


def encode_measured(path: str, out: str, kbps: float, effort: str, steps: int | None) -> dict:
    """Run ``snfcodec encode`` on ``path``; its JSON result with the process's peak RSS (MB) added."""
    command = [sys.executable, "-m", "snfcodec.cli", "encode", path, "-o", out, "--kbps", str(kbps),
               "--effort", effort, "--json", "--quiet"]
    if steps is not None:
        command += ["--steps", str(steps)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise click.ClickException(f"encoding {path} failed (exit status {proc.returncode})")
    row = json.loads(stdout.strip().splitlines()[-1])
    row["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux: KB
    return row


@click.command()
@click.argument("sound", type=click.Path(dir_okay=False, exists=True))
@click.option("--minutes", default="1,10,60", show_default=True, help="Durations to build, comma-separated.")
@click.option("--kbps", type=float, default=64.0, show_default=True)
@click.option("--effort", type=click.Choice(presets.EFFORTS), default="fast", show_default=True)
@click.option("--steps", type=click.IntRange(min=0), help="Step budget [default: the effort's].")
@click.option("--out", type=click.Path(file_okay=False), help="Also write longaudio.json here.")
def main(sound, minutes, kbps, effort, steps, out):
    """Peak memory and seconds of encodes of long stereo recordings built from SOUND."""
    try:
        durations = [float(m) for m in minutes.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated minutes, got {minutes!r}", param_hint="--minutes")
    samples, rate = read_audio(sound)
    mono = samples.mean(axis=1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in durations:
            wav, snf = os.path.join(tmp, f"long_{m:g}min.wav"), os.path.join(tmp, f"long_{m:g}min.snf")
            frames = write_long(mono, rate, 60 * m, wav)
            row = encode_measured(wav, snf, kbps, effort, steps)
            os.remove(wav)
            row.update(minutes=m, frames=frames, sample_rate=rate, input_mb=frames * 2 * 4 / 2**20)
            rows.append(row)
            click.echo(f"{m:g} min ({frames} stereo samples at {rate} Hz, {row['input_mb']:.0f} MB as float32): "
                       f"{row['seconds']:.1f} s ({row['seconds'] / m:.1f} s/min, fitting "
                       f"{100 * row['fit_seconds'] / row['seconds']:.1f} %), {row['steps']}+{row['qat_steps']} "
                       f"steps, {row['kbps']:.2f} kb/s, {row['psnr']:.2f} dB, peak RSS {row['peak_rss_mb']:.0f} MB")
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "longaudio.json"), "w") as f:
            json.dump({"sound": sound, "kbps": kbps, "effort": effort, "steps": steps, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
