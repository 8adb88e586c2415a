"""Learned priors: initial fields learned once from real photos and speech, shipped inside the package.

A prior is the parameters of one field for one field shape, and per tensor a spread: every tile or segment of a
file starts at the prior plus ``spread`` times its own random initialisation (0: exactly the prior). The
encoder codes the fitted parameters as residuals from the prior; a version-2
``.snf`` file records the prior's number and the CRC-32 of its parameters, and a decoder adds the same prior
back. ``python -m snfcodec.priors.train`` reproduces the shipped set (``docs/priors.md``).

Storage: ``priors.json`` (one entry per prior: number, name, field shape, checksum, how it was trained) beside
``priors.npz`` (its tensors, named ``p<id>_<k>``, k in container order). Both are checked when loaded.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..container import PriorRef
from ..errors import SnfFormatError
from ..field import FieldConfig

MANIFEST = "priors.json"
TENSORS = "priors.npz"
# A sound's segments match an audio prior's when the sample rates are equal and the segment lengths agree this
# closely: the presets give a rate in kb/s about one segment duration, which shifts with the recording's length as
# the header's share changes (8 kHz, 32 kb/s: 1,007 samples for 1 s, 971 for 6 s, 964 for 60 s). Other sample
# rates get no prior: what a segment's first layer should hold depends on the band the recording covers (a prior
# learned at 8 kHz cost 0.84 dB on 48 kHz speech at 64 kb/s).
DURATION_TOLERANCE = 0.05


@dataclass(frozen=True, eq=False)
class Prior:
    """One field's initial parameters: tensors[k] in container order (w0, b0, w1, b1, ...), float32, shapes
    (fan_in, fan_out) and (1, fan_out); spread[k]: the multiple of the random initialisation (``config``'s α)
    added to tensor k when a fit starts. Only ``tensors`` reach a decoder (the checksum covers them)."""

    id: int
    name: str
    config: FieldConfig
    tensors: tuple[np.ndarray, ...]
    spread: tuple[float, ...]
    tile: tuple[int, ...] | None = None  # the tile it was learned for (None: any)
    info: dict = field(default_factory=dict)
    rate: int = 0  # audio: the sample rate it was learned at (sounds must have it); images: 0

    def __post_init__(self):
        shapes = []
        for fan_in, fan_out in self.config.layer_shapes():
            shapes += [(fan_in, fan_out), (1, fan_out)]
        if [t.shape for t in self.tensors] != shapes or any(t.dtype != np.float32 for t in self.tensors) \
                or len(self.spread) != len(shapes) or not (0 <= self.id < 1 << 32):
            raise ValueError(f"prior {self.name}: its tensors, spread or id do not fit a {self.config} field")

    @property
    def checksum(self) -> int:
        """CRC-32 of the tensors' little-endian float32 bytes, in container order (what a file records)."""
        crc = 0
        for t in self.tensors:
            crc = zlib.crc32(np.ascontiguousarray(t, dtype="<f4").tobytes(), crc)
        return crc

    @property
    def ref(self) -> PriorRef:
        return PriorRef(self.id, self.checksum)

    def fits(self, config: FieldConfig, tile: tuple[int, ...] | None = None, rate: int = 0) -> bool:
        """Whether a field of ``config``'s shape (on tiles of ``tile`` at sample rate ``rate``, when given) can
        start from this prior (α does not matter). A decoder asks without a tile: the residuals are added to the
        same tensors."""
        c = self.config
        return (c.in_dim, c.out_dim, c.width, c.sine_layers, c.omega0) == \
            (config.in_dim, config.out_dim, config.width, config.sine_layers, config.omega0) and \
            (tile is None or self.tile is None or self._same_tile(tuple(tile), rate))

    def _same_tile(self, tile: tuple[int, ...], rate: int) -> bool:
        if self.rate:  # the same sample rate, segments of the same duration (DURATION_TOLERANCE)
            return rate == self.rate and len(tile) == 1 and abs(tile[0] / self.tile[0] - 1) <= DURATION_TOLERANCE
        return tile == self.tile

    def torch_tensors(self, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
        """The tensors with a leading tile axis of 1, ready to broadcast over a file's tiles."""
        return [torch.from_numpy(t).to(dtype)[None] for t in self.tensors]


def save(priors: list[Prior], folder: Path) -> None:
    """Write ``priors`` as a prior set into ``folder`` (the package's own folder for the shipped set)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries, arrays = [], {}
    for p in sorted(priors, key=lambda p: p.id):
        c = p.config
        entries.append({"id": p.id, "name": p.name, "in_dim": c.in_dim, "out_dim": c.out_dim, "width": c.width,
                        "sine_layers": c.sine_layers, "omega0": c.omega0, "alpha_first": c.alpha_first,
                        "alpha_hidden": c.alpha_hidden, "spread": list(p.spread),
                        "tile": None if p.tile is None else list(p.tile), "rate": p.rate,
                        "checksum": f"{p.checksum:08x}", "info": p.info})
        arrays.update({f"p{p.id}_{k}": t for k, t in enumerate(p.tensors)})
    np.savez_compressed(folder / TENSORS, **arrays)
    (folder / MANIFEST).write_text(json.dumps(entries, indent=1) + "\n")


def read(folder) -> list[Prior]:
    """The prior set in ``folder`` (a path or a package resource), each checked against its recorded checksum."""
    folder = Path(str(folder))
    entries = json.loads((folder / MANIFEST).read_text())
    with np.load(folder / TENSORS) as arrays:
        out = []
        for e in entries:
            config = FieldConfig(e["in_dim"], e["out_dim"], e["width"], e["sine_layers"], e["omega0"],
                                 e["alpha_first"], e["alpha_hidden"])
            n = 2 * (config.sine_layers + 1)
            tensors = tuple(np.asarray(arrays[f"p{e['id']}_{k}"], dtype=np.float32) for k in range(n))
            tile = None if e.get("tile") is None else tuple(e["tile"])
            prior = Prior(e["id"], e["name"], config, tensors, tuple(e["spread"]), tile, e.get("info", {}),
                          int(e.get("rate", 0)))
            if f"{prior.checksum:08x}" != e["checksum"]:
                raise ValueError(f"prior {prior.name} in {folder} is damaged (checksum mismatch); reinstall snfcodec")
            out.append(prior)
    if len({p.id for p in out}) != len(out):
        raise ValueError(f"prior numbers repeat in {folder / MANIFEST}")
    return out


@lru_cache(maxsize=1)
def shipped() -> tuple[Prior, ...]:
    """The priors that ship with this package (loaded once)."""
    here = resources.files(__name__)
    if not (here / MANIFEST).is_file():
        return ()
    return tuple(read(here))


def for_config(config: FieldConfig, tile: tuple[int, ...], rate: int = 0) -> Prior | None:
    """The shipped prior for fields of ``config``'s shape on tiles of ``tile`` (of a sound at ``rate`` Hz)
    (``prior="auto"``), or None."""
    return next((p for p in shipped() if p.fits(config, tile, rate)), None)


def for_ref(ref: PriorRef, config: FieldConfig) -> Prior:
    """The shipped prior a file names; a clear error when this installation does not have it."""
    for p in shipped():
        if p.id == ref.id:
            if p.checksum != ref.checksum or not p.fits(config):
                raise SnfFormatError(f"the file was coded against prior #{ref.id} (checksum {ref.checksum:08x}), "
                                     f"which differs from this installation's {p.name} ({p.checksum:08x}); "
                                     "decode it with the snfcodec version that wrote it")
            return p
    raise SnfFormatError(f"the file was coded against learned prior #{ref.id} (checksum {ref.checksum:08x}), "
                         "which this installation does not have; upgrade snfcodec")
