"""A PBT run's records in its root: ``lineage.csv`` (every copy), and at the end
``pbt.json`` (members ranked by their best evaluation, the best member's schedule of
settings) and ``pbt.png`` (every member's return over steps with its copies, and the best
member's schedule)."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
from matplotlib.figure import Figure

from spikerl_jax.config import ConfigError
from spikerl_jax.pbt_spec import Exploit, PBTRecord, PBTSpec, is_pbt_root, load_spec
from spikerl_jax.reporting.runs import RunRecord
from spikerl_jax.reporting.sweep import replacing

LINEAGE_FILE = "lineage.csv"
PBT_SUMMARY_FILES = ("pbt.json", "pbt.png")


def pbt_line(spec: PBTSpec, copy: Exploit) -> str:
    """The progress line of one copy, e.g. ``step 10000: m3 (score 212) copies m1 (980):
    actor_lr 0.0003 -> 0.00036``."""
    changes = ", ".join(
        f"{name} {b:g} -> {a:g}"
        for name, b, a in zip(spec.names, copy.before, copy.after, strict=True)
    )
    return (
        f"step {copy.step}: {spec.label(copy.member)} (score {copy.score:.4g}) copies "
        f"{spec.label(copy.source)} ({copy.source_score:.4g}): {changes}"
    )


def lineage_columns(spec: PBTSpec) -> list[str]:
    return [
        "step", "member", "source", "score", "source_score",
        *(f"{n}_before" for n in spec.names), *(f"{n}_after" for n in spec.names),
    ]  # fmt: skip


def write_lineage(root: str, spec: PBTSpec, record: PBTRecord) -> str:
    """Rewrites ``ROOT/lineage.csv`` whole from ``record`` (a resumed run's rows are its
    checkpoint's: none from beyond it)."""
    path = os.path.join(root, LINEAGE_FILE)
    with replacing(path) as f:
        writer = csv.writer(f)
        writer.writerow(lineage_columns(spec))
        for c in record.lineage:
            writer.writerow(
                [c.step, spec.label(c.member), spec.label(c.source), c.score, c.source_score,
                 *c.before, *c.after]
            )  # fmt: skip
    return path


def read_lineage(root: str, spec: PBTSpec) -> tuple[Exploit, ...]:
    """``lineage.csv`` read back (an empty lineage where there is none)."""
    path = os.path.join(root, LINEAGE_FILE)
    if not os.path.isfile(path):
        return ()
    index = {spec.label(m): m for m in range(spec.members)}
    n, copies = len(spec.names), []
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))[1:]
        for row in rows:
            values = [float(v) for v in row[5:]]
            copies.append(
                Exploit(
                    int(row[0]), index[row[1]], index[row[2]], float(row[3]), float(row[4]),
                    tuple(values[:n]), tuple(values[n:]),
                )
            )  # fmt: skip
    except (OSError, ValueError, KeyError, IndexError) as e:
        raise ConfigError(f"{path} is damaged ({e}); a resumed run rewrites it") from None
    return tuple(copies)


def write_pbt_summary(spec: PBTSpec, runs: list[RunRecord]) -> dict:
    """Writes ``pbt.json`` and ``pbt.png`` into the root; returns ``pbt.json``'s content."""
    lineage = read_lineage(spec.root, spec)
    ranked = sorted(
        range(spec.members),
        key=lambda m: (-runs[m].summary["best_eval_return"], -runs[m].summary["final_eval_return"]),
    )
    best = ranked[0]
    summary = {
        "ranges": [r.describe() for r in spec.ranges],
        "every": spec.every,
        "quantile": spec.quantile,
        "copies": len(lineage),
        "best_member": spec.label(best),
        "best_run_dir": runs[best].run_dir,
        "members": [
            {
                "rank": rank + 1,
                "member": spec.label(m),
                "final_eval_return": runs[m].summary["final_eval_return"],
                "best_eval_return": runs[m].summary["best_eval_return"],
                "best_step": runs[m].summary.get("best_step"),
                "copied": sum(c.member == m for c in lineage),
            }
            for rank, m in enumerate(ranked)
        ],
        "best_schedule": [
            {**s, "member": spec.label(s["member"])} for s in spec.schedule(best, lineage)
        ],
    }
    with replacing(os.path.join(spec.root, "pbt.json")) as f:
        json.dump(summary, f, indent=2)
    plot_pbt(spec, runs, lineage, best, os.path.join(spec.root, "pbt.png"))
    return summary


def plot_pbt(spec: PBTSpec, runs: list[RunRecord], lineage, best: int, path: str) -> str:
    """Every member's evaluation return over steps, a marker where it copied another; under
    it, the best member's schedule of each searched setting."""
    n = len(spec.names)
    fig = Figure(figsize=(8, 4 + 1.6 * n), layout="constrained")
    axes = fig.subplots(1 + n, 1, sharex=True, height_ratios=[3] + [1] * n, squeeze=False)[:, 0]
    for m, run in enumerate(runs):
        steps = np.array([r["step"] for r in run.metrics])
        returns = np.array([r["eval_return"] for r in run.metrics])
        width = 2.2 if m == best else 1.0
        (line,) = axes[0].plot(steps, returns, lw=width, label=spec.label(m))
        copied = [c.step for c in lineage if c.member == m]
        at = [returns[steps == s][0] for s in copied if np.any(steps == s)]
        axes[0].plot(copied[: len(at)], at, "v", color=line.get_color(), ms=6)
    axes[0].set_ylabel("evaluation return")
    axes[0].set_title(
        f"{spec.base.env}: PBT of {spec.members} members, every {spec.every} steps "
        f"(v: the member copied a better one; thick: best, {spec.label(best)})",
        fontsize=9,
    )
    axes[0].legend(fontsize=7, ncol=4)
    axes[0].grid(alpha=0.3)
    schedule = spec.schedule(best, lineage)
    for ax, r in zip(axes[1:], spec.ranges, strict=True):
        edges = [s["start"] for s in schedule] + [schedule[-1]["end"]]
        values = [s[r.name] for s in schedule]
        ax.stairs(values, edges, baseline=None, lw=1.8)
        ax.set_ylim(r.low, r.high)
        ax.set_yscale("log" if r.log else "linear")
        ax.set_ylabel(r.name, fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("environment steps")
    fig.savefig(path, dpi=110)
    return path


def best_member_dir(root: str) -> str:
    """The run directory of a PBT root's best member: by ``pbt.json`` once written, before
    by the best evaluation return in the members' ``metrics.csv`` so far."""
    summary = os.path.join(root, "pbt.json")
    if os.path.isfile(summary):
        try:
            with open(summary) as f:
                return os.path.join(root, json.load(f)["best_member"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{summary} is damaged ({e}); pass a member directory") from None
    spec, best = load_spec(root), (-np.inf, None)
    for m in range(spec.members):
        run_dir = os.path.join(root, spec.label(m))
        try:
            with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
                returns = [float(r["eval_return"]) for r in csv.DictReader(f)]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if returns and max(returns) > best[0]:
            best = (max(returns), run_dir)
    if best[1] is None:
        raise ConfigError(f"{root}: no member of this PBT run has been evaluated yet")
    return best[1]


def resolve_run(path: str) -> str:
    """``path``, or for a PBT run's root its best member's run directory."""
    return best_member_dir(path) if is_pbt_root(path) else path
