"""Command line: ``python -m inferml_course.models {list, retrain NAME [--seed S | --seeds S ...], verify}``.

``retrain NAME --seed S --out DIR`` trains a zoo model with another seed (``--seeds`` for the ensemble)
into ``DIR`` with its manifest; ``INFERML_DATA=DIR`` then makes every lesson load it (models not in
``DIR`` still come from the shipped folder). Another seed needs ``--out``, so the shipped checkpoints
are never overwritten.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import config
from . import zoo


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inferml_course.models", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the zoo models and where their checkpoints are")
    retrain = sub.add_parser("retrain", help="retrain a zoo model deterministically and save its checkpoint")
    retrain.add_argument("name", choices=zoo.MODELS)
    retrain.add_argument("--out", type=Path, default=None,
                         help="folder to write NAME.pt and update SHA256SUMS in (default: the first data "
                              "folder that exists, else the user cache)")
    seeds = retrain.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=None, help="the seed of a single model (default: the zoo's)")
    seeds.add_argument("--seeds", type=int, nargs="+", default=None,
                       help="one seed per ensemble member (default: the zoo's)")
    sub.add_parser("verify", help="check every checkpoint against its manifest and that it loads")
    args = parser.parse_args(argv)

    if args.command == "list":
        for name, spec in zoo.ZOO.items():
            path = zoo.find_checkpoint(name)
            print(f"{name:20s} {spec.description}\n{'':20s} checkpoint: {path or 'none (retrains on first use)'}")
    elif args.command == "retrain":
        requested = args.seeds if args.seeds is not None else args.seed
        try:
            seeds = zoo.check_seeds(args.name, requested)
        except ValueError as err:
            parser.error(str(err))
        if seeds != zoo.ZOO[args.name].seeds and args.out is None:
            parser.error(f"seeds {list(seeds)} differ from the zoo's {list(zoo.ZOO[args.name].seeds)}: pass --out DIR "
                         "(the shipped checkpoints are not overwritten); then INFERML_DATA=DIR loads it")
        out = args.out or next((d for d in config.data_dirs() if d.is_dir()), config.cache_dir())
        model = zoo.train_zoo_model(args.name, seeds=seeds)
        print(f"saved {zoo.save_checkpoint(model, args.name, out)} (seeds {list(seeds)})")
    elif args.command == "verify":
        failed = 0
        for name in zoo.MODELS:
            path = zoo.find_checkpoint(name)
            if path is None:
                print(f"{name}: no checkpoint")
                continue
            try:
                zoo.verify_checkpoint(path)
                zoo.load_checkpoint(name, path)
                print(f"{name}: ok ({path})")
            except zoo.CheckpointError as err:
                failed += 1
                print(f"{name}: {err}")
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
