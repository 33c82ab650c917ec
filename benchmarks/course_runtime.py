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
    course.print_runtimes(args.lessons, out=lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
