"""The curves behind docs/semi_supervised.md's diagnosis: for each run folder written by the trainer (its
`loss_history.json` and `validation_history.json`), the logit spread, the prior chain's |grad U| at its last step,
the energy loss E(z+) - E(z-), and the accuracy on the held-out rows each evaluation scored (a test curve for a
diagnosis, never used to pick a checkpoint). One PNG, one line per run; the figures also go to a JSON beside it.

    python scripts/ssl_curves.py runs/ssl_diag_round2/mnist_seed1=unregularised \
        runs/ssl_diag_mag/mnist_seed1=magnitude-penalty --output docs/figures/ssl_runaway.png
"""

import argparse
import json
from pathlib import Path

PANELS = [("logit_spread", "logit spread max_k f_k - min_k f_k at q's mean", "log"),
          ("prior_chain_grad_norm", "prior chain |grad U| at its last step", "log"),
          ("energy_loss", "energy loss E(z+) - E(z-)", "symlog")]


def read_run(folder: Path) -> dict:
    losses = json.loads((folder / "loss_history.json").read_text())
    evaluations = json.loads((folder / "validation_history.json").read_text()) \
        if (folder / "validation_history.json").exists() else []
    return {"losses": losses, "evaluations": evaluations}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="FOLDER=LABEL pairs")
    parser.add_argument("--accuracy-key", default="test_curve_accuracy",
                        help="the validation_history.json entry to plot as accuracy")
    parser.add_argument("--output", default="docs/figures/ssl_runaway.png")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(PANELS) + 1, figsize=(5 * (len(PANELS) + 1), 3.6))
    summary = {}
    for entry in args.runs:
        folder, _, label = entry.partition("=")
        run = read_run(Path(folder))
        steps = [record["step"] for record in run["losses"]]
        for axis, (key, title, scale) in zip(axes, PANELS):
            values = [record.get(key, float("nan")) for record in run["losses"]]
            axis.plot(steps, values, label=label or folder, lw=0.8)
            axis.set(title=title, xlabel="step", yscale=scale)
        accuracy = [(record["step"], record[args.accuracy_key]) for record in run["evaluations"]
                    if args.accuracy_key in record]
        if accuracy:
            axes[-1].plot(*zip(*accuracy), label=label or folder)
        axes[-1].set(title=args.accuracy_key.replace("_", " "), xlabel="step")
        last = run["losses"][-1]
        summary[label or folder] = {"final": {key: last.get(key) for key, _, _ in PANELS},
                                    "max_logit_spread": max(r.get("logit_spread", 0) for r in run["losses"]),
                                    "accuracy": accuracy}
    axes[-1].legend()
    figure.tight_layout()
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=100)
    output.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    print(f"wrote {output} and {output.with_suffix('.json')}")


if __name__ == "__main__":
    main()
