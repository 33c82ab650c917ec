"""Did a change slow the lessons down? Run every lesson at two revisions, alternating A B A B per lesson,
and print the median seconds of each and their ratio.

    python benchmarks/compare_runtimes.py cbffe1e HEAD                 # every lesson, 2 runs each
    python benchmarks/compare_runtimes.py cbffe1e 0e95957 --lessons 07 10 --repeats 3

Each revision is checked out as a temporary git worktree and its lessons run with its own package
(``PYTHONPATH``), each in a fresh kernel (:func:`inferml_course.course.execute_lesson`). Alternating
the two spreads a busy machine's noise over both; still, run it on an idle machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN = ("import sys; from inferml_course import course; "
       "path = [p for p in course.lesson_paths() if p.name[:2] == sys.argv[1]][0]; "
       "print(round(course.execute_lesson(path, progress=False)[1], 2))")


def lesson_seconds(tree: Path, lesson: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", RUN, lesson], cwd=tree, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"lesson {lesson} failed in {tree}:\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--lessons", nargs="*", default=[f"{i:02d}" for i in range(11)])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        trees = {}
        for label, rev in (("before", args.before), ("after", args.after)):
            trees[label] = Path(tmp) / label
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(trees[label]), rev],
                           check=True, capture_output=True)
        try:
            times = {}
            for lesson in args.lessons:
                for _ in range(args.repeats):
                    for label, tree in trees.items():
                        times.setdefault((lesson, label), []).append(lesson_seconds(tree, lesson))
                print(f"  {lesson}: {times[lesson, 'before']} / {times[lesson, 'after']}", flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                               capture_output=True)
    print(f"\n| lesson | {args.before} (s) | {args.after} (s) | ratio |\n|---|---:|---:|---:|")
    worst = 0.0
    for lesson in args.lessons:
        a, b = statistics.median(times[lesson, "before"]), statistics.median(times[lesson, "after"])
        worst = max(worst, b / a)
        print(f"| {lesson} | {a:.1f} | {b:.1f} | {b / a:.2f} |")
    print(f"\nworst ratio {worst:.2f} (medians of {args.repeats} alternating runs each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
