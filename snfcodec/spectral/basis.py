"""The audio field's basis: windowed sinusoids on a lattice of (frame, frequency), a function of continuous time.

Frame m (m = 0 … F − 1) spans original-sample time t ∈ [(m − 1)·N − ½, (m + 1)·N − ½]; its component k
(k = 0 … N − 1) is

    φ_mk(t) = √(2/N) · w(τ) · cos(π/N · (τ + ½ + N/2) · (k + ½)),   τ = t − (m − 1)·N,
    w(τ) = sin(π · (τ + ½) / (2N)),

a sine-windowed cosine of frequency (k + ½)/(2N) cycles per original sample. At the integer instants t = n these
are the MDCT's synthesis functions, which overlap-add to the identity (time-domain aliasing cancellation), so the
coefficients are the field's least-squares fit and coefficient errors are sample errors (orthonormal). At any
other instants the same sum is the field sampled there: decoding at another rate evaluates it at t_j = j·old/new
(sample 0 stays at t = 0, so a 2× decode interleaves the original samples, as for versions 1 and 2). Below the
original rate the decoder low-passes the field first (:mod:`.lowpass`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

MAX_BASIS_VALUES = 1 << 22  # samples × components of one basis matrix held at a time


def frames(length: int, N: int) -> int:
    """Frames that cover ``length`` samples with hop N (one extra, so every sample sees two frames)."""
    return -(-length // N) + 1


def _basis(tau: torch.Tensor, N: int, K: int) -> torch.Tensor:
    """φ at frame-relative times τ (n,) float64 for components 0..K−1 → (n, K) float64."""
    w = torch.sin(math.pi * (tau + 0.5) / (2 * N)) * math.sqrt(2.0 / N)
    k = torch.arange(K, dtype=torch.float64) + 0.5
    return w[:, None] * torch.cos((math.pi / N) * (tau + 0.5 + N / 2)[:, None] * k[None])


def analyse(samples: np.ndarray, N: int, first: int = 0, stop: int | None = None) -> np.ndarray:
    """(L, C) float samples → coefficients (C, F, N) float64 of frames ``first`` … ``stop`` − 1 (default: all
    F = frames(L, N)): the MDCT with the sine window. Frame m reads samples (m − 1)·N … (m + 1)·N − 1, zero
    outside the signal."""
    L, C = samples.shape
    stop = frames(L, N) if stop is None else stop
    lo, hi = (first - 1) * N, stop * N
    segment = np.zeros((hi - lo, C))
    a, b = max(lo, 0), min(hi, L)
    if b > a:
        segment[a - lo:b - lo] = samples[a:b]
    basis = _basis(torch.arange(2 * N, dtype=torch.float64), N, N).numpy()  # (2N, N)
    # frame m is two consecutive hops: the segment's hops m − first and m − first + 1
    hops = segment.reshape(stop - first + 1, N, C).transpose(2, 0, 1)  # (C, hops, N)
    return hops[:, :-1] @ basis[:N] + hops[:, 1:] @ basis[N:]


def output_length(length: int, rate: int, new_rate: int) -> int:
    return max(1, round(length * new_rate / rate))


def first_sample(m: int, N: int, rate: int, new_rate: int) -> int:
    """The first output sample j (t_j = j·rate/new) at or after the start of frame m's support, (m − 1)·N − ½."""
    start = 2 * new_rate * (m - 1) * N - new_rate  # in units of 1/(2·new)
    return max(0, -(-start // (2 * rate)))


def _inverse_mdct(coefficients: np.ndarray, N: int) -> np.ndarray:
    """Every frame at its 2N integer instants τ = 0 … 2N − 1: coefficients (C, F, K ≤ N) → (C, F, 2N) float64, by
    one FFT of 2N a frame — Σ_k a_k cos(π/N · (τ + n0)(k + ½)) = Re(e^(iπ(τ + n0)/2N) · Σ_k a_k e^(iπk·n0/N) ·
    e^(2πi·τk/2N)), n0 = ½ + N/2 — the same sum as the basis matrix, in O(N log N) instead of O(N·K)."""
    K = coefficients.shape[-1]
    n0 = 0.5 + N / 2
    z = coefficients * np.exp(1j * math.pi * np.arange(K) * n0 / N)
    tau = np.arange(2 * N)
    y = (np.fft.ifft(z, n=2 * N, axis=-1) * np.exp(1j * math.pi * (tau + n0) / (2 * N))).real * (2 * N)
    return y * (np.sin(math.pi * (tau + 0.5) / (2 * N)) * math.sqrt(2.0 / N))


def _overlap_add(values: np.ndarray, N: int, first: int, origin: int, out: np.ndarray) -> np.ndarray:
    """Frames first … of values (C, F, 2N) at the original rate (frame m's sample τ is n = (m − 1)·N + τ) added
    into out (count, C), which holds samples origin … ."""
    C, F, _ = values.shape
    signal = np.zeros((C, (F + 1) * N))
    signal[:, :F * N] += values[:, :, :N].reshape(C, -1)
    signal[:, N:] += values[:, :, N:].reshape(C, -1)
    start = (first - 1) * N - origin  # out index of signal[0]
    lo, hi = max(0, start), min(len(out), start + signal.shape[1])
    if hi > lo:
        out[lo:hi] += signal[:, lo - start:hi - start].T
    return out


def synthesise(coefficients: np.ndarray, N: int, rate: int, new_rate: int, first: int, origin: int,
               count: int) -> np.ndarray:
    """Frames ``first`` … of coefficients (C, F, K ≤ N: the components from K up are zero) sampled at
    ``new_rate``: their sum at output samples origin … origin + count − 1 → (count, C) float64 (frames reach into
    the samples of their neighbours: callers add overlapping spans).

    Output sample j is at t_j = j·rate/new original samples. In frame f the samples sit at τ_f + i·d
    (d = rate/new; τ_f, the first one's place, from exact rational arithmetic), so each component is
    cos(θ_fk + i·ψ_k) = cos θ_fk·cos(i·ψ_k) − sin θ_fk·sin(i·ψ_k) with ψ_k = d·π(k + ½)/N: two matrices of i·ψ_k
    shared by every frame, two matrix products for all frames at once, whatever the ratio.
    """
    C, F, K = coefficients.shape
    out = np.zeros((count, C))
    if K == 0:
        return out
    if new_rate == rate:
        return _overlap_add(_inverse_mdct(coefficients, N), N, first, origin, out)
    coef = torch.from_numpy(np.ascontiguousarray(coefficients))
    # In units of 1/(2·new): t_j = 2j·rate; frame m's support starts (τ = −½) at 2·new·(m − 1)·N − new.
    two_new = 2 * new_rate
    span = 2 * N * two_new  # a frame's support, in the same units
    starts = [first_sample(first + f, N, rate, new_rate) for f in range(F)]
    phases = [2 * starts[f] * rate - (two_new * (first + f - 1) * N - new_rate) for f in range(F)]  # ≥ 0
    lengths = torch.tensor([max(0, -(-(span - p) // (2 * rate))) for p in phases])  # samples in each support
    tau0 = torch.tensor(phases, dtype=torch.float64) / two_new - 0.5  # (F,)
    k = torch.arange(K, dtype=torch.float64) + 0.5
    theta = (math.pi / N) * (tau0 + 0.5 + N / 2)[:, None] * k[None]  # (F, K)
    a, b = coef * torch.cos(theta), coef * torch.sin(theta)  # (C, F, K)
    step = rate / new_rate
    part_len = max(1, MAX_BASIS_VALUES // K)
    for lo in range(0, int(lengths.max()), part_len):
        i = torch.arange(lo, min(int(lengths.max()), lo + part_len), dtype=torch.float64)
        psi = (math.pi / N) * (i * step)[:, None] * k[None]  # (n_part, K)
        window = torch.sin(math.pi * (tau0[:, None] + i[None] * step + 0.5) / (2 * N)) * math.sqrt(2.0 / N)
        window = window * (i[None] < lengths[:, None])  # (F, n_part): nothing past a frame's support
        values = ((a @ torch.cos(psi).T - b @ torch.sin(psi).T) * window).numpy()  # (C, F, n_part)
        for f in range(F):
            j0 = starts[f] + lo - origin
            lo_, hi_ = max(j0, 0), min(count, j0 + min(values.shape[2], int(lengths[f]) - lo))
            if hi_ > lo_:
                out[lo_:hi_] += values[:, f, lo_ - j0:hi_ - j0].T
    return out
