"""How far a trained model still moves when it trains on at a constant rate (its final_lr).

    python benchmarks/hold_at_final_lr.py amini2018 mnist dae            # 10 more epochs at final_lr
    python benchmarks/hold_at_final_lr.py seyyedsalehi2017 optdigits ae --epochs 19

Loads models/<paper>/<dataset>/<model> (every seed), trains it E more epochs on the prepared
training split at the constant rate `--lr` (default: the final_lr it was trained with), and
prints each seed's validation reconstruction per epoch and its relative change over them
(sae.base.stats.relative_change: ends and trend, as the convergence rule judges). A change under the
tolerance here and above it in the report says the curve fell because the rate fell, not
because the model was still far from its optimum (what `optim.hold` is for). Nothing is written.
A model with a schedule of its own (k, alpha, sigma) restarts that schedule: not for those.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sae.base import stats  # noqa: E402
from sae.data import prepared  # noqa: E402
from sae.models import store  # noqa: E402
from sae.train import fit  # noqa: E402
from stages.train import VAL_PROBE  # noqa: E402  (the train stage's probe batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paper")
    ap.add_argument("dataset")
    ap.add_argument("model")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=None, help="default: the model's final_lr")
    args = ap.parse_args()
    model_dir = Path("models") / args.paper / args.dataset / args.model
    model, hparams = store.load(model_dir)
    loop = hparams["loop"]
    lr = loop["final_lr"] if args.lr is None else args.lr
    data, _ = prepared.read_tensors(Path("data/prepared") / args.dataset, loop["input"], "cpu")
    lay = store.layout_of(hparams)
    result = fit(model, data["x_train"], data["x_val"][:VAL_PROBE], epochs=args.epochs, batch=loop["batch"],
                 seeds=lay.model_seeds, optimizer=loop["optimizer"], lr=lr, momentum=loop["momentum"],
                 schedule="constant", progress=False)
    print(f"{model_dir}: {args.epochs} epochs at lr {lr:g} after {hparams.get('epochs_trained')}")
    for g in range(lay.n_models):
        curve = [row["val_recon"][g] for row in result.history]
        change = stats.relative_change(curve, 0.0, len(curve) - 1)  # over all of them
        print(f"  {lay.model_label(g)}: {' '.join(f'{v:.5f}' for v in curve)}  change {change:.4f}")


if __name__ == "__main__":
    main()
