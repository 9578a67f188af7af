"""``hear-suite export``: move weights between hear_suite checkpoints and original layouts.

    hear-suite export kwmlp-original --out kwmlp.pth [--checkpoint weights/kwmlp_real.pt]
    hear-suite export kwmlp-import --checkpoint kwmlp.pth --out kwmlp.pt
    hear-suite export ast-original --checkpoint MODEL --out audioset_10_10_0.4593.pth
    hear-suite export ast-hf --checkpoint MODEL --out ast-hf/          (a directory)
    hear-suite export ast-import --checkpoint MODEL --out ast.pt

An AST ``MODEL`` is any checkpoint ``hear_suite.ast.load_model`` takes: hear_suite's, an
original AST ``.pth`` or a Hugging Face ``ASTForAudioClassification`` directory.
"""
from __future__ import annotations

import argparse

DIRECTIONS = {
    "kwmlp-original": "hear_suite -> HEAR 2021 kwmlp.pth layout",
    "kwmlp-import": "original kwmlp.pth -> hear_suite checkpoint",
    "ast-original": "any AST -> the original AST's .pth (YuanGongND/ast)",
    "ast-hf": "any AST -> a Hugging Face ASTForAudioClassification directory",
    "ast-import": "any AST -> hear_suite checkpoint",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("direction", choices=list(DIRECTIONS),
                        help="; ".join(f"{k}: {v}" for k, v in DIRECTIONS.items()))
    parser.add_argument("--checkpoint", default=None,
                        help="input file or directory (default for kwmlp-original: the shipped "
                             "default weights)")
    parser.add_argument("--out", required=True,
                        help="output file (ast-hf: directory), written atomically")
    recipe = parser.add_argument_group(
        "an original AST fine-tuned on another label set (the AudioSet, ESC-50 and Speech "
        "Commands recipes are known by their class count)")
    recipe.add_argument("--frames", type=int, default=None, help="fbank frames per clip")
    recipe.add_argument("--norm-mean", type=float, default=None, help="dataset fbank mean")
    recipe.add_argument("--norm-std", type=float, default=None, help="dataset fbank std")


def main(args: argparse.Namespace) -> int:
    if args.direction.startswith("ast-"):
        from hear_suite.ast.io import export

        if args.checkpoint is None and args.direction == "ast-import":
            raise SystemExit("ast-import needs --checkpoint PATH of an original or Hugging Face AST")
        recipe = {k: getattr(args, k) for k in ("frames", "norm_mean", "norm_std")
                  if getattr(args, k) is not None}
        layout = {"ast-original": "original", "ast-hf": "huggingface",
                  "ast-import": "hear_suite"}[args.direction]
        export(args.checkpoint, args.out, layout, **recipe)
    elif args.direction == "kwmlp-original":
        from hear_suite.kwmlp.io import export_original

        export_original(args.checkpoint, args.out)
    else:
        from hear_suite.kwmlp.io import load_encoder, save_encoder

        if not args.checkpoint:
            raise SystemExit("kwmlp-import needs --checkpoint PATH of an original kwmlp.pth")
        save_encoder(args.out, load_encoder(args.checkpoint),
                     provenance={"imported_from": str(args.checkpoint)})
    print(f"wrote {args.out}")
    return 0
