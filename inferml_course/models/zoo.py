"""The model zoo: ``load_model(name)`` with shipped, checksummed checkpoints.

Resolution order for a checkpoint ``NAME.pt``:

1. ``$INFERML_DATA`` and the repository's ``data/`` folder (each with a ``SHA256SUMS`` manifest);
2. the user cache (``$INFERML_CACHE``, default ``~/.cache/inferml_course``);
3. a deterministic retrain (with a progress bar), saved to the cache for next time.

Checkpoints load with ``torch.load(..., weights_only=True)``. A file whose SHA-256 does not
match its manifest raises :class:`ChecksumError` naming the file and the retrain command.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import config
from .._core.checks import check_choice
from .architectures import Ensemble, SmallCNN
from .training import train_model

MANIFEST = "SHA256SUMS"


@dataclass(frozen=True)
class ModelSpec:
    """How a zoo model is built and trained (all of it is deterministic given the seeds)."""

    dataset: str                  # a name accepted by inferml_course.datasets.load
    in_channels: int
    num_classes: int
    description: str
    seeds: tuple[int, ...] = (0,)  # more than one seed = a deep ensemble
    width: int = 16
    epochs: int = 8
    lr: float = 3e-3
    batch_size: int = 128
    max_shift: int = 0
    train_size: int | None = None  # None = the whole training split


ZOO: dict[str, ModelSpec] = {
    "signs_cnn": ModelSpec("signs", 3, 9, "SmallCNN on the 9 sign classes"),
    "signs_ensemble": ModelSpec("signs", 3, 9, "deep ensemble of 5 SmallCNNs (seeds 1-5)", seeds=(1, 2, 3, 4, 5)),
    "signs_spurious_cnn": ModelSpec("signs_spurious", 3, 9,
                                    "SmallCNN trained on watermarked signs (it learns the watermark shortcut)",
                                    epochs=6),
    "digits_cnn": ModelSpec("digits", 1, 10, "SmallCNN on scikit-learn's digits", epochs=30, max_shift=2),
}
MODELS = tuple(ZOO)


class ChecksumError(RuntimeError):
    """A checkpoint's SHA-256 does not match its manifest."""


def retrain_command(name: str) -> str:
    return f"python -m inferml_course.models retrain {name}"


def build_model(name: str) -> nn.Module:
    """The untrained architecture of zoo model ``name`` (eval mode)."""
    spec = ZOO[check_choice(name, MODELS, "model name")]

    def one():
        return SmallCNN(spec.in_channels, spec.num_classes, width=spec.width)

    model = Ensemble([one() for _ in spec.seeds]) if len(spec.seeds) > 1 else one()
    return model.eval()


def train_zoo_model(name: str, progress: bool = True) -> nn.Module:
    """Train zoo model ``name`` from scratch, deterministically from its spec's seeds."""
    from ..datasets import load

    spec = ZOO[check_choice(name, MODELS, "model name")]
    data = load(spec.dataset, "train")
    images, labels = data.images, data.labels
    if spec.train_size is not None:
        images, labels = images[:spec.train_size], labels[:spec.train_size]
    members = []
    for seed in spec.seeds:
        torch.manual_seed(seed)  # parameter initialisation
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            member = SmallCNN(spec.in_channels, spec.num_classes, width=spec.width)
        train_model(member, images, labels, epochs=spec.epochs, lr=spec.lr, batch_size=spec.batch_size,
                    seed=seed, max_shift=spec.max_shift, progress=progress,
                    description=f"training {name}" + (f" (seed {seed})" if len(spec.seeds) > 1 else ""))
        members.append(member)
    model = Ensemble(members) if len(members) > 1 else members[0]
    return model.eval()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(directory: Path) -> dict[str, str]:
    """``{file name: sha256}`` from ``directory/SHA256SUMS`` (``sha256sum`` format)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return {}
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, file = line.split(maxsplit=1)
            entries[file.lstrip("*")] = digest
    return entries


def verify_checkpoint(path: Path) -> None:
    """Raise :class:`ChecksumError` unless ``path`` matches the manifest beside it."""
    path = Path(path)
    name = path.stem
    expected = read_manifest(path.parent).get(path.name)
    if expected is None:
        raise ChecksumError(f"{path} has no entry in {path.parent / MANIFEST}; "
                            f"re-create it with: {retrain_command(name)} --out {path.parent}")
    actual = sha256(path)
    if actual != expected:
        raise ChecksumError(f"checkpoint {path} is corrupted or was changed: SHA-256 {actual[:12]}... "
                            f"does not match the manifest ({expected[:12]}...). "
                            f"Retrain it with: {retrain_command(name)} --out {path.parent}")


def save_checkpoint(model: nn.Module, name: str, directory: Path) -> Path:
    """Save ``model``'s state dict as ``directory/name.pt`` and record its hash in the manifest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.pt"
    torch.save(model.state_dict(), path)
    entries = read_manifest(directory)
    entries[path.name] = sha256(path)
    (directory / MANIFEST).write_text("".join(f"{d}  {f}\n" for f, d in sorted(entries.items())))
    return path


def find_checkpoint(name: str, search_dirs=None, cache: Path | None = None) -> Path | None:
    """The first ``name.pt`` in ``search_dirs`` (default :func:`config.data_dirs`) then ``cache``."""
    dirs = list(config.data_dirs() if search_dirs is None else search_dirs)
    dirs.append(config.cache_dir() if cache is None else Path(cache))
    for directory in dirs:
        path = Path(directory) / f"{name}.pt"
        if path.is_file():
            return path
    return None


def load_model(name: str, device=None, search_dirs=None, cache: Path | None = None, retrain: bool = True,
               progress: bool = True) -> nn.Module:
    """Load zoo model ``name`` in eval mode on ``device`` (default: :func:`config.default_device`).

    Args:
        search_dirs: folders with shipped checkpoints (default ``$INFERML_DATA`` and ``data/``).
        cache: the cache folder (default :func:`config.cache_dir`).
        retrain: when no checkpoint exists, retrain deterministically and cache the result;
            with ``retrain=False`` a missing checkpoint raises ``FileNotFoundError``.
    """
    check_choice(name, MODELS, "model name")
    device = config.default_device() if device is None else torch.device(device)
    path = find_checkpoint(name, search_dirs, cache)
    if path is None:
        if not retrain:
            raise FileNotFoundError(f"no checkpoint for {name!r}; create it with: {retrain_command(name)}")
        model = train_zoo_model(name, progress=progress)
        save_checkpoint(model, name, config.cache_dir() if cache is None else cache)
        return model.to(device).eval()
    verify_checkpoint(path)
    model = build_model(name)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(device).eval()
