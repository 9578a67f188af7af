"""``hear-suite export``: move weights between hear_suite checkpoints and original layouts.

    hear-suite export kwmlp-original --out kwmlp.pth [--checkpoint weights/kwmlp_real.pt]
    hear-suite export kwmlp-import --checkpoint kwmlp.pth --out kwmlp.pt
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("direction", choices=["kwmlp-original", "kwmlp-import"],
                        help="kwmlp-original: hear_suite -> HEAR 2021 kwmlp.pth layout; "
                             "kwmlp-import: original kwmlp.pth -> hear_suite checkpoint")
    parser.add_argument("--checkpoint", default=None,
                        help="input file (default for kwmlp-original: the shipped default weights)")
    parser.add_argument("--out", required=True, help="output file (written atomically)")


def main(args: argparse.Namespace) -> int:
    from hear_suite.kwmlp.io import export_original, load_encoder, save_encoder

    if args.direction == "kwmlp-original":
        export_original(args.checkpoint, args.out)
    else:
        if not args.checkpoint:
            raise SystemExit("kwmlp-import needs --checkpoint PATH of an original kwmlp.pth")
        save_encoder(args.out, load_encoder(args.checkpoint),
                     provenance={"imported_from": str(args.checkpoint)})
    print(f"wrote {args.out}")
    return 0
