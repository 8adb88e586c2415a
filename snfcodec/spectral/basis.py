"""The audio field's basis: windowed sinusoids on a lattice of (frame, frequency), a function of continuous time.

Frame m (m = 0 … F − 1) spans original-sample time t ∈ [(m − 1)·N − ½, (m + 1)·N − ½]; its component k
(k = 0 … N − 1) is

    φ_mk(t) = √(2/N) · w(τ) · cos(π/N · (τ + ½ + N/2) · (k + ½)),   τ = t − (m − 1)·N,
    w(τ) = sin(π · (τ + ½) / (2N)),

a sine-windowed cosine of frequency (k + ½)/(2N) cycles per original sample. At the integer instants t = n these
are the MDCT's synthesis functions, which overlap-add to the identity (time-domain aliasing cancellation), so the
coefficients are the field's least-squares fit and coefficient errors are sample errors (orthonormal). At any
other instants the same sum is the field sampled there: decoding at another rate evaluates it at t_j = j·old/new
(sample 0 stays at t = 0, so a 2× decode interleaves the original samples, as for versions 1 and 2) and leaves out every component at or above the new Nyquist frequency, so the output is
band-limited by construction and needs no PCM resampler.
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


def analyse(samples: np.ndarray, N: int) -> np.ndarray:
    """(L, C) float samples → coefficients (C, F, N) float64: the MDCT with the sine window."""
    L, C = samples.shape
    F = frames(L, N)
    padded = np.zeros(((F + 1) * N, C))
    padded[N:N + L] = samples
    basis = _basis(torch.arange(2 * N, dtype=torch.float64), N, N).numpy()  # (2N, N)
    # frame m holds padded[m·N : m·N + 2N]: the two halves of every frame are consecutive hops
    hops = padded.reshape(F + 1, N, C)
    out = np.einsum("fnc,nk->cfk", hops[:-1], basis[:N]) + np.einsum("fnc,nk->cfk", hops[1:], basis[N:])
    return out


def kept_components(N: int, rate: int, new_rate: int) -> int:
    """Components below the Nyquist frequency of ``new_rate``: the k with (2k + 1)·rate < 2N·new_rate."""
    return int(min(N, max(0, -(-(2 * N * new_rate - rate) // (2 * rate)))))


def synthesise(coefficients: np.ndarray, N: int, length: int, rate: int, new_rate: int) -> np.ndarray:
    """Coefficients (C, F, N) → the field sampled at ``new_rate``: (round(length · new / rate), C) float64.

    Output sample j is at t_j = j·rate/new original samples. Frames are grouped by the exact
    (rational) position of their first output sample relative to the frame, so one basis matrix serves every
    frame of a group (one group at the original rate, a handful for ratios like 48 → 16 or 44.1 kHz).
    """
    C, F, _ = coefficients.shape
    count = max(1, round(length * new_rate / rate))
    K = kept_components(N, rate, new_rate)
    out = np.zeros((count, C))
    if K == 0:
        return out
    coef = torch.from_numpy(np.ascontiguousarray(coefficients[:, :, :K]))
    # In units of 1/(2·new): t_j = 2j·rate; frame m starts (τ = −½) at 2·new·(m − 1)·N − new.
    two_new = 2 * new_rate
    starts = [two_new * (m - 1) * N - new_rate for m in range(F)]
    first = [max(0, -(-s // (2 * rate))) for s in starts]  # the first j with t_j at or after the start
    span = 2 * N * two_new  # the frame's support, scaled
    groups: dict[int, list[int]] = {}
    for m in range(F):
        phase = 2 * first[m] * rate - starts[m]  # ≥ 0: how far into the frame j0 falls
        groups.setdefault(phase, []).append(m)
    for phase, members in groups.items():
        n = max(0, -(-(span - phase) // (2 * rate)))  # output samples inside the support
        if n == 0:
            continue
        tau = (phase + 2 * rate * torch.arange(n, dtype=torch.float64)) / two_new - 0.5
        for lo in range(0, n, max(1, MAX_BASIS_VALUES // K)):
            part = slice(lo, min(n, lo + max(1, MAX_BASIS_VALUES // K)))
            basis = _basis(tau[part], N, K)  # (n_part, K)
            idx = torch.tensor(members)
            values = torch.einsum("cmk,nk->mnc", coef[:, idx], basis).numpy()  # (members, n_part, C)
            for row, m in enumerate(members):
                j0 = first[m] + part.start
                j1 = min(count, j0 + values.shape[1])
                if j1 > j0:
                    out[j0:j1] += values[row, :j1 - j0]
    return out
