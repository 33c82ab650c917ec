"""SHA-256 manifests (``sha256sum`` format) of the files in a data folder: checkpoints and shipped data."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

MANIFEST = "SHA256SUMS"
_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


def sha256(path: Path) -> str:
    """The SHA-256 hex digest of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_manifest(path: Path) -> tuple[dict[str, str], list[str]]:
    """(entries, problems): ``{file name: sha256}`` and one description per malformed line."""
    entries, problems = {}, []
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        return {}, [f"cannot be read ({type(err).__name__}: {err})"]
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line.strip())
        if match is None:
            problems.append(f"line {number} {line.strip()[:80]!r} is not '<64 hex digits>  <file name>'")
            continue
        digest, file = match.group(1).lower(), match.group(2).strip()
        if entries.get(file, digest) != digest:
            problems.append(f"line {number} lists {file} a second time with another SHA-256")
        entries[file] = digest
    return entries, problems


def write_manifest(directory: Path, entries: dict[str, str]) -> Path:
    """Write ``directory/SHA256SUMS`` with ``entries`` ({file name: sha256}), sorted by name."""
    path = Path(directory) / MANIFEST
    path.write_text("".join(f"{d}  {f}\n" for f, d in sorted(entries.items())))
    return path
