"""Foundation timings: import overhead, dataset generation and corruptions.

Run: python benchmarks/bench_foundation.py
Targets (issue 2): 10 000 signs <= 10 s; `import inferml_course` adds <= 1 s to `import torch`.
"""
import subprocess
import sys

import torch

from _timing import best_wall
from inferml_course.datasets import CORRUPTIONS, corrupt, generate_signs


def import_overhead():
    code = ("import time; t0 = time.perf_counter(); import torch; t1 = time.perf_counter(); "
            "import inferml_course, inferml_course.datasets, inferml_course.models; "
            "print(t1 - t0, time.perf_counter() - t1)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main():
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    torch_s, ours_s = import_overhead()
    print("| what | time | target |\n|---|---|---|")
    print(f"| import torch | {torch_s:.2f} s | |")
    print(f"| import inferml_course (+ datasets, models) after torch | {ours_s:.3f} s | <= 1 s |")
    print(f"| generate 10 000 signs | {best_wall(lambda: generate_signs(10_000, seed=0), 2):.2f} s | <= 10 s |")
    images = generate_signs(2_000, seed=1).images
    worst = max(((best_wall(lambda: corrupt(images, name, 5), 2), name) for name in CORRUPTIONS))
    print(f"| slowest corruption on 2 000 signs (severity 5: {worst[1]}) | {worst[0]:.2f} s | |")


if __name__ == "__main__":
    main()
