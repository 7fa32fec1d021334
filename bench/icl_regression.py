"""In-context linear regression: a trained 2-layer softmax-attention Transformer vs the ridge estimator.

    .venv/bin/python bench/icl_regression.py                 # d=8, 16 pairs, the default budget
    .venv/bin/python bench/icl_regression.py --steps 200     # a quick look

Trains the `transformer` baseline (2 attention + 2 SwiGLU blocks, width 64) on `icl-regression` with
the evaluators' own trainer, then scores it and the Bayes-optimal ridge estimator (posterior mean
from the earlier pairs) on the same held-out sequences: overall, and by the number of earlier pairs.
Prints a markdown section for bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import time

import torch

from einsearch.tasks import get_task
from einsearch.tasks.icl_regression import ridge_predictions, split_tokens
from einsearch.evaluators.trainer import TrainConfig, train_model
from einsearch.grammar import build
from einsearch.search.library import get_baseline


def per_position(model: torch.nn.Module, task, batches) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean squared error by the number of earlier pairs (pairs,), for the model and for ridge."""
    model.eval()
    model_err = ridge_err = 0.0
    with torch.no_grad():
        for batch in batches:
            pred = model(batch.inputs)[:, 0::2].double()
            x, y = split_tokens(batch.inputs)
            model_err = model_err + ((pred - batch.targets.double()) ** 2).sum(0)
            ridge_err = ridge_err + ((ridge_predictions(x, y, task.noise) - batch.targets.double()) ** 2).sum(0)
    n = sum(len(b.targets) for b in batches)
    return model_err / n, ridge_err / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="icl-regression:d=8,pairs=16,noise=0.25")
    parser.add_argument("--baseline", default="transformer")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2, help="repeats of the baseline's unit (attention + MLP)")
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the task's)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    arch = get_baseline(args.baseline, task, width=args.width, depth=args.depth)
    cfg = TrainConfig.for_task(task, args.steps, seed=args.seed, lr=args.lr, batch_size=args.batch_size,
                               eval_every=max(1, args.steps // 20))
    torch.manual_seed(args.seed)
    model = build(arch, task)
    cpu0 = time.process_time()
    result = train_model(model, task, cfg, device="cpu")
    cpu_s = time.process_time() - cpu0
    if not result.ok:
        raise SystemExit(f"training failed: {result.error}")
    held_out = task.batches("valid", cfg.batch_size, seed=0)
    batches = [next(held_out) for _ in range(cfg.eval_batches)]  # the trainer's held-out set
    model_pos, ridge_pos = per_position(model, task, batches)
    mse, ridge = result.metric, result.extra_metrics["ridge_mse"]
    zero = float(sum((b.targets.double() ** 2).sum() for b in batches) / sum(b.targets.numel() for b in batches))

    print("## In-context linear regression\n")
    print(f"{datetime.date.today()}; {platform.platform()}; torch {torch.__version__}, {args.threads} thread(s); "
          f"CPU time {cpu_s / 60:.1f} min (wall {result.wall_time_s / 60:.1f} min).\n")
    print(f"`.venv/bin/python bench/icl_regression.py --steps {args.steps}"
          + (f" --lr {args.lr}" if args.lr else "") + (f" --batch-size {args.batch_size}" if args.batch_size else "")
          + f" --seed {args.seed}`\n")
    print(f"Task `{task.spec}`; `{args.baseline}` baseline at width {args.width}, {args.depth} attention layers "
          f"(`{arch}`), {result.params:,} parameters; {args.steps} steps of batch {cfg.batch_size} "
          f"(AdamW, peak lr {cfg.lr:g}, warm-up + cosine); held-out: {len(batches)} batches "
          f"({sum(len(b.targets) for b in batches)} sequences, the same for model and ridge).\n")
    print("| estimator | MSE | MSE / ridge MSE |")
    print("|---|---|---|")
    print(f"| trained {args.baseline} | {mse:.3f} | {mse / ridge:.2f} |")
    print(f"| ridge (Bayes-optimal posterior mean) | {ridge:.3f} | 1.00 |")
    print(f"| predict 0 | {zero:.3f} | {zero / ridge:.2f} |\n")
    print("By number of earlier pairs:\n")
    print("| earlier pairs | " + " | ".join(str(i) for i in range(len(model_pos))) + " |")
    print("|---|" + "---|" * len(model_pos))
    print("| model | " + " | ".join(f"{v:.2f}" for v in model_pos.tolist()) + " |")
    print("| ridge | " + " | ".join(f"{v:.2f}" for v in ridge_pos.tolist()) + " |\n")
    print("Learning curve (held-out MSE): " + ", ".join(f"{s}: {m:.2f}" for s, m in result.curve[::2]) + ".\n")
    if result.patterns:
        print("Attention patterns after training: " + ", ".join(f"{p['layer']} {p['pattern']}"
                                                               for p in result.patterns) + ".")


if __name__ == "__main__":
    main()
