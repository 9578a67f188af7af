"""The ``hear-suite`` command. Each subcommand lives in its own module, imported only when used,
which exposes ``add_arguments(parser)`` and ``main(args)``."""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from hear_suite.registry import MODELS

# subcommand -> (module, help)
COMMANDS = {
    "make-corpus": ("hear_suite.corpora.cli", "synthesise a training corpus as a HEAR task"),
    "make-tasks": ("hear_suite.taskgen.make_tasks", "generate a suite of HEAR evaluation tasks"),
    "eval": ("hear_suite.evaluation.driver", "evaluate HEAR modules with heareval over task dirs"),
    "export": ("hear_suite.export", "convert checkpoints to and from original layouts"),
    "embed": ("hear_suite.embed.run", "embed audio files with any HEAR module"),
}


def build_parser(argv: List[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hear-suite", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    # Import only the module of the subcommand being run, so `hear-suite eval` does not import
    # model code and `hear-suite train kwmlp` does not import heareval.
    wanted = argv[0] if argv else None
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_)
        if name == wanted:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(func=mod.main)
    train = sub.add_parser("train", help="train a model (see `hear-suite train MODEL -h`)")
    train_sub = train.add_subparsers(dest="model", required=True)
    for name, entry in MODELS.items():
        if entry.train_module is None:  # the log-mel floor: nothing to train
            continue
        p = train_sub.add_parser(name, help=f"train {name}")
        if wanted == "train" and len(argv) > 1 and argv[1] == name:
            mod = importlib.import_module(entry.train_module)
            mod.add_arguments(p)
            p.set_defaults(func=mod.main)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
