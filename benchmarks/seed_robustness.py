"""Do the lessons' findings survive retraining? Retrain the single zoo models with other seeds and run
every lesson against each zoo; print a table of lessons x zoos with the cells that fail.

    python benchmarks/seed_robustness.py --world fashion --lessons 06   # the Fashion-MNIST zoos, seeds 11-15
    python benchmarks/seed_robustness.py                          # seeds 11 12 13, every lesson
    python benchmarks/seed_robustness.py --seeds 11 --lessons 03 05
    python benchmarks/seed_robustness.py --root /tmp/zoos         # where the retrained zoos go (reused)
    python benchmarks/seed_robustness.py --keep /tmp/runs         # keep the executed lessons per zoo

Each zoo is a folder with the retrained ``signs_cnn``, ``digits_cnn`` and ``signs_spurious_cnn`` and
their manifest (``python -m inferml_course.models retrain NAME --seed S --out DIR`` writes the same);
the lessons load it through ``INFERML_DATA`` (the ensemble, five seeds already, stays the shipped one).
Lessons run with nbclient, every cell even after a failure (``allow_errors``), so a column lists every
assert that fails. Not part of CI: about 2 minutes of training and 4 of lessons per seed on 2 CPU cores.

``--world fashion`` (default seeds 11-15) retrains ``fashion_cnn`` and ``fashion_resnet`` with each seed and
builds each zoo's ``fashion_ensemble`` from five ``fashion_cnn`` trainings (the ensemble's recipe is the
single model's, member by member): zoo S gets the members of seeds S, S+1, ..., S+4 out of a pool of nine
(seeds 11-19), so neighbouring zoos share members and the ensembles' spread understates fully
independent retrainings. Every lesson run records its findings (``inferml_course.findings``) through
``$INFERML_FINDINGS``; the values of the retrained zoos are merged into ``data/findings/fashion_seeds.json``
(the lessons' robustness ledger reads it; only the lessons run are replaced).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json  # noqa: E402

from inferml_course import course, findings  # noqa: E402
from inferml_course.models import zoo  # noqa: E402

SINGLE_MODELS = ("signs_cnn", "digits_cnn", "signs_spurious_cnn")
FASHION_MODELS = ("fashion_cnn", "fashion_resnet")
ENSEMBLE_SIZE = 5


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


def _checkpoint_ok(path: Path) -> bool:
    try:
        zoo.verify_checkpoint(path)
        return True
    except (zoo.CheckpointError, FileNotFoundError, OSError):
        return False


def build_pool(root: Path, seeds) -> None:
    """``root/pool/seed_S/fashion_cnn.pt`` for every seed (reused when they verify): the retrained single models
    and the ensembles' members (the ensemble's recipe is fashion_cnn's, member by member)."""
    for s in seeds:
        build_zoo(root / "pool", s, ("fashion_cnn",))


def build_fashion_zoo(root: Path, seed: int, resnet: bool = True) -> Path:
    """``root/seed_S``: fashion_cnn trained with ``seed``, fashion_resnet trained with ``seed`` and a
    fashion_ensemble of the fashion_cnn trainings with seeds ``seed`` ... ``seed + 4`` (from :func:`build_pool`;
    everything reused when it verifies)."""
    from inferml_course.models import Ensemble

    build_pool(root, range(seed, seed + ENSEMBLE_SIZE))
    folder = build_zoo(root, seed, ("fashion_resnet",) if resnet else ())
    folder.mkdir(parents=True, exist_ok=True)
    if not _checkpoint_ok(folder / "fashion_cnn.pt"):
        zoo.save_checkpoint(zoo.load_checkpoint("fashion_cnn", root / "pool" / f"seed_{seed}" / "fashion_cnn.pt"),
                            "fashion_cnn", folder)
    if not _checkpoint_ok(folder / "fashion_ensemble.pt"):
        members = [zoo.load_checkpoint("fashion_cnn", root / "pool" / f"seed_{s}" / "fashion_cnn.pt")
                   for s in range(seed, seed + ENSEMBLE_SIZE)]
        zoo.save_checkpoint(Ensemble(members).eval(), "fashion_ensemble", folder)
        print(f"  assembled fashion_ensemble of zoo seed {seed} (member seeds {seed}-{seed + ENSEMBLE_SIZE - 1})",
              flush=True)
    return folder


def test_accuracies(folder: Path | None, names=SINGLE_MODELS) -> dict[str, float]:
    """Clean test accuracy of each model of ``names`` in the zoo in ``folder`` (None: the shipped zoo)."""
    from inferml_course import datasets, models

    out = {}
    for name in names:
        dirs = None if folder is None else [folder]
        model = models.load_model(name, device="cpu", search_dirs=dirs, retrain=False, progress=False)
        test = datasets.load(zoo.ZOO[name].dataset, "test")
        out[name] = models.accuracy(model, test.images, test.labels)
    return out


def failing_cells(path: Path, data_dir: Path | None, timeout: int = 600, keep: Path | None = None,
                  record: Path | None = None) -> list[str]:
    """Execute one lesson (``INFERML_DATA=data_dir``; None: the shipped zoo) and describe each failing cell;
    ``keep``: also write the executed notebook there (its printed tables show the values per zoo);
    ``record``: the folder the lesson's findings are written to (``INFERML_FINDINGS``)."""
    import nbformat
    from nbclient import NotebookClient

    for key, value in (("INFERML_DATA", data_dir), ("INFERML_FINDINGS", record)):
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = str(value)
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


def merge_findings(runs: dict[str, Path], lessons, path: Path = findings.SEEDS_FILE) -> None:
    """Write the findings each retrained zoo recorded (``runs``: zoo label -> its INFERML_FINDINGS folder) into
    ``path`` as ``{lesson: {finding: {zoo label: value}}}``, replacing the entries of ``lessons`` only."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:  # several lessons' runs may merge at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        _merge(runs, lessons, path)
    path.with_suffix(".lock").unlink(missing_ok=True)


def _merge(runs: dict[str, Path], lessons, path: Path) -> None:
    data = json.loads(path.read_text()) if path.is_file() else {}
    for lesson in lessons:
        merged: dict[str, dict[str, float]] = {}
        for label, folder in runs.items():
            file = folder / f"{lesson}.json"
            if file.is_file():
                for name, entry in json.loads(file.read_text()).items():
                    merged.setdefault(name, {})[label] = round(entry["value"], 6)
        data[lesson] = merged
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote the retrained zoos' findings of lessons {', '.join(lessons)} to {path}")


def findings_table(path: Path = findings.SEEDS_FILE) -> str:
    """The README's seed table: every finding of the seeds file with its range over the retrained zoos and
    whether its sign holds on all of them (a lesson asserts it only then, and only if its interval excludes 0)."""
    data = json.loads(path.read_text())
    lines = ["| lesson | finding | retrainings | range | same sign on all |", "|---|---|---|---|---|"]
    for lesson in sorted(data):
        for name, values in sorted(data[lesson].items()):
            v = list(values.values())
            same = "yes" if min(v) > 0 or max(v) < 0 else "no"
            lines.append(f"| {lesson} | {name} | {len(v)} | {min(v):+.3f} to {max(v):+.3f} | {same} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", choices=("signs", "fashion"), default="signs",
                        help="which single models to retrain (fashion: also writes data/findings/fashion_seeds.json)")
    parser.add_argument("--seeds", type=int, nargs="*", default=None,
                        help="none: the shipped zoo only (default 11 12 13; with --world fashion 11 12 13 14 15)")
    parser.add_argument("--lessons", nargs="*", default=None, help="lesson numbers, e.g. 03 05 (default: all)")
    parser.add_argument("--root", type=Path, default=Path("/tmp/inferml_seed_zoos"))
    parser.add_argument("--no-shipped", action="store_true", help="skip the column of the shipped zoo")
    parser.add_argument("--skip-missing-resnet", action="store_true",
                        help="fashion: do not train a missing fashion_resnet (lessons that use it are then refused)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write every executed lesson to KEEP/<zoo>/ (to compare the printed values)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--table", action="store_true",
                        help="print the README's table of data/findings/fashion_seeds.json and stop")
    args = parser.parse_args(argv)
    if args.table:
        print(findings_table())
        return 0
    fashion = args.world == "fashion"
    if args.seeds is None:
        args.seeds = [11, 12, 13, 14, 15] if fashion else [11, 12, 13]
    root = args.root / "fashion" if fashion else args.root
    zoos = [] if args.no_shipped else [("shipped", None)]
    for seed in args.seeds:
        print(f"zoo with seed {seed}:", flush=True)
        zoos.append((f"seed {seed}", build_fashion_zoo(root, seed, not args.skip_missing_resnet) if fashion
                     else build_zoo(root, seed)))
    names = (*FASHION_MODELS, "fashion_ensemble") if fashion else SINGLE_MODELS
    if fashion and any(not (folder / "fashion_resnet.pt").is_file() for _, folder in zoos if folder is not None):
        names = ("fashion_cnn", "fashion_ensemble")
    for label, folder in zoos:
        acc = test_accuracies(folder, names)
        print(f"  {label}: clean test accuracy " + ", ".join(f"{k} {v:.1%}" for k, v in acc.items()), flush=True)
    lessons = [p for p in course.lesson_paths() if args.lessons is None or p.name[:2] in args.lessons]
    if fashion and "fashion_resnet" not in names:  # a run would silently load the shipped ResNet instead
        refused = [p.name for p in lessons if "fashion_resnet" in p.read_text()]
        if refused:
            print(f"refused: {', '.join(refused)} use fashion_resnet, which some retrained zoos lack; run "
                  "without --skip-missing-resnet to train it")
            return 2
    table, runs = {}, {}
    for path in lessons:
        for label, folder in zoos:
            start = time.perf_counter()
            keep = None if args.keep is None else args.keep / label.replace(" ", "_")
            record = None if folder is None else root / "findings" / label.replace(" ", "_")
            if record is not None:
                runs[label] = record
                (record / f"{path.name[:2]}.json").unlink(missing_ok=True)
            table[path.stem, label] = failing_cells(path, folder, args.timeout, keep, record)
            print(f"  {path.stem} / {label}: {len(table[path.stem, label])} failing cells "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    print("\n| lesson | " + " | ".join(label for label, _ in zoos) + " |")
    print("|---|" + "---|" * len(zoos))
    for path in lessons:
        cells = ["ok" if not table[path.stem, label] else "<br>".join(table[path.stem, label])
                 for label, _ in zoos]
        print(f"| {path.stem} | " + " | ".join(cells) + " |")
    if fashion and runs:
        merge_findings(runs, [p.name[:2] for p in lessons])
    failed = sum(bool(v) for v in table.values())
    print(f"\n{failed} of {len(table)} lesson runs have failing cells")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
