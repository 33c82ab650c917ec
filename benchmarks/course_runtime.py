"""Execute every lesson (nbclient) and print its wall-clock time as a markdown table.

Run: python benchmarks/course_runtime.py [--lessons 00 05]
Budget (DESIGN.md): <= 90 s per lesson on 2 CPU cores, the whole course <= 12 min.
"""
import argparse
import os
import platform

import torch

from inferml_course import course


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lessons", nargs="*", default=None)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)\n")
    print("| lesson | seconds |\n|---|---|")
    total = 0.0
    for path in course.lesson_paths():
        if args.lessons is None or path.name[:2] in args.lessons:
            _, seconds = course.execute_lesson(path, progress=False)
            total += seconds
            print(f"| {path.stem} | {seconds:.0f} |", flush=True)
    print(f"| total | {total:.0f} |")


if __name__ == "__main__":
    main()
