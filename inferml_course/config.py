"""Runtime settings: where data lives, fast mode, the default device.

Environment variables:

* ``INFERML_DATA``  a folder searched first for checkpoints (with its own ``SHA256SUMS``).
* ``INFERML_CACHE`` the user cache for retrained checkpoints (default ``~/.cache/inferml_course``).
* ``INFERML_FAST``  ``1`` runs lessons on smaller samples (CI smoke runs); lessons state it when on.
* ``INFERML_DEVICE`` forces a device (``cpu``, ``cuda``...); default: CUDA when available.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DATA_DIR = PACKAGE_DIR.parent / "data"


def fast_mode() -> bool:
    """True when ``INFERML_FAST`` is set to a true value."""
    return os.environ.get("INFERML_FAST", "").strip().lower() in {"1", "true", "yes", "on"}


def data_dirs() -> list[Path]:
    """Folders searched for shipped checkpoints, in order: ``$INFERML_DATA``, then the repository's ``data/``."""
    dirs = []
    env = os.environ.get("INFERML_DATA")
    if env:
        dirs.append(Path(env).expanduser())
    if REPO_DATA_DIR.is_dir():
        dirs.append(REPO_DATA_DIR)
    return dirs


def cache_dir() -> Path:
    """The user cache for checkpoints that were retrained here."""
    env = os.environ.get("INFERML_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "inferml_course"


def default_device() -> torch.device:
    """``$INFERML_DEVICE`` if set, else CUDA when available, else CPU."""
    env = os.environ.get("INFERML_DEVICE")
    if env:
        return torch.device(env)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def environment_report() -> dict[str, str]:
    """Versions and device facts for a lesson's environment check."""
    import platform
    import sys

    import numpy

    from . import __version__

    report = {
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
        "inferml_course": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "device": str(default_device()),
        "cpu threads": str(torch.get_num_threads()),
        "fast mode": str(fast_mode()),
    }
    for name in ("torchvision", "sklearn", "skimage", "matplotlib", "ipywidgets"):
        try:
            report[name] = __import__(name).__version__
        except Exception:  # pragma: no cover - reported, never fatal
            report[name] = "not installed"
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name(0)
    return report
