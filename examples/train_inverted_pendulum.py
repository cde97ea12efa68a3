"""Train a spiking policy from Python (as in a notebook) and read its learning curve.

python examples/train_inverted_pendulum.py
"""

import csv
import dataclasses
import os

from spikerl_jax.config import preset_for
from spikerl_jax.training.trainer import train


def main() -> None:
    cfg = dataclasses.replace(preset_for("InvertedPendulum-v4"), out="runs/example-pendulum")
    summary = train(cfg)
    print(f"final return {summary['final_eval_return']:.1f} after {summary['wall_s']:.0f} s")
    with open(os.path.join(summary["run_dir"], "metrics.csv")) as f:
        for row in csv.DictReader(f):
            print(f"step {int(row['step']):6d}  return {float(row['eval_return']):7.1f}")


if __name__ == "__main__":
    main()
