"""The positional-encoding study of seed 003 in miniature: train the ``medium`` AST (2.7 M
parameters) once per positional encoding with the same recipe, seed and budget on a generated
multilabel task, then write the table (``results/ast_pe_study.md``, ``.csv``) and a plot
(``results/ast_pe_study.png``).

    hear-suite make-tasks --out tasks --suite numpy --only gen_sound_mixtures --scale 4
    OMP_NUM_THREADS=1 python scripts/pe_study.py --task-dir tasks/gen_sound_mixtures-v1-full \
        --runs runs/pe_study [--preset medium --epochs 20] [--variants conditional,absolute,...]
    python scripts/pe_study.py --runs runs/pe_study --report-only

Each run is ``hear-suite train ast --pe VARIANT`` (resumable: rerunning continues unfinished
runs); the report reads the provenance of each ``RUN/VARIANT/ast_VARIANT.pt``.
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Tuple

from hear_suite.ast.model import POS_EMBEDS
from hear_suite.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parent.parent
# seed 003, Table 1 (from scratch): AudioSet mAP, ESC-50 accuracy (%)
PAPER = {"none": (0.286, 81.2), "absolute": (0.313, 87.5), "alibi_2d": (0.307, 86.3),
         "alibi_time": (0.319, 87.6), "relative_2d": (0.329, 87.8),
         "conditional": (0.343, 91.4), "conditional_absolute": (0.344, 90.0)}
ORDER = ["conditional", "absolute", "none", "alibi_2d", "alibi_time", "relative_2d",
         "conditional_absolute"]


def train(args: argparse.Namespace, variant: str) -> None:
    cmd = [sys.executable, "-m", "hear_suite.cli", "train", "ast", "--task-dir",
           str(args.task_dir), "--out", str(args.runs / variant), "--pe", variant,
           "--preset", args.preset,
           "--epochs", str(args.epochs), "--swa-epochs", str(args.swa_epochs),
           "--warmup-epochs", str(args.warmup_epochs), "--lr", str(args.lr), "--seed", str(args.seed),
           "--workers", "0", *args.extra]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def replicate_scores(replicates: Optional[Path]) -> Dict[str, Tuple[int, float]]:
    """``{variant: (seed, test mAP)}`` of the runs under ``replicates`` (the same study run
    with another ``--seed``)."""
    found: Dict[str, Tuple[int, float]] = {}
    for variant in ORDER if replicates else ():
        path = replicates / variant / f"ast_{variant}.pt"
        if path.is_file():
            p = load_checkpoint(path, "ast")["provenance"]
            found[variant] = (p["seed"], p["test_mAP"])
    return found


def report(runs: Path, out: Path, replicates: Optional[Path] = None) -> None:
    again = replicate_scores(replicates)
    rows, first = [], None
    for variant in ORDER:
        path = runs / variant / f"ast_{variant}.pt"
        if not path.is_file():
            continue
        p = load_checkpoint(path, "ast")["provenance"]
        first = first or p
        rows.append({"pe": variant, "parameters": p["parameters"], "epochs": p["epochs"],
                     "valid_mAP": p["valid_mAP"], "test_mAP": p["test_mAP"],
                     "best_epoch_test_mAP": p["best_epoch_test_mAP"],
                     "train_time_s": p["train_time_s"],
                     "other_seed_test_mAP": again.get(variant, (None, None))[1],
                     "paper_audioset_mAP": PAPER[variant][0],
                     "paper_esc50_acc": PAPER[variant][1]})
    if not rows:
        raise SystemExit(f"no finished runs under {runs}")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "ast_pe_study.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    base = next((r["test_mAP"] for r in rows if r["pe"] == "none"), None)
    other_seed = next(iter(again.values()))[0] if again else None
    lines = ["| positional encoding | parameters | test mAP (SWA) | vs none | valid mAP | "
             "test mAP (best epoch) | " + (f"test mAP, seed {other_seed} | " if again else "")
             + "train time | paper: AudioSet mAP / ESC-50 acc |",
             "|---|---|---|---|---|---|---|---|" + ("---|" if again else "")]
    for r in rows:
        delta = f"{r['test_mAP'] - base:+.3f}" if base is not None else "n/a"
        rep = r["other_seed_test_mAP"]
        lines.append(f"| `{r['pe']}` | {r['parameters']:,} | {r['test_mAP']:.3f} | {delta} | "
                     f"{r['valid_mAP']:.3f} | {r['best_epoch_test_mAP']:.3f} | "
                     + ((f"{rep:.3f} | " if rep is not None else "| ") if again else "")
                     + f"{r['train_time_s'] / 60:.1f} min | {r['paper_audioset_mAP']:.3f} / "
                     f"{r['paper_esc50_acc']:.1f} |")
    args, clips = first["args"], first["clips"]
    intro = [
        "# The positional-encoding study of seed 003, in miniature",
        "",
        f"`scripts/pe_study.py`: the `{args['preset']}` AST ({rows[0]['parameters']:,} "
        f"parameters give or take the PE) trained once per positional encoding with the same "
        f"recipe, seed ({args['seed']}) and budget ({rows[0]['epochs']} epochs of batch "
        f"{args['batch_size']}, SWA of the last {args['swa_epochs']}), on "
        f"`{Path(args['task_dir']).name}` (`hear-suite make-tasks --suite numpy --only "
        f"gen_sound_mixtures --scale 4`: {clips['train']} / {clips['valid']} / {clips['test']} "
        "multilabel clips of 3 s, 12 synthetic sound classes, 1-3 per clip over ambience). mAP "
        "is macro over classes, on the test split; the SWA weights are the shipped kind. Train "
        "times: one CPU thread each, with other jobs on the machine (not comparable between "
        "rows). Right column: seed 003's Table 1, from scratch.",
        "",
    ]
    (out / "ast_pe_study.md").write_text("\n".join(intro + lines) + "\n")
    print("\n".join(lines))

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), constrained_layout=True)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    names = [r["pe"] for r in rows]
    ax1.barh(names, [r["test_mAP"] for r in rows], color="tab:blue",
             label=f"seed {first['seed']}")
    reps = [(r["pe"], r["other_seed_test_mAP"]) for r in rows if r["other_seed_test_mAP"]]
    if reps:
        ax1.plot([v for _, v in reps], [names.index(n) for n, _ in reps], "o", color="tab:orange",
                 label=f"seed {other_seed}")
    if base is not None:
        ax1.axvline(base, color="k", ls="--", lw=1, label="none")
    ax1.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3)
    scores = [r["test_mAP"] for r in rows] + [v for _, v in reps]
    ax1.set_xlim(min(scores) - 0.03, max(scores) + 0.02)
    ax1.set_title("miniature: test mAP (SWA)")
    ax1.invert_yaxis()
    ax2.barh(names, [r["paper_audioset_mAP"] for r in rows], color="tab:gray")
    ax2.axvline(PAPER["none"][0], color="k", ls="--", lw=1)
    ax2.set_title("seed 003: AudioSet mAP")
    ax2.invert_yaxis()
    ax2.set_xlim(0.25, 0.36)
    fig.savefig(out / "ast_pe_study.png", dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task-dir", type=Path)
    ap.add_argument("--runs", type=Path, required=True)
    ap.add_argument("--replicates", type=Path, default=None,
                    help="runs of the same study with another --seed (an extra column)")
    ap.add_argument("--out", type=Path, default=REPO / "results")
    ap.add_argument("--variants", default=",".join(ORDER))
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--swa-epochs", type=int, default=5)
    ap.add_argument("--warmup-epochs", type=float, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("extra", nargs="*", help="more `hear-suite train ast` flags, after --")
    args = ap.parse_args()
    if not args.report_only:
        if args.task_dir is None:
            ap.error("--task-dir is required to train")
        for variant in args.variants.split(","):
            if variant not in POS_EMBEDS:
                ap.error(f"unknown variant {variant!r}; choose from {POS_EMBEDS}")
            train(args, variant)
            report(args.runs, args.out, args.replicates)
    report(args.runs, args.out, args.replicates)


if __name__ == "__main__":
    main()
