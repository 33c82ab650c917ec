"""Do the lessons' findings survive retraining? Retrain the single zoo models with other seeds and run
every lesson against each zoo; print a table of lessons x zoos with the cells that fail.

    python benchmarks/seed_robustness.py                          # seeds 11 12 13, every lesson
    python benchmarks/seed_robustness.py --seeds 11 --lessons 03 05
    python benchmarks/seed_robustness.py --root /tmp/zoos         # where the retrained zoos go (reused)
    python benchmarks/seed_robustness.py --keep /tmp/runs         # keep the executed lessons per zoo

Each zoo is a folder with the retrained ``signs_cnn``, ``digits_cnn`` and ``signs_spurious_cnn`` and
their manifest (``python -m inferml_course.models retrain NAME --seed S --out DIR`` writes the same);
the lessons load it through ``INFERML_DATA`` (the ensemble, five seeds already, stays the shipped one).
Lessons run with nbclient, every cell even after a failure (``allow_errors``), so a column lists every
assert that fails. Not part of CI: about 2 minutes of training and 4 of lessons per seed on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inferml_course import course  # noqa: E402
from inferml_course.models import zoo  # noqa: E402

SINGLE_MODELS = ("signs_cnn", "digits_cnn", "signs_spurious_cnn")


def build_zoo(root: Path, seed: int, models=SINGLE_MODELS) -> Path:
    """``root/seed_S`` with every model of ``models`` trained with ``seed`` (reused when it verifies)."""
    folder = root / f"seed_{seed}"
    for name in models:
        path = folder / f"{name}.pt"
        try:
            zoo.verify_checkpoint(path)
            continue
        except (zoo.CheckpointError, FileNotFoundError, OSError):
            pass
        start = time.perf_counter()
        model = zoo.train_zoo_model(name, progress=False, seeds=seed)
        zoo.save_checkpoint(model, name, folder)
        print(f"  trained {name} (seed {seed}) in {time.perf_counter() - start:.0f} s", flush=True)
    return folder


def test_accuracies(folder: Path | None) -> dict[str, float]:
    """Clean test accuracy of each single model of the zoo in ``folder`` (None: the shipped zoo)."""
    from inferml_course import datasets, models

    out = {}
    for name in SINGLE_MODELS:
        dirs = None if folder is None else [folder]
        model = models.load_model(name, device="cpu", search_dirs=dirs, retrain=False, progress=False)
        test = datasets.load(zoo.ZOO[name].dataset, "test")
        out[name] = models.accuracy(model, test.images, test.labels)
    return out


def failing_cells(path: Path, data_dir: Path | None, timeout: int = 600, keep: Path | None = None) -> list[str]:
    """Execute one lesson (``INFERML_DATA=data_dir``; None: the shipped zoo) and describe each failing cell;
    ``keep``: also write the executed notebook there (its printed tables show the values per zoo)."""
    import nbformat
    from nbclient import NotebookClient

    if data_dir is None:
        os.environ.pop("INFERML_DATA", None)
    else:
        os.environ["INFERML_DATA"] = str(data_dir)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, keep / path.name)
    failures = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                line = next((s for s in cell.source.splitlines() if s.strip().startswith("assert")), "")
                failures.append(f"cell {index} {output['ename']}: {line.strip()[:90] or output['evalue'][:90]}")
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="*", default=[11, 12, 13], help="none: the shipped zoo only")
    parser.add_argument("--lessons", nargs="*", default=None, help="lesson numbers, e.g. 03 05 (default: all)")
    parser.add_argument("--root", type=Path, default=Path("/tmp/inferml_seed_zoos"))
    parser.add_argument("--no-shipped", action="store_true", help="skip the column of the shipped zoo")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write every executed lesson to KEEP/<zoo>/ (to compare the printed values)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    zoos = [] if args.no_shipped else [("shipped", None)]
    for seed in args.seeds:
        print(f"zoo with seed {seed}:", flush=True)
        zoos.append((f"seed {seed}", build_zoo(args.root, seed)))
    for label, folder in zoos:
        acc = test_accuracies(folder)
        print(f"  {label}: clean test accuracy " + ", ".join(f"{k} {v:.1%}" for k, v in acc.items()), flush=True)
    lessons = [p for p in course.lesson_paths() if args.lessons is None or p.name[:2] in args.lessons]
    table = {}
    for path in lessons:
        for label, folder in zoos:
            start = time.perf_counter()
            keep = None if args.keep is None else args.keep / label.replace(" ", "_")
            table[path.stem, label] = failing_cells(path, folder, args.timeout, keep)
            print(f"  {path.stem} / {label}: {len(table[path.stem, label])} failing cells "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    print("\n| lesson | " + " | ".join(label for label, _ in zoos) + " |")
    print("|---|" + "---|" * len(zoos))
    for path in lessons:
        cells = ["ok" if not table[path.stem, label] else "<br>".join(table[path.stem, label])
                 for label, _ in zoos]
        print(f"| {path.stem} | " + " | ".join(cells) + " |")
    failed = sum(bool(v) for v in table.values())
    print(f"\n{failed} of {len(table)} lesson runs have failing cells")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
