"""The model zoo: ``load_model(name)`` with shipped, checksummed checkpoints.

Resolution order for a checkpoint ``NAME.pt``:

1. ``$INFERML_DATA`` and the repository's ``data/`` folder (each with a ``SHA256SUMS`` manifest);
2. the user cache (``$INFERML_CACHE``, default ``~/.cache/inferml_course``);
3. a deterministic retrain (with a progress bar), saved to the cache for next time.

Checkpoints load with ``torch.load(..., weights_only=True)``. A file whose SHA-256 does not
match its manifest raises :class:`ChecksumError` naming the file and the retrain command; every
failure after the hash check (a truncated file whose manifest entry was rewritten, a checkpoint of
another architecture or with other state-dict keys or shapes, a malformed manifest line) raises a
:class:`CheckpointError` that also names the file and the retrain command. A data folder that does
not exist (``$INFERML_DATA``, or an entry of ``search_dirs``) is skipped with a warning.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .._core.arguments import checked
from .. import config
from .._core.checks import check_choice, check_device
from .._core.manifest import MANIFEST, parse_manifest as _parse_manifest, sha256, write_manifest
from .architectures import Ensemble, NarrowResNet, SmallCNN, SmallVAE
from .gradcon import GradConCAE, train_gradcon
from .training import train_model, train_vae
from ..datasets import load

#: the inlier class of the GradCon zoo models (0 = stop) and their epochs (the authors run 1000)
GRADCON_INLIER, GRADCON_EPOCHS = 0, 20


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
    architecture: str = "SmallCNN"  # or "NarrowResNet" (torchvision's ResNet classes), "GradConCAE" (models/gradcon.py)
    #                                 or "SmallVAE" (the generative model of CLUE, architectures.py)
    inlier_class: int | None = None  # GradConCAE: the one class it is trained on (the one-class protocol)
    grad_loss_weight: float = 0.0  # GradConCAE: alpha of the gradient-alignment loss (0 = the plain CAE)
    latent: int = 16  # SmallVAE: the dimension of the latent code


ZOO: dict[str, ModelSpec] = {
    "signs_cnn": ModelSpec("signs", 3, 9, "SmallCNN on the 9 sign classes"),
    "signs_ensemble": ModelSpec("signs", 3, 9, "deep ensemble of 5 SmallCNNs (seeds 1-5)", seeds=(1, 2, 3, 4, 5)),
    "signs_spurious_cnn": ModelSpec("signs_spurious", 3, 9,
                                    "SmallCNN trained on watermarked signs (it learns the watermark shortcut)",
                                    epochs=6),
    "digits_cnn": ModelSpec("digits", 1, 10, "SmallCNN on scikit-learn's digits", epochs=30, max_shift=2),
    "signs_gradcon": ModelSpec("signs", 3, 9, "GradCon autoencoder (gradient-alignment loss, alpha 0.03) trained "
                               "on one sign class", architecture="GradConCAE", inlier_class=GRADCON_INLIER,
                               grad_loss_weight=0.03, epochs=GRADCON_EPOCHS, lr=1e-3, batch_size=64),
    "signs_cae": ModelSpec("signs", 3, 9, "the same autoencoder trained without the gradient loss (the "
                           "reconstruction baseline), same class", architecture="GradConCAE",
                           inlier_class=GRADCON_INLIER, grad_loss_weight=0.0, epochs=GRADCON_EPOCHS, lr=1e-3,
                           batch_size=64),
    "signs_vae": ModelSpec("signs", 3, 9, "SmallVAE (latent dimension 16) on the sign images of the train split: "
                           "the generative model that CLUE and delta-CLUE search in", architecture="SmallVAE",
                           width=12, latent=16, epochs=20, lr=2e-3, batch_size=128),
    "fashion_cnn": ModelSpec("fashion", 1, 10, "SmallCNN on Fashion-MNIST (20 000 training images)", epochs=6,
                             train_size=20_000),
    "fashion_ensemble": ModelSpec("fashion", 1, 10, "deep ensemble of 5 SmallCNNs on Fashion-MNIST (seeds 1-5)",
                                  seeds=(1, 2, 3, 4, 5), epochs=6, train_size=20_000),
    "fashion_resnet": ModelSpec("fashion", 1, 10, "narrow torchvision ResNet (BasicBlocks, batch norm, in-place "
                                "ReLUs, residual additions) on Fashion-MNIST", epochs=6, train_size=20_000,
                                architecture="NarrowResNet"),
}
MODELS = tuple(ZOO)


class CheckpointError(RuntimeError):
    """A checkpoint or its manifest cannot be used; the message names the file and the retrain command."""


class ChecksumError(CheckpointError):
    """A checkpoint's SHA-256 does not match its manifest (or the manifest has no entry for it)."""


def retrain_command(name: str, directory: Path | None = None) -> str:
    """The command line that re-creates checkpoint ``name`` (in ``directory`` when given)."""
    return f"python -m inferml_course.models retrain {name}" + ("" if directory is None else f" --out {directory}")


@checked
def build_model(name: str) -> nn.Module:
    """The untrained architecture of zoo model ``name`` (eval mode)."""
    spec = ZOO[check_choice(name, MODELS, "model name")]
    if spec.architecture == "GradConCAE":
        return GradConCAE(spec.in_channels).eval()
    if spec.architecture == "SmallVAE":
        return SmallVAE(spec.in_channels, latent=spec.latent, width=spec.width).eval()

    model = Ensemble([_one(spec) for _ in spec.seeds]) if len(spec.seeds) > 1 else _one(spec)
    return model.eval()


def _one(spec: ModelSpec) -> nn.Module:
    """One untrained classifier of ``spec``'s architecture."""
    if spec.architecture == "NarrowResNet":
        return NarrowResNet(spec.in_channels, spec.num_classes, width=spec.width)
    return SmallCNN(spec.in_channels, spec.num_classes, width=spec.width)


def check_seeds(name: str, seeds) -> tuple[int, ...]:
    """``seeds`` for zoo model ``name``: None (the spec's own), or non-negative ints, exactly one for a
    single model and at least two for an ensemble (one member per seed), without repeats."""
    spec = ZOO[check_choice(name, MODELS, "model name")]
    if seeds is None:
        return spec.seeds
    seeds = (seeds,) if isinstance(seeds, int) and not isinstance(seeds, bool) else tuple(seeds)
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must not repeat (identical ensemble members), got {seeds!r}")
    if len(spec.seeds) == 1 and len(seeds) != 1:
        raise ValueError(f"{name} is a single model: give one seed, got {len(seeds)}")
    if len(spec.seeds) > 1 and len(seeds) < 2:
        raise ValueError(f"{name} is an ensemble: give at least two seeds (one per member), got {len(seeds)}")
    return seeds


@checked
def train_zoo_model(name: str, progress: bool = True, seeds=None) -> nn.Module:
    """Train zoo model ``name`` from scratch, deterministically from ``seeds`` (None: its spec's seeds;
    see :func:`check_seeds`): the seed sets the initialisation, the data order and the augmentation."""

    spec = ZOO[check_choice(name, MODELS, "model name")]
    seeds = check_seeds(name, seeds)
    data = load(spec.dataset, "train")
    images, labels = data.images, data.labels
    if spec.architecture == "GradConCAE":  # one-class protocol: inliers of the train split, best epoch on val
        val = load(spec.dataset, "val")
        inliers = images[labels == spec.inlier_class]
        if spec.train_size is not None:
            inliers = inliers[:spec.train_size]
        return train_gradcon(inliers, val.images[val.labels == spec.inlier_class], epochs=spec.epochs,
                             grad_loss_weight=spec.grad_loss_weight, lr=spec.lr, batch_size=spec.batch_size,
                             seed=seeds[0], progress=progress, description=f"training {name} (seed {seeds[0]})")
    if spec.train_size is not None:
        images, labels = images[:spec.train_size], labels[:spec.train_size]
    if spec.architecture == "SmallVAE":  # unsupervised: the images only
        return train_vae(images, latent=spec.latent, width=spec.width, epochs=spec.epochs, lr=spec.lr,
                         batch_size=spec.batch_size, seed=seeds[0], progress=progress,
                         description=f"training {name} (seed {seeds[0]})")
    members = []
    for seed in seeds:
        torch.manual_seed(seed)  # parameter initialisation
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            member = _one(spec)
        train_model(member, images, labels, epochs=spec.epochs, lr=spec.lr, batch_size=spec.batch_size,
                    seed=seed, max_shift=spec.max_shift, progress=progress,
                    description=f"training {name} (seed {seed})")
        members.append(member)
    model = Ensemble(members) if len(members) > 1 else members[0]
    return model.eval()


def read_manifest(directory: Path, name: str | None = None) -> dict[str, str]:
    """``{file name: sha256}`` from ``directory/SHA256SUMS`` (``sha256sum`` format; ``{}`` when absent).

    A malformed manifest (a line that is not ``<64 hex digits>  <file name>``, a file listed twice with
    different digests) raises :class:`CheckpointError` naming the manifest, the line and the retrain
    command of checkpoint ``name`` (which rewrites the manifest).
    """
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return {}
    entries, problems = _parse_manifest(path)
    if problems:
        fix = retrain_command(name or "NAME", Path(directory))
        which = f" (it checks {Path(directory) / f'{name}.pt'})" if name else ""
        raise CheckpointError(f"the checkpoint manifest {path}{which} is malformed: {'; '.join(problems[:3])}. "
                              f"Re-create the checkpoint and its manifest entry with: {fix}")
    return entries


def verify_checkpoint(path: Path) -> None:
    """Raise :class:`ChecksumError` unless ``path`` matches the manifest beside it."""
    path = Path(path)
    name = path.stem
    expected = read_manifest(path.parent, name).get(path.name)
    if expected is None:
        raise ChecksumError(f"{path} has no entry in {path.parent / MANIFEST}; "
                            f"re-create it with: {retrain_command(name)} --out {path.parent}")
    actual = sha256(path)
    if actual != expected:
        raise ChecksumError(f"checkpoint {path} is corrupted or was changed: SHA-256 {actual[:12]}... "
                            f"does not match the manifest ({expected[:12]}...). "
                            f"Retrain it with: {retrain_command(name)} --out {path.parent}")


@checked
def save_checkpoint(model: nn.Module, name: str, directory: Path) -> Path:
    """Save ``model``'s state dict as ``directory/name.pt`` and record its hash in the manifest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.pt"
    torch.save(model.state_dict(), path)
    manifest = directory / MANIFEST
    entries, problems = _parse_manifest(manifest) if manifest.is_file() else ({}, [])
    if problems:  # rewriting the manifest is how it gets repaired: keep the good lines, drop the others
        warnings.warn(f"{manifest} was malformed ({'; '.join(problems[:3])}); those lines are dropped as the "
                      "manifest is rewritten", stacklevel=2)
    entries[path.name] = sha256(path)
    write_manifest(directory, entries)
    return path


def _search_dirs(search_dirs, stacklevel: int = 3) -> list[Path]:
    """The data folders to search: ``search_dirs`` or :func:`config.data_dirs`, without the ones that do not
    exist, each of which gets a warning (a mistyped ``$INFERML_DATA`` is not a silent fallback)."""
    if search_dirs is None:
        dirs = list(config.data_dirs())
        env = os.environ.get("INFERML_DATA")
        source = {Path(env).expanduser(): "INFERML_DATA"} if env else {}
    else:
        if isinstance(search_dirs, (str, os.PathLike)):
            raise TypeError(f"search_dirs must be a list of folders, got the single path {str(search_dirs)!r}; "
                            f"write search_dirs=[{str(search_dirs)!r}]")
        try:
            dirs = [Path(d) for d in search_dirs]
        except TypeError:
            raise TypeError(f"search_dirs must be a list of folders (str or Path), got {search_dirs!r}") from None
        source = {}
    kept = []
    for directory in dirs:
        if directory.is_dir():
            kept.append(directory)
        else:
            what = f"INFERML_DATA={str(directory)!r}" if directory in source else f"search_dirs entry {str(directory)!r}"
            state = "is not a folder" if directory.exists() else "does not exist"
            warnings.warn(f"{what} {state}; checkpoints are looked for in the other data folders and the cache "
                          "instead", stacklevel=stacklevel)
    return kept


def find_checkpoint(name: str, search_dirs=None, cache: Path | None = None) -> Path | None:
    """The first ``name.pt`` in ``search_dirs`` (default :func:`config.data_dirs`) then ``cache``.

    A data folder that does not exist is skipped with a warning.
    """
    dirs = _search_dirs(search_dirs)
    dirs.append(config.cache_dir() if cache is None else Path(cache))
    for directory in dirs:
        path = Path(directory) / f"{name}.pt"
        if path.is_file():
            return path
    return None


@checked
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
    if device is None:
        try:
            device = config.default_device()
        except RuntimeError:
            raise ValueError(f"INFERML_DEVICE={os.environ.get('INFERML_DEVICE')!r} is not a device name; use "
                             "'cpu', 'cuda', 'cuda:0', 'mps', ...") from None
        device = check_device(device, "INFERML_DEVICE" if os.environ.get("INFERML_DEVICE") else "device")
    else:
        device = check_device(device, "device")
    if retrain not in (True, False):
        raise TypeError(f"retrain must be True or False, got {retrain!r}")
    path = find_checkpoint(name, search_dirs, cache)
    if path is None:
        if not retrain:
            raise FileNotFoundError(f"no checkpoint for {name!r}; create it with: {retrain_command(name)}")
        model = train_zoo_model(name, progress=progress)
        save_checkpoint(model, name, config.cache_dir() if cache is None else cache)
        return model.to(device).eval()
    verify_checkpoint(path)
    return load_checkpoint(name, path).to(device).eval()


def _describe_mismatch(model: nn.Module, state: Mapping) -> str:
    """What differs between ``model``'s state dict and ``state`` (a few keys of each kind)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} instead of {tuple(v.shape)}" for k, v in expected.items()
              if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != v.shape]
    other = [k for k in expected if k in state and not isinstance(state[k], torch.Tensor)]
    parts = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("other shapes", shapes),
                        ("values that are not tensors", other)):
        if keys:
            parts.append(f"{len(keys)} {label} ({', '.join(map(str, keys[:3]))}{', ...' if len(keys) > 3 else ''})")
    return "; ".join(parts)


def load_checkpoint(name: str, path: Path) -> nn.Module:
    """The architecture of zoo model ``name`` with the weights of checkpoint ``path`` (on the CPU, eval mode).

    Every failure raises :class:`CheckpointError` naming ``path`` and the retrain command: a file that
    ``torch.load(weights_only=True)`` cannot read (truncated, empty, not a PyTorch file, a pickled object),
    a file holding something other than a state dict, or a state dict of another architecture (other
    keys or shapes). The hash is not checked here (:func:`verify_checkpoint` does that first).
    """
    path = Path(path)
    fix = f"Retrain it with: {retrain_command(name, path.parent)}"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, OSError, UnpicklingError, ... here
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else "no message"
        raise CheckpointError(f"checkpoint {path} cannot be read as a PyTorch state dict ({type(err).__name__}: "
                              f"{reason}); it may be truncated or not a checkpoint at all. {fix}") from err
    if not isinstance(state, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict of "
                              f"{name}. {fix}")
    model = build_model(name)
    mismatch = _describe_mismatch(model, state)
    try:
        if mismatch:
            raise RuntimeError(mismatch)
        model.load_state_dict(state)
    except Exception as err:
        detail = mismatch or (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise CheckpointError(f"checkpoint {path} does not fit the {name} architecture ({ZOO[name].description}): "
                              f"{detail}. It may come from another model or an older version of the course. "
                              f"{fix}") from err
    return model.eval()
