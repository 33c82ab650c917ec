"""Fashion-MNIST (Zalando SE, MIT licence): 28x28 grey photos of clothes, shoes and bags, 10 classes.

The course's *hesitant* world: a small CNN reaches about 90 % on it, so natural mistakes between
similar garments (shirt / T-shirt / pullover / coat, sneaker / sandal / ankle boot) are plentiful.

Splits (fixed, whatever the source of the files):

* ``train``: the first 55 000 images of the official training set;
* ``val``: the last 5 000 images of the official training set;
* ``test``: the official 10 000 test images, unchanged and in their order.

The four official IDX files (``*-idx*-ubyte.gz``) are looked for, in order, in
``$INFERML_DATA/fashion-mnist``, the repository's ``data/fashion-mnist`` (shipped, with SHA-256 lines
in ``data/SHA256SUMS``), Debian's ``/usr/share/datasets/fashion-mnist`` (``apt-get install
dataset-fashion-mnist``) and the user cache; only when none has them and a network is reachable does
torchvision download them into the cache (Colab without the repository). Every file is checked
against the official SHA-256 in :data:`FILES` before it is read. Offline and without the files, the
loader raises ``FileNotFoundError`` naming the install line at once (never a hang, never a subset).

Rebuild the shipped copy from Debian's package (copies the files, checks them, updates the manifest)::

    python -m inferml_course.datasets.fashion ship --source /usr/share/datasets/fashion-mnist --out data
"""
from __future__ import annotations

import argparse
import gzip
import shutil
import sys
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch

from .._core.arguments import checked
from .. import config
from .._core.checks import check_choice
from .._core.manifest import MANIFEST, parse_manifest, sha256 as _sha256, write_manifest
from ._base import ImageDataset

__all__ = ["CLASSES", "CONFUSABLE_GROUPS", "CONFUSABLE_PAIRS", "FILES", "SPLIT_SIZES", "fashion", "find_files"]

#: The official class names, ``CLASSES[label]``.
CLASSES = ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
           "ankle boot")
#: Groups of classes that differ in a few details (labels), and what tells them apart.
CONFUSABLE_GROUPS = MappingProxyType({
    "tops": ((0, 2, 4, 6), "sleeve length, a collar or buttons, an open front (coat) and the thickness of the fabric"),
    "shoes": ((5, 7, 9), "an open upper with straps (sandal), a low closed upper (sneaker), a shaft above the ankle (boot)"),
})
#: Confusable pairs (label P, label Q) for the explanatory paradigms: "why P, rather than Q?"
CONFUSABLE_PAIRS = ((6, 0), (4, 2), (2, 6), (7, 5), (9, 7))
#: The official files and their SHA-256 (identical to Zalando's release and Debian's package).
FILES = MappingProxyType({
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
})
SPLIT_SIZES = MappingProxyType({"train": 55_000, "val": 5_000, "test": 10_000})
FOLDER = "fashion-mnist"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = ("install Debian's package (sudo apt-get install dataset-fashion-mnist), or put the four "
                "official files in $INFERML_DATA/fashion-mnist")
_DOWNLOAD_HOST = "fashion-mnist.s3-website.eu-central-1.amazonaws.com"


def search_dirs() -> list[Path]:
    """The folders searched for the IDX files, in order (see the module docstring)."""
    dirs = [d / FOLDER for d in config.data_dirs()]
    return dirs + [DEBIAN_DIR, config.cache_dir() / FOLDER]


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES)


_VERIFIED: set[tuple[str, float]] = set()   # (file, mtime) already checked in this process


def _verify(folder: Path) -> None:
    for name, digest in FILES.items():
        key = (str(folder / name), (folder / name).stat().st_mtime)
        if key in _VERIFIED:
            continue
        actual = _sha256(folder / name)
        if actual != digest:
            raise ValueError(f"{folder / name} is not the official Fashion-MNIST file: SHA-256 {actual[:12]}... "
                             f"instead of {digest[:12]}...; delete it, or {INSTALL_HINT}")
        _VERIFIED.add(key)


def _download(folder: Path, timeout: float = 3.0) -> None:
    """Fetch the files with torchvision into ``folder`` (online only; fails within ``timeout`` offline)."""
    from ..online import can_download  # above datasets: see UPWARD, test_architecture

    if not can_download(_DOWNLOAD_HOST, port=80, timeout=timeout):
        raise FileNotFoundError("Fashion-MNIST's files were not found in " + ", ".join(map(str, search_dirs()))
                                + f" and there is no network to download them: {INSTALL_HINT}")
    from torchvision.datasets import FashionMNIST

    FashionMNIST(str(folder / "torchvision"), train=True, download=True)
    FashionMNIST(str(folder / "torchvision"), train=False, download=True)
    raw = folder / "torchvision" / "FashionMNIST" / "raw"
    for name in FILES:
        shutil.copyfile(raw / name, folder / name)


@checked
def find_files(download: bool = True) -> Path:
    """The first folder of :func:`search_dirs` that holds all four files (checked against :data:`FILES`);
    else, with ``download``, a torchvision download into the cache; else ``FileNotFoundError``."""
    for folder in search_dirs():
        if _complete(folder):
            _verify(folder)
            return folder
    if not download:
        raise FileNotFoundError("Fashion-MNIST's files were not found in "
                                + ", ".join(map(str, search_dirs())) + f": {INSTALL_HINT}")
    folder = config.cache_dir() / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    _download(folder)
    _verify(folder)
    return folder


def read_idx(path: Path) -> np.ndarray:
    """The array in a gzipped IDX file (``uint8`` images (N, 28, 28) or labels (N,))."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: {body.size} values for shape {shape}")
    return body.reshape(shape).copy()  # writable, independent of the decompressed bytes


@lru_cache(maxsize=1)
def _arrays(folder: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    base = Path(folder)
    train_x, train_y = read_idx(base / "train-images-idx3-ubyte.gz"), read_idx(base / "train-labels-idx1-ubyte.gz")
    test_x, test_y = read_idx(base / "t10k-images-idx3-ubyte.gz"), read_idx(base / "t10k-labels-idx1-ubyte.gz")
    cut = SPLIT_SIZES["train"]
    return {"train": (train_x[:cut], train_y[:cut]), "val": (train_x[cut:], train_y[cut:]), "test": (test_x, test_y)}


@checked
def fashion(split: str = "train") -> ImageDataset:
    """A fixed split of Fashion-MNIST: images (N, 1, 28, 28) float32 in [0, 1], labels 0-9 (see :data:`CLASSES`)."""
    check_choice(split, tuple(SPLIT_SIZES), "split")
    x, y = _arrays(str(find_files()))[split]
    images = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)
    return ImageDataset(images, torch.from_numpy(y.astype(np.int64)), CLASSES, name=f"fashion {split}")


def ship(source: Path, out: Path) -> Path:
    """Copy the four official files from ``source`` to ``out/fashion-mnist`` and record them in ``out/SHA256SUMS``."""
    source, out = Path(source), Path(out)
    if not _complete(source):
        raise FileNotFoundError(f"{source} does not hold the four Fashion-MNIST files {sorted(FILES)}; {INSTALL_HINT}")
    _verify(source)
    target = out / FOLDER
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(source / name, target / name)
    _verify(target)
    manifest = out / MANIFEST
    entries, problems = parse_manifest(manifest) if manifest.is_file() else ({}, [])
    if problems:
        raise ValueError(f"{manifest} is malformed: {'; '.join(problems[:3])}")
    entries.update({f"{FOLDER}/{name}": digest for name, digest in FILES.items()})
    write_manifest(out, entries)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inferml_course.datasets.fashion",
                                     description="Ship Fashion-MNIST's official files with the course.")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("ship", help="copy the official IDX files into a data folder and its manifest")
    cmd.add_argument("--source", type=Path, default=DEBIAN_DIR)
    cmd.add_argument("--out", type=Path, default=config.REPO_DATA_DIR)
    args = parser.parse_args(argv)
    try:
        target = ship(args.source, args.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {target} and its lines in {args.out / 'SHA256SUMS'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
