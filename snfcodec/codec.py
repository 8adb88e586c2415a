"""Codec orchestration: signal → fitted field → quantized, entropy-coded ``.snf`` bytes, and back.

The core works on any D-dimensional signal flattened to (N, C) values in [-1, 1]; the image functions at the
bottom only translate pixels and decode requests into that form.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from . import container, entropy, latent, presets, priors, spectral
from .allocator import reuse_freed_memory
from .container import Header, TensorHeader
from .entropy import SymbolModel
from .errors import SnfError, SnfFormatError, SnfInputError
from .field import BatchedSiren, FieldConfig, siren
from .fit import FitOptions, Problem, fit
from .grid import Regular, SamplePlan, pixel_grid, render, resample_axis
from .media import check_audio_array, check_image_array
from .quantize import (admissible_step, dequantize, quantize, relative_steps, residuals, sensitivities,
                       steps_for_precision)

DEFAULT_BPP = 2.0
DEFAULT_KBPS = 64.0
DEFAULT_MAX_SAMPLES = 1 << 28  # output values (samples × channels) one decode may produce
MAX_DECODE_WORK = 1 << 38  # multiply-adds one decode may need (a crafted file must not burn hours of CPU)
BAND_VALUES = 1 << 21  # output values rendered per band
QAT_FRACTION = 0.1  # quantization-aware fine-tuning steps, as a fraction of the fitting steps
# Fine-tuning moves each weight by a fraction of its quantization step (Adam: about lr per step), which nudges the
# weights that sit near a rounding boundary to the better side; at lr/10 it jittered them across it instead.
# Measured (docs/design.md): 0.001 against 0.1 gained 0.04-0.08 dB on 768×512 photos at 0.25-1 bpp, 0.29 dB on
# the 128×128 samples at 4 bpp, 0.06 / 0.55 dB on speech at 32 / 64 kb/s.
QAT_LR_RATIO = 0.001
MIN_QAT_STEPS = 20
# Rate search stops when the precision (log2 of the step scale) is known to 1/256: ~1/256 bit per parameter,
# under a byte for the smallest networks; 13 trial packs instead of 24 (each a full range-coding pass).
PRECISION_RESOLUTION = 1 / 256
PRECISION_RANGE = (-8.0, 24.0)  # coarsest and finest precision the search considers


@dataclass
class EncodeOptions:
    bpp: float | None = None  # target bits per pixel of the whole file (images)
    kbps: float | None = None  # target kilobits per second of the whole file (audio)
    psnr: float | None = None  # stop fitting once the unquantized field reaches this PSNR (dB)
    effort: str = "default"  # presets.EFFORTS: fast | default | slow | placebo, the step budget
    steps: int | None = None  # explicit step budget (overrides effort)
    alpha: str | float | tuple[float, float] = "auto"  # weight scaling: "auto", α, or (α_first, α_hidden)
    lr: float | None = None  # Adam learning rate; None: the preset's choice for the resolved α
    seed: int = 0
    tile: int | None = None  # images: tile side in pixels (one field per tile); None: presets.IMAGE_TILES rule
    device: str = "auto"  # auto | cpu | cuda
    prior: str | None = "auto"  # "auto": start from (and code residuals against) the shipped prior for the field's
    # shape where there is one; None or "none": the random initialisation, a version-1 file
    max_seconds: float | None = None  # wall-time budget for fitting
    progress: bool = False
    field: str = "auto"  # "tiles" (tiled SIRENs, versions 1-2), "latent" (version 3: latent grids for images, a
    # spectral field for audio) or "auto" (the tiled field where an option names what only it has: psnr, tile,
    # device="cuda", no prior, alpha, lr; else for images presets.image_field, for audio the spectral field)
    lmbda: float | None = None  # latent field: the rate-distortion trade-off λ itself, instead of a rate target


@dataclass
class EncodeResult:
    """What an encode produced and what it measured. ``psnr`` is of the decoded file against the input."""

    data: bytes
    bpp: float | None  # images: 8 · bytes / pixels
    psnr: float
    seconds: float
    steps: int  # fitting steps taken (stops early at a PSNR target)
    qat_steps: int  # quantization-aware fine-tuning steps after fitting
    fit_psnr: float  # training PSNR of the unquantized field when fitting stopped
    alpha: tuple[float, float]
    lr: float
    device: str
    kbps: float | None = None  # audio: 8 · bytes / duration / 1000 (bpp is None then)
    fit_seconds: float = 0.0  # of ``seconds``: fitting and fine-tuning (the rest: measuring, packing, checking)

    @property
    def bytes(self) -> int:
        return len(self.data)

    def summary(self) -> dict:
        """JSON-ready numbers (everything except the data)."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "data"}
        out["bytes"] = self.bytes
        out["alpha"] = list(self.alpha)
        return out


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SnfInputError("--device cuda: no CUDA device is available; use --device cpu or auto")
    if device not in ("cpu", "cuda"):
        raise SnfInputError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


def _resolve_alpha(alpha, config) -> tuple[float, float]:
    if isinstance(alpha, str):
        if alpha != "auto":
            try:
                alpha = float(alpha)
            except ValueError:
                raise SnfInputError(f"alpha must be 'auto' or a number, not {alpha!r}") from None
        else:
            return presets.auto_alpha(config)
    pair = tuple(float(a) for a in alpha) if isinstance(alpha, (tuple, list)) else (float(alpha),) * 2
    if len(pair) != 2 or not all(math.isfinite(a) and a > 0 for a in pair):
        raise SnfInputError(f"alpha must be positive, got {alpha!r}")
    return pair


def _resolve_prior(option, config: FieldConfig, tile: tuple[int, ...], rate: int) -> priors.Prior | None:
    if option is None or option == "none":
        return None
    if option != "auto":
        raise SnfInputError(f"prior must be 'auto' or 'none', not {option!r}")
    return priors.for_config(config, tile, rate)


def _step_budget(options: EncodeOptions, config: FieldConfig) -> int:
    if options.steps is not None:
        if options.steps < 0:
            raise SnfInputError(f"steps must be >= 0, got {options.steps}")
        return int(options.steps)
    budgets = presets.effort_steps(config)
    if options.effort not in budgets:
        raise SnfInputError(f"effort must be one of {', '.join(budgets)}, not {options.effort!r}")
    return budgets[options.effort]


def _pack(tensors: list[torch.Tensor], steps: list[float]) -> tuple[bytes, tuple[TensorHeader, ...]]:
    """Quantize with the given steps and entropy-code → (payload, per-tensor headers)."""
    symbols = [quantize(t, s) for t, s in zip(tensors, steps)]
    models = [SymbolModel.fit(x) for x in symbols]
    payload = entropy.encode(symbols, models)
    return payload, tuple(TensorHeader(s, m) for s, m in zip(steps, models))


def _search_precision(tensors: list[torch.Tensor], relative: list[float], payload_budget: int) -> float:
    """Highest precision (see :mod:`snfcodec.quantize`) whose payload fits ``payload_budget`` bytes."""
    lo, hi = PRECISION_RANGE

    def size(precision: float) -> int:
        return len(_pack(tensors, steps_for_precision(tensors, relative, precision))[0])

    if size(lo) > payload_budget:
        raise SnfInputError(f"the rate target leaves {payload_budget} bytes for the network, too few for even "
                            "the coarsest quantization; ask for a higher rate")
    if size(hi) <= payload_budget:
        return hi
    while hi - lo > PRECISION_RESOLUTION:
        mid = 0.5 * (lo + hi)
        if size(mid) <= payload_budget:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass
class _Fitted:
    data: bytes
    steps: int
    qat_steps: int
    fit_psnr: float
    alpha: tuple[float, float]
    lr: float
    fit_seconds: float  # the group's fitting and fine-tuning wall time


def encode_signals(targets: torch.Tensor, arch: presets.Architecture, kind: int, layout_code: int,
                   sample_rate: int, budgets: list[int], options: EncodeOptions) -> list[_Fitted | SnfError]:
    """Fit G signals of one shape together, then quantize and pack each to its own byte budget.

    targets: (G, N, C) float in [-1, 1]. Each signal's fields start from the initialisation a one-signal
    encode with the same seed gets, receive exactly its own gradient (the fields share nothing), keep their own
    best state, and go through their own sensitivities, rate search and packing: the batch changes the speed,
    not the rules. A signal whose budget cannot be met gets its error in its place; the others go on.
    """
    device = resolve_device(options.device)
    alpha = _resolve_alpha(options.alpha, arch.field)
    config = dataclasses.replace(arch.field, alpha_first=alpha[0], alpha_hidden=alpha[1])
    lr = float(options.lr) if options.lr is not None else presets.auto_lr(config, alpha)
    if not (math.isfinite(lr) and lr > 0):
        raise SnfInputError(f"learning rate must be positive, got {options.lr}")
    if options.psnr is not None and not math.isfinite(options.psnr):
        raise SnfInputError(f"psnr must be a finite number of dB, got {options.psnr}")
    steps = _step_budget(options, config)
    prior = _resolve_prior(options.prior, config, arch.tiling.tile, sample_rate)

    G, T = len(targets), arch.tiling.num_tiles
    plan = SamplePlan(arch.tiling, [pixel_grid(n) for n in arch.tiling.shape])
    problem = Problem(plan, targets, device, presets.GRADIENT_WEIGHT[config.in_dim])
    if not problem.streamed:
        # A streamed recording's steps allocate window-sized blocks, which glibc's defaults reuse well, and
        # model-sized ones (an hour: 35 M parameters), which the kept heap fragments (+0.35 GB measured).
        reuse_freed_memory()
    generators = [torch.Generator().manual_seed(int(options.seed)) for _ in range(G)]
    model = BatchedSiren.concatenate([BatchedSiren(config, T, g) for g in generators]).to(device)
    base = None
    if prior is not None:
        base = [t.to(device) for t in prior.torch_tensors(torch.float32)]
        model.start_from(base, prior.spread)
    stride = presets.fit_stride(config)
    report = fit(model, problem, FitOptions(steps, lr, options.psnr, options.max_seconds, stride=stride,
                                            seed=options.seed, progress=options.progress, desc="fit"))

    model.wrap_phases(base)
    header_bytes = container.header_size(config.in_dim, config.sine_layers, prior is not None)
    with torch.no_grad():
        sens = sensitivities(lambda ts: problem.mse(model, ts).cpu().numpy().astype(np.float64), model.tensors(),
                             generators)

    def own(tensors, g):  # signal g's fields
        return [t[g * T:(g + 1) * T] for t in tensors]

    q_steps, errors = [], [None] * G
    for g in range(G):
        tensors = residuals(own(model.tensors(), g), base)
        relative = relative_steps(tensors, [s[g] for s in sens])
        try:
            precision = _search_precision(tensors, relative, budgets[g] - header_bytes)
        except SnfInputError as exc:
            errors[g], precision = exc, PRECISION_RANGE[0]  # fine-tuned along with the others, then dropped
        q_steps.append(steps_for_precision(tensors, relative, precision))

    qat_steps = max(MIN_QAT_STEPS, int(QAT_FRACTION * report.steps)) if report.steps > 0 else 0
    fit_seconds = report.seconds
    if qat_steps:
        per_tensor = [torch.tensor([q[i] for q in q_steps], dtype=torch.float32, device=device)
                      .repeat_interleave(T).reshape(-1, 1, 1) for i in range(len(q_steps[0]))]
        fit_seconds += fit(model, problem, FitOptions(qat_steps, lr * QAT_LR_RATIO, stride=stride, seed=options.seed,
                                                      progress=options.progress, desc="qat"),
                           quant_steps=per_tensor, quant_base=base).seconds
    # Fine-tuning moved the weights; coarsen the same grid slightly if a payload grew past its budget.
    everything = residuals(model.tensors(), base)
    out: list[_Fitted | SnfError] = []
    for g in range(G):
        if errors[g] is not None:
            out.append(errors[g])
            continue
        tensors = own(everything, g)
        for factor in np.geomspace(1.0, 4.0, 64):
            payload, headers = _pack(tensors, [admissible_step(t, s * factor) for t, s in zip(tensors, q_steps[g])])
            if len(payload) <= budgets[g] - header_bytes:
                break
        else:
            out.append(SnfInputError("could not meet the rate target after fine-tuning; ask for a higher rate"))
            continue
        data = container.write(Header(kind, layout_code, sample_rate, config, arch.tiling, headers,
                                      prior.ref if prior is not None else None), payload)
        out.append(_Fitted(data, report.steps, qat_steps, report.psnrs[g], alpha, lr, fit_seconds))
    return out


def read_field(data: bytes) -> tuple[Header, list[torch.Tensor]]:
    """Parse a ``.snf`` byte string → (header, dequantized float64 tensors in container order; a version-2
    file's residuals with its prior added back)."""
    header, payload = container.read(data)
    prior = priors.for_ref(header.prior, header.field) if header.prior is not None else None
    shapes = header.tensor_shapes()
    symbols = entropy.decode(payload, [t.model for t in header.tensors], [math.prod(s) for s in shapes])
    tensors = [dequantize(x, t.step, s) for x, t, s in zip(symbols, header.tensors, shapes)]
    if prior is not None:
        tensors = [t + b for t, b in zip(tensors, prior.torch_tensors(torch.float64))]
    return header, tensors


def _check_output_size(values: int, max_samples: int) -> None:
    """Refuse a decode request whose output would exceed ``max_samples`` values, before allocating it."""
    if values > max_samples:
        raise SnfFormatError(f"decoding would produce {values} values, more than the limit of {max_samples}; "
                             "ask for a smaller size or raise max_samples")


def sample_field(header: Header, tensors: list[torch.Tensor], axes: list[np.ndarray],
                 convert: Callable[[np.ndarray], np.ndarray], dtype: np.dtype,
                 max_samples: int = DEFAULT_MAX_SAMPLES) -> np.ndarray:
    """Evaluate the decoded field on a separable grid → (len(axes[0]), ..., C) array of ``dtype``.

    Values are clipped to [-1, 1] and passed through ``convert`` band by band along the first axis, so memory
    beyond the output itself stays bounded. Runs in float64 on the CPU so that decoding is reproducible bit for
    bit on any machine with IEEE doubles.
    """
    shape = tuple(len(a) for a in axes) + (header.channels,)
    values = math.prod(shape)
    _check_output_size(values, max_samples)
    # Upper bound of the work: every point is evaluated by at most 2^D tiles.
    work = values // header.channels * 2 ** len(axes) * header.field.params_per_field()
    if work > MAX_DECODE_WORK:
        raise SnfFormatError(f"decoding would take about {work:.2e} multiply-adds, more than the limit of "
                             f"{MAX_DECODE_WORK:.2e}; ask for a smaller size")
    out = np.empty(shape, dtype=dtype)
    for r, part in _bands(header, tensors, axes):
        out[r:r + len(part)] = convert(part)
    return out


def _bands(header: Header, tensors: list[torch.Tensor],
           axes: list[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
    """The field on a separable grid, band by band along the first axis: (first index, (rows, ..., C) float64
    values clipped to [-1, 1]), about BAND_VALUES values a band."""
    shape = tuple(len(a) for a in axes) + (header.channels,)
    band = max(1, BAND_VALUES // (math.prod(shape) // shape[0]))
    field = lambda coords, tiles: siren(tensors, coords, header.field.omega0, tiles)
    for r in range(0, shape[0], band):
        plan = SamplePlan(header.tiling, [axes[0][r:r + band]] + list(axes[1:]))
        part = render(field, plan, header.channels, torch.float64).clamp_(-1.0, 1.0).numpy()
        yield r, part.reshape((-1,) + shape[1:])


def check_psnr(data: bytes, original: np.ndarray) -> float:
    """PSNR of a file's decode at its own size against ``original`` (uint8 image or float audio), computed
    band by band: the same value as decoding and comparing, without holding the decode (an hour of audio)."""
    header, tensors = read_field(data)
    if header.kind == container.KIND_IMAGE:
        axes, convert, dtype, peak = image_axes(header), to_uint8, np.int64, 255.0
    else:
        axes, convert, dtype, peak = [audio_axis(header)], to_float32, np.float64, 2.0
    if tuple(len(a) for a in axes) + (header.channels,) != original.shape:
        raise ValueError(f"shapes differ: the file's {[len(a) for a in axes]} and {original.shape}")
    total = sum(_squared_error(convert(part), original[r:r + len(part)], dtype)
                for r, part in _bands(header, tensors, axes))
    return _psnr(float(total) / original.size, peak)


def _psnr(mse: float, peak: float) -> float:
    return float("inf") if mse == 0 else 10.0 * math.log10(peak ** 2 / mse)


# ---- images ----------------------------------------------------------------------------------------------

def to_uint8(values: np.ndarray) -> np.ndarray:
    """[-1, 1] floats → uint8 (round half to even)."""
    return np.clip(np.rint((values + 1.0) * 127.5), 0, 255).astype(np.uint8)


PSNR_BAND = 1 << 22  # values compared at a time, so that a 48 MP comparison needs no signal-sized copies


def _squared_error(a: np.ndarray, b: np.ndarray, dtype) -> int | float:
    """Σ (a - b)² over all samples, in bands of PSNR_BAND values along the first axis, in ``dtype``."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    band = max(1, PSNR_BAND // max(1, a[:1].size))
    total = 0
    for r in range(0, len(a), band):
        d = a[r:r + band].astype(dtype) - b[r:r + band].astype(dtype)
        total += np.vdot(d, d)
    return total


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB over all samples of two uint8 arrays (peak 255); the squared error summed exactly in integers."""
    return _psnr(int(_squared_error(a, b, np.int64)) / a.size, 255.0)


def _positive(name: str, value, default: float) -> float:
    v = default if value is None else float(value)
    if not (math.isfinite(v) and v > 0):
        raise SnfInputError(f"{name} must be a positive number, got {value}")
    return v


def _architecture(budget_bytes: int, dims: int, arch_for: Callable[[int], presets.Architecture | None],
                  what: str, unit: Callable[[int], str],
                  fewest: Callable[[], presets.Architecture], bits_per_param: float) -> presets.Architecture:
    """The preset architecture for a byte budget, or an error that says which rate would work (``fewest``: the
    candidate with the fewest fields, whose narrowest network sets that rate; ``bits_per_param``: the expected
    cost of a parameter)."""
    overhead = container.header_size(dims, presets.SINE_LAYERS)
    arch = arch_for(int((budget_bytes - overhead) * 8 / bits_per_param))
    if arch is None:
        smallest = fewest()
        need = overhead + smallest.tiling.num_tiles * presets.min_field_bytes(dims, smallest.field.out_dim,
                                                                              bits_per_param)
        raise SnfInputError(f"the rate is too low for {what} ({budget_bytes} bytes); ask for at least "
                            f"{unit(need)}")
    kind = container.KIND_IMAGE if dims == 2 else container.KIND_AUDIO
    too_large = container.size_problem(kind, arch.field, arch.tiling)
    if too_large:
        raise SnfInputError(f"{what} at this rate is too large for one .snf file ({too_large}); "
                            "lower the rate or split the input")
    return arch


def _result(fitted: _Fitted, seconds: float, psnr: float, options: EncodeOptions, **rate) -> EncodeResult:
    return EncodeResult(fitted.data, rate.get("bpp"), psnr, seconds, fitted.steps, fitted.qat_steps,
                        fitted.fit_psnr, fitted.alpha, fitted.lr, str(resolve_device(options.device)),
                        rate.get("kbps"), fitted.fit_seconds)


def _image_budget(H: int, W: int, bpp: float) -> int:
    """Bytes of the whole file at ``bpp``."""
    return int(bpp * H * W / 8)


MIN_TILE = 8


def image_architecture(H: int, W: int, C: int, bpp: float, tile: int | None = None) -> presets.Architecture:
    """The network and tiling the encoder uses for an H×W×C image at ``bpp`` (``tile``: see EncodeOptions)."""
    if tile is not None and not (isinstance(tile, (int, np.integer)) and tile >= MIN_TILE):
        raise SnfInputError(f"tile must be a whole number of pixels, at least {MIN_TILE}, got {tile!r}")
    tiles = presets.IMAGE_TILES if tile is None else (int(tile),)
    return _architecture(_image_budget(H, W, bpp), 2, lambda p: presets.image_architecture(H, W, C, p, tiles),
                         f"a {W}x{H} image", lambda b: f"{8 * b / (H * W):.3g} bpp",
                         lambda: presets.image_architecture(H, W, C, 1 << 40, tiles[-1:]),
                         presets.image_bits_per_param(bpp))


@dataclass
class Prepared:
    """One input made ready for the encoder. Inputs with equal ``key`` share an architecture (same kind, shape,
    channels, rate and options) and can be fitted together (:func:`encode_prepared`)."""

    arch: presets.Architecture
    target: torch.Tensor  # (N, C) float32 in [-1, 1]
    original: np.ndarray  # what the decoded file is compared with: (H, W, C) uint8 or (N, C) float32
    kind: int
    layout_code: int
    sample_rate: int
    budget_bytes: int
    field: str = "tiles"  # "latent": a version-3 file (``arch`` is None, ``target`` empty)
    batchable: bool = False  # a latent image that can be fitted with others of its shape (presets.latent_batchable)

    @property
    def key(self) -> tuple:
        if self.field == "latent":
            if self.batchable:
                return (self.field, self.kind, self.layout_code, self.original.shape, self.budget_bytes)
            return self.field, id(self)  # every input its own group
        return self.kind, self.layout_code, self.sample_rate, self.arch


def prepare_image(pixels: np.ndarray, options: EncodeOptions) -> Prepared:
    """(H, W, C) uint8 → a prepared image; checks the options that apply to images."""
    pixels = check_image_array(pixels)
    H, W, C = pixels.shape
    if options.kbps is not None:
        raise SnfInputError("kbps is a rate for audio; give images a rate in bits per pixel (bpp)")
    bpp = _positive("bpp", options.bpp, DEFAULT_BPP)
    field = image_field(options, bpp, H, W, C)
    if options.lmbda is not None and field != "latent":
        raise SnfInputError("lmbda applies to the latent field, not the tiled one; drop field='tiles' (--field tiles)")
    if field == "latent":
        steps = _latent_steps(options)
        batchable = presets.latent_batchable(H, W, steps, _latent_compiled(H, W, steps, options))
        return Prepared(None, torch.empty(0), pixels, container.KIND_IMAGE, C, 0, _image_budget(H, W, bpp),
                        "latent", batchable)
    arch = image_architecture(H, W, C, bpp, options.tile)
    target = torch.from_numpy(pixels.reshape(H * W, C).astype(np.float32) / 127.5 - 1.0)
    return Prepared(arch, target, pixels, container.KIND_IMAGE, C, 0, _image_budget(H, W, bpp))


def image_field(options: EncodeOptions, bpp: float, H: int, W: int, C: int) -> str:
    """Which field an image gets: the option, or with "auto" the presets' measured choice."""
    if _field_option(options) != "auto":
        return options.field
    if options.lmbda is not None:  # only the latent field takes λ itself
        return "latent"
    if _asks_for_tiles(options):
        return "tiles"
    fixed = latent.encoder.fixed_bits(presets.latent_config(H, W, bpp, _latent_steps(options)), C)
    return presets.image_field(bpp, H * W, fixed)


def _field_option(options: EncodeOptions) -> str:
    if options.field not in ("auto", "tiles", "latent"):
        raise SnfInputError(f"field must be auto, tiles or latent, not {options.field!r}")
    return options.field


def _asks_for_tiles(options: EncodeOptions) -> bool:
    """Whether the options name something only the tiled field has, so that "auto" means the tiled field: a
    PSNR target, a tile size, a CUDA fit (the tiled field's was measured on a GPU; the latent field's is there for
    ``field="latent"``), no prior, or a weight scaling α or learning rate (the latent field's are other
    quantities: α of its synthesis, the latents' step size)."""
    return (options.psnr is not None or options.tile is not None or options.device == "cuda"
            or options.prior in (None, "none") or options.alpha != "auto" or options.lr is not None)


def _latent_steps(options: EncodeOptions) -> int:
    """The latent image field's step count: ``steps``, else the effort's (0 for an effort it does not know, which
    the encoder refuses and "auto" does not give it)."""
    return int(options.steps) if options.steps is not None else presets.LATENT_STEPS.get(options.effort, 0)


def _check_latent_options(options: EncodeOptions, what: str, gpu: bool = False) -> None:
    """The options a version-3 encode does not take (``gpu``: whether it can be fitted on a CUDA device)."""
    if options.device == "cuda" and not gpu:
        raise SnfInputError(f"the {what} is fitted on the CPU in this version; use --device cpu or auto")
    if options.psnr is not None:
        raise SnfInputError(f"psnr applies to the tiled field; the {what} takes a rate")
    if options.tile is not None:
        raise SnfInputError(f"tile applies to the tiled field; the {what} has no tiles")
    if options.steps is not None and options.steps < 0:
        raise SnfInputError(f"steps must be >= 0, got {options.steps}")


def _latent_options(item: Prepared, options: EncodeOptions) -> latent.encoder.LatentOptions:
    """The version-3 image encoder's options for ``item`` (the checks of what it does not take first)."""
    H, W, C = item.original.shape
    _check_latent_options(options, "latent field", gpu=True)
    if options.lmbda is not None and not (math.isfinite(options.lmbda) and options.lmbda > 0):
        raise SnfInputError(f"lmbda must be a positive number, got {options.lmbda}")
    if options.effort not in presets.LATENT_STEPS:
        raise SnfInputError(f"effort must be one of {', '.join(presets.LATENT_STEPS)}, not {options.effort!r}")
    alpha = presets.LATENT_ALPHA if options.alpha == "auto" else _resolve_alpha(options.alpha, None)
    steps = _latent_steps(options)
    bpp = None if options.lmbda is not None and options.bpp is None else 8 * item.budget_bytes / (H * W)
    # the rate sets the latents' learning rate where it sets λ; with λ given a rate only caps the file
    rate = bpp if options.lmbda is None else None
    lr = presets.latent_lr(steps, rate) if options.lr is None else _positive("lr", options.lr, presets.LATENT_LR)
    resolve_device(options.device)  # refuses an unknown device, or cuda where there is none
    device = _latent_device(options)
    if not latent.bands.banded(H, W):  # whole-photo steps reuse the same large blocks (large photos' bands were
        reuse_freed_memory()  # measured with glibc's defaults); 768×512: 80–90 → 72–75 ms a step
    return latent.encoder.LatentOptions(
        presets.latent_config(H, W, bpp, steps), steps, bpp=bpp, lmbda=options.lmbda, alpha=alpha, lr_latent=lr,
        lr_network=presets.LATENT_LR_NETWORK, seed=int(options.seed), max_seconds=options.max_seconds,
        progress=options.progress, row_stride=presets.LATENT_ROW_STRIDE, quantizer=presets.LATENT_QUANTIZER,
        temperature=presets.LATENT_TEMPERATURE, device=device,
        compile=_latent_compiled(H, W, steps, options))


def _latent_device(options: EncodeOptions) -> str:
    return "cuda" if options.device == "cuda" else "cpu"  # "auto": the CPU, where the latent field was measured


def _latent_compiled(H: int, W: int, steps: int, options: EncodeOptions) -> bool:
    """Whether an H×W latent fit of ``steps`` compiles its step (:func:`.latent.fused.requested`)."""
    return latent.fused.requested(H * W * steps, presets.LATENT_COMPILE_WORK, _latent_device(options))


def _latent_result(encoded, item: Prepared, options: latent.encoder.LatentOptions, seconds: float) -> EncodeResult:
    """What a version-3 image file measured: its rate, and the PSNR of its decode against the original."""
    H, W, _ = item.original.shape
    field = latent.decoder.read_field(encoded.data)
    decoded = latent.decoder.sample(field, *image_axes(field.header))
    report = encoded.report
    return EncodeResult(encoded.data, 8 * len(encoded.data) / (H * W), psnr_uint8(decoded, item.original),
                        seconds, report.steps, 0, report.psnr, options.alpha, options.lr_latent, options.device,
                        fit_seconds=encoded.fit_seconds)


def _encode_latent(item: Prepared, options: EncodeOptions, start: float) -> EncodeResult:
    """One image as a version-3 latent field (:mod:`snfcodec.latent`)."""
    latent_options = _latent_options(item, options)
    encoded = latent.encoder.encode(item.original, item.layout_code, latent_options)
    return _latent_result(encoded, item, latent_options, time.perf_counter() - start)


def _encode_latent_batch(items: list[Prepared], options: EncodeOptions,
                         start: float) -> list[EncodeResult | SnfError]:
    """Images of one shape and rate as version-3 fields trained together (:func:`.latent.encoder.encode_batch`);
    ``seconds`` of each result is the group's shared equally."""
    latent_options = _latent_options(items[0], options)
    encoded = latent.encoder.encode_batch([item.original for item in items], items[0].layout_code, latent_options)
    out = [e if isinstance(e, SnfError) else _latent_result(e, item, latent_options, 0.0)
           for e, item in zip(encoded, items)]
    seconds = (time.perf_counter() - start) / len(items)
    for r in out:
        if isinstance(r, EncodeResult):
            r.seconds = seconds
    return out


def encode_prepared(items: list[Prepared], options: EncodeOptions,
                    start: float | None = None) -> list[EncodeResult | SnfError]:
    """Encode inputs of one key together; one result, or the error that stopped that input, per input.

    ``seconds`` and ``fit_seconds`` of each result are the group's (from ``start``) shared equally among its
    inputs.
    """
    start = time.perf_counter() if start is None else start
    first = items[0]
    if any(item.key != first.key for item in items):
        raise ValueError("only inputs with the same key can be encoded together")
    if first.field == "latent":
        try:
            if len(items) > 1:
                return _encode_latent_batch(items, options, start)
            encode_v3 = _encode_latent if first.kind == container.KIND_IMAGE else _encode_spectral
            return [encode_v3(first, options, start)]
        except SnfError as exc:
            return [exc] * len(items)
    targets = items[0].target[None] if len(items) == 1 else torch.stack([item.target for item in items])
    fitted = encode_signals(targets, first.arch, first.kind, first.layout_code, first.sample_rate,
                            [item.budget_bytes for item in items], options)
    out: list[EncodeResult | SnfError] = []
    for item, f in zip(items, fitted):
        if isinstance(f, SnfError):
            out.append(f)
        elif item.kind == container.KIND_IMAGE:
            H, W = item.original.shape[:2]
            out.append(_result(f, 0.0, check_psnr(f.data, item.original), options, bpp=8 * len(f.data) / (H * W)))
        else:
            duration = len(item.original) / item.sample_rate
            out.append(_result(f, 0.0, check_psnr(f.data, item.original), options,
                               kbps=8 * len(f.data) / duration / 1000))
    seconds = (time.perf_counter() - start) / len(items)
    for r in out:
        if isinstance(r, EncodeResult):
            r.seconds, r.fit_seconds = seconds, r.fit_seconds / len(items)
    return out


def _encode_one(item: Prepared, options: EncodeOptions, start: float) -> EncodeResult:
    result = encode_prepared([item], options, start)[0]
    if isinstance(result, SnfError):
        raise result
    return result


def encode_image(pixels: np.ndarray, options: EncodeOptions) -> EncodeResult:
    """(H, W, C) uint8 → EncodeResult; the rate counts every byte of the file."""
    start = time.perf_counter()
    return _encode_one(prepare_image(pixels, options), options, start)


def image_axes(header, scale=None, size=None, crop=None) -> list[np.ndarray]:
    """Sample positions (rows, columns) for a decode request; see :func:`decode_image`."""
    H, W = header.shape
    x, y, w, h = 0.0, 0.0, float(W), float(H)
    if crop is not None:
        try:
            x, y, w, h = (float(v) for v in crop)
        except (TypeError, ValueError):
            raise SnfInputError(f"crop must be four numbers X,Y,W,H, got {crop!r}") from None
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            raise SnfInputError(f"crop must be four finite numbers, got {crop!r}")
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > W or y + h > H:
            raise SnfInputError(f"crop {x:g},{y:g},{w:g},{h:g} is not inside the {W}x{H} canvas")
    if scale is not None and size is not None:
        raise SnfInputError("give either a scale or a size, not both")
    if size is not None:
        out_w, out_h = (int(v) for v in size)
        if out_w < 1 or out_h < 1:
            raise SnfInputError(f"size must be positive, got {out_w}x{out_h}")
    else:
        f = 1.0 if scale is None else float(scale)
        if not (math.isfinite(f) and f > 0):
            raise SnfInputError(f"scale must be a positive number, got {scale}")
        out_w, out_h = max(1, round(w * f)), max(1, round(h * f))
    return [resample_axis(y, h, out_h), resample_axis(x, w, out_w)]


def decode_image(data: bytes, scale: float | None = None, size: tuple[int, int] | None = None,
                 crop: tuple[float, float, float, float] | None = None,
                 max_samples: int = DEFAULT_MAX_SAMPLES) -> np.ndarray:
    """``.snf`` bytes → (H, W, C) uint8.

    scale: multiply the output size; size: (width, height) of the output; crop: (x, y, w, h), a region of the
    original canvas in original pixels. The field is sampled at the centres of the output pixels.
    """
    if container.version_of(data) == container.VERSION_LATENT:
        if _declared_kind(data) == container.KIND_AUDIO:
            raise SnfInputError("this file holds audio, not an image")
        return _sample_latent(latent.decoder.read_field(data), scale, size, crop, max_samples)
    header, tensors = read_field(data)
    if header.kind != container.KIND_IMAGE:
        raise SnfInputError(f"this file holds {container.KIND_NAMES[header.kind]}, not an image")
    return _sample_image(header, tensors, scale, size, crop, max_samples)


def _declared_kind(data: bytes) -> int:
    """The media kind a file's prefix declares, whatever its version (the reader checks it, with everything
    else: a damaged or foreign file goes on to fail there)."""
    return data[5] if len(data) > 5 else 0


def _sample_latent(field, scale, size, crop, max_samples) -> np.ndarray:
    rows, cols = image_axes(field.header, scale, size, crop)
    _check_output_size(len(rows) * len(cols) * field.header.channels, max_samples)
    return latent.decoder.sample(field, rows, cols)


def _sample_image(header, tensors, scale, size, crop, max_samples) -> np.ndarray:
    axes = image_axes(header, scale, size, crop)
    return sample_field(header, tensors, axes, to_uint8, np.uint8, max_samples)


# ---- audio -----------------------------------------------------------------------------------------------

def psnr_float(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of float signals in [-1, 1] (peak-to-peak 2)."""
    return _psnr(float(_squared_error(a, b, np.float64)) / a.size, 2.0)


def prepare_audio(samples: np.ndarray, sample_rate: int, options: EncodeOptions) -> Prepared:
    """(N, C) float samples in [-1, 1] at ``sample_rate`` Hz → a prepared sound; checks the audio options."""
    samples = check_audio_array(samples)
    N, C = samples.shape
    if not (isinstance(sample_rate, (int, np.integer)) and 1 <= sample_rate <= 10_000_000):
        raise SnfInputError(f"sample rate must be a whole number of Hz in 1..10000000, got {sample_rate!r}")
    if options.bpp is not None:
        raise SnfInputError("bpp is a rate for images; give audio a rate in kilobits per second (kbps)")
    if options.tile is not None:
        raise SnfInputError("tile applies to images; audio segments are sized from the rate")
    kbps = _positive("kbps", options.kbps, DEFAULT_KBPS)
    duration = N / sample_rate
    budget_bytes = int(kbps * 1000 * duration / 8)
    if options.lmbda is not None:
        raise SnfInputError("lmbda applies to the image latent field; give audio a rate in kbps")
    if audio_field(options, budget_bytes) == "latent":
        if C > spectral.bitstream.MAX_CHANNELS:
            raise SnfInputError(f"{C} channels: the spectral field holds 1 to {spectral.bitstream.MAX_CHANNELS}; "
                                "use field='tiles' (--field tiles)")
        return Prepared(None, torch.empty(0), samples, container.KIND_AUDIO, 0, int(sample_rate), budget_bytes,
                        "latent")
    arch = _architecture(budget_bytes, 1, lambda p: presets.audio_architecture(N, C, p),
                         f"{duration:.3g} s of audio", lambda b: f"{8 * b / duration / 1000:.3g} kbps",
                         # the budget of one narrowest field: one segment, the fewest fields
                         lambda: presets.audio_architecture(N, C, presets.min_field_params(1, C)),
                         presets.BITS_PER_PARAM)
    rate = int(sample_rate)
    return Prepared(arch, torch.from_numpy(samples), samples, container.KIND_AUDIO, 0, rate, budget_bytes)


def audio_field(options: EncodeOptions, budget_bytes: int) -> str:
    """Which field a sound gets: the option, or with "auto" the spectral field ("latent") unless its fixed
    cost would take more than presets.SPECTRAL_MAX_FIXED_SHARE of the file."""
    if _field_option(options) != "auto":
        return options.field
    if _asks_for_tiles(options):
        return "tiles"
    fixed = spectral.encoder.fixed_bits(presets.SPECTRAL_CONTEXT_WIDTH)
    return "latent" if fixed <= presets.SPECTRAL_MAX_FIXED_SHARE * 8 * budget_bytes else "tiles"


def _encode_spectral(item: Prepared, options: EncodeOptions, start: float) -> EncodeResult:
    """One sound as a version-3 spectral field (:mod:`snfcodec.spectral`)."""
    _check_latent_options(options, "spectral field")
    if options.alpha != "auto" or options.lr is not None:
        raise SnfInputError("alpha and lr apply to the fitted fields; the spectral field has no synthesis network")
    if options.effort not in presets.SPECTRAL_STEPS:
        raise SnfInputError(f"effort must be one of {', '.join(presets.SPECTRAL_STEPS)}, not {options.effort!r}")
    steps = presets.SPECTRAL_STEPS[options.effort]
    if options.steps is not None:  # an explicit budget, split as the presets split theirs
        steps = (int(options.steps) * 3 // 5, int(options.steps) - int(options.steps) * 3 // 5)
    rate = item.sample_rate
    duration = len(item.original) / rate
    encoded = spectral.encoder.encode(item.original, rate, spectral.encoder.SpectralOptions(
        presets.spectral_frame(rate), 8 * item.budget_bytes / duration / 1000, presets.SPECTRAL_CONTEXT_WIDTH,
        presets.SPECTRAL_DEADZONE, steps, seed=int(options.seed), window=presets.SPECTRAL_WINDOW))
    field = spectral.decoder.read_field(encoded.data)  # the reported PSNR is the file's, measured block by block
    error = sum(_squared_error(block, item.original[at:at + len(block)], np.float64)
                for at, block in spectral.decoder.blocks(field, rate))
    return EncodeResult(encoded.data, None, _psnr(error / item.original.size, 2.0), time.perf_counter() - start,
                        encoded.steps, 0, math.nan, (1.0, 1.0), 0.0, "cpu",
                        kbps=8 * len(encoded.data) / duration / 1000, fit_seconds=encoded.fit_seconds)


def encode_audio(samples: np.ndarray, sample_rate: int, options: EncodeOptions) -> EncodeResult:
    """(N, C) float samples in [-1, 1] at ``sample_rate`` Hz → EncodeResult (rate in kb/s)."""
    start = time.perf_counter()
    return _encode_one(prepare_audio(samples, sample_rate, options), options, start)


def audio_axis(header: Header, sample_rate: int | None = None) -> Regular:
    """Sampling instants for a decode at ``sample_rate``: round(N · new / old) samples, sample j at time j / new
    (in original samples: j · old / new + 0.5), as a :class:`Regular` axis (an hour needs no array of them)."""
    n, rate = header.tiling.shape[0], header.sample_rate
    new = _output_rate(header, sample_rate)
    count = max(1, round(n * new / rate))
    return Regular(count, a=0.0, step=rate / new, b=0.5)


def decode_audio(data: bytes, sample_rate: int | None = None,
                 max_samples: int = DEFAULT_MAX_SAMPLES) -> tuple[np.ndarray, int]:
    """``.snf`` bytes → ((N, C) float32 in [-1, 1], sample rate). Another ``sample_rate`` samples the field
    itself at that rate (no PCM resampling)."""
    if container.version_of(data) == container.VERSION_LATENT:
        if _declared_kind(data) != container.KIND_AUDIO:
            raise SnfInputError("this file holds an image, not audio")
        field = spectral.decoder.read_field(data)
        return _sample_spectral(field, sample_rate, max_samples), _output_rate(field.header, sample_rate)
    header, tensors = read_field(data)
    if header.kind != container.KIND_AUDIO:
        raise SnfInputError(f"this file holds {container.KIND_NAMES[header.kind]}, not audio")
    return _sample_audio(header, tensors, sample_rate, max_samples), _output_rate(header, sample_rate)


def _output_rate(header, sample_rate: int | None) -> int:
    new = header.sample_rate if sample_rate is None else sample_rate
    if not (isinstance(new, (int, np.integer)) and new >= 1):
        raise SnfInputError(f"sample rate must be a positive whole number of Hz, got {sample_rate!r}")
    return int(new)


def _sample_spectral(field, sample_rate, max_samples) -> np.ndarray:
    h = field.header
    rate = _output_rate(h, sample_rate)
    _check_output_size(spectral.basis.output_length(h.length, h.sample_rate, rate) * h.channels, max_samples)
    return spectral.decoder.sample(field, rate)


def _sample_audio(header, tensors, sample_rate, max_samples) -> np.ndarray:
    axis = audio_axis(header, sample_rate)
    return sample_field(header, tensors, [axis], to_float32, np.float32, max_samples)


def to_float32(values: np.ndarray) -> np.ndarray:
    """Decoded audio values as float32 samples."""
    return values.astype(np.float32)


# ---- either ----------------------------------------------------------------------------------------------

def decode(data: bytes, scale=None, size=None, crop=None, sample_rate=None,
           max_samples: int = DEFAULT_MAX_SAMPLES) -> np.ndarray:
    """Decode whatever the file holds: images with scale/size/crop, audio with sample_rate."""
    if _declared_kind(data) == container.KIND_AUDIO:
        if scale is not None or size is not None or crop is not None:
            raise SnfInputError("scale, size and crop apply to images; this file holds audio")
        return decode_audio(data, sample_rate, max_samples)[0]
    if sample_rate is not None:
        raise SnfInputError("sample_rate applies to audio; this file holds an image")
    return decode_image(data, scale, size, crop, max_samples)
