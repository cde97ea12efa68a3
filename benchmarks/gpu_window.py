"""One GPU window's measurements in one command: each step runs in its own process with its own
time budget and appends its JSON lines to ``--out`` as soon as it has them, so a step cut short
(or a call cut off) leaves every line written before it.

    python benchmarks/gpu_window.py --out gpu_window.jsonl            # on the GPU: about 9 min
    python benchmarks/gpu_window.py --smoke --out /tmp/smoke.jsonl    # CPU dry run: tiny sizes

Steps (each line says its step, and its compile or start-up seconds):
  machine      the device, JAX and the commit.
  population   updates/s of a P-member population's compiled call (50 updates of every member,
               batch 100, Hopper sizes), P = 1, 4, 16, 64, fp32 and bf16; compile seconds each.
  sweep-gym-*  the paper's schedule (50 updates every 50 steps, batch 100) for a 10-seed
               Hopper-v4 ``spikerl-jax sweep`` on the Gymnasium backend, acting on the host's
               CPU (``--act-device cpu``) or on the training device (``accelerator``): env
               steps/s per member and updates/s per member from its train.csv (the windows after
               the first, which holds the compiling), start-up seconds, and the projected wall
               time of 10 seeds x 1M steps (start-up + 1M / steps per s; evaluations excluded).
  sweep-mjx-1  the same sweep on the MJX backend, 1 env per member.
  mjx-1024     the MJX throughput setting (1024 envs per member, 64 updates every 4096 steps).
  best         which sweep runs the 10-seed table fastest, with its projected time.

The sweeps run without the persistent compile cache (their start-up is a first start's) and
act at random for their first window only (``--start-steps``), so that the windows
measured are the schedule's steady state. ``--smoke`` shrinks every size (2 seeds, 64-unit
layers, short runs) to check the script, not the machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
TARGET_STEPS = 1_000_000  # per seed, as the papers' tables
# name: (budget seconds on the device, budget seconds for --smoke)
BUDGETS = {
    "machine": (20, 60),
    "population": (130, 100),
    "sweep-gym-cpu": (60, 80),
    "sweep-gym-accelerator": (60, 80),
    "sweep-mjx-1": (130, 150),
    "mjx-1024": (130, 150),
}
# A sweep step stops its sweep this long before its budget, to report the windows it has.
MARGIN_S = 8


def append(out: str, record: dict) -> None:
    """One JSON line, flushed to disk before the step goes on."""
    with open(out, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())
    print(json.dumps(record), flush=True)


def step_machine(out: str, smoke: bool) -> None:
    sys.path.insert(0, str(HERE))
    import jax
    from common import machine

    info = machine()
    info["commit"] = os.environ.get("SPIKERL_COMMIT", info["commit"])
    append(out, {"step": "machine", **info, "devices": jax.device_count(), "smoke": smoke})


def step_population(out: str, smoke: bool) -> None:
    sys.path.insert(0, str(HERE))
    from bench_population import update_call

    repeats = 3 if smoke else 20
    for precision in ("fp32", "bf16"):
        for members in (1, 4) if smoke else (1, 4, 16, 64):
            t0 = time.perf_counter()
            call = update_call(members, 1, precision)  # compiles, runs twice
            startup = time.perf_counter() - t0
            rate = statistics.median(call() for _ in range(repeats))
            append(
                out,
                {
                    "step": "population",
                    "members": members,
                    "precision": precision,
                    "compile_s": startup,
                    "updates_per_s_total": rate,
                    "updates_per_s_per_member": rate / members,
                },
            )


def sweep_command(name: str, smoke: bool, root: str) -> list[str]:
    """The ``spikerl-jax sweep`` that a sweep step measures, on Hopper-v4 (``--smoke`` too:
    the dry run compiles the device run's programs, at smaller sizes)."""
    seeds = " ".join(map(str, range(2 if smoke else 10)))
    if name == "mjx-1024":
        envs, every, updates = (16, 64, 4) if smoke else (1024, 4096, 64)
        steps, window = (every * 4, every) if smoke else (every * 12, every * 2)
        schedule = f"--backend mjx --num-envs {envs} --update-every {every} "
        schedule += f"--updates-per-round {updates}"
    else:
        steps, window = (600, 100) if smoke else (6000, 1000)
        schedule = "--backend mjx --num-envs 1" if name == "sweep-mjx-1" else ""
        if name.startswith("sweep-gym-"):
            schedule = f"--act-device {name.removeprefix('sweep-gym-')}"
    small = "--hidden-sizes 64 64 --critic-hidden-sizes 64 64" if smoke else ""
    return [
        *(sys.executable, "-m", "spikerl_jax.cli"),
        *f"sweep --env Hopper-v4 --seeds {seeds} --total-steps {steps} --start-steps {window} "
        f"--update-after {window} --eval-every {steps} --eval-episodes 1 --log-every {window} "
        f"--no-energy --no-tensorboard --no-progress {schedule} {small} --out".split(),
        root,
    ]


def step_sweep(name: str, out: str, smoke: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "sweep")
        command = sweep_command(name, smoke, root)
        t0 = time.perf_counter()
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=BUDGETS[name][smoke] - MARGIN_S,
                env={**os.environ, "SPIKERL_JAX_COMPILE_CACHE": "0"},  # cold: a first start
            )
            failed = done.returncode and (done.stdout + done.stderr).strip().splitlines()[-3:]
        except subprocess.TimeoutExpired:  # report the windows it finished
            failed = None
        wall = time.perf_counter() - t0
        rows = train_rows(root)
        record = {"step": name, "members": 2 if smoke else 10, "wall_s": wall}
        record["command"] = " ".join(command[3:]).replace(root, "ROOT")
        if failed:
            record["error"] = " | ".join(failed)
        elif not rows:
            record["no_window_within_s"] = wall  # compiling and the first window took longer
        else:
            record.update(throughput(rows, finished=int(rows[-1]["step"])))
        append(out, record)


def train_rows(root: str) -> list[dict]:
    """The first member's train.csv rows (none before its first window)."""
    members = (
        sorted(d for d in os.listdir(root) if d.startswith("base")) if os.path.isdir(root) else []
    )
    path = os.path.join(root, members[0], "train.csv") if members else ""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def throughput(rows: list[dict], finished: int) -> dict:
    """Env steps/s and updates/s per member over the windows after the first (which holds the
    compiling), the start-up seconds, and the projection to 1M steps."""
    steady = rows[1:] or rows
    steps_per_s = statistics.median(float(r["env_steps_per_s"]) for r in steady)
    updates = [float(r["updates_per_s"]) for r in steady if r["updates_per_s"]]
    first = rows[0]
    startup = float(first["wall_s"]) - int(first["step"]) / steps_per_s
    return {
        "steps_done": finished,
        "env_steps_per_s_per_member": steps_per_s,
        "updates_per_s_per_member": statistics.median(updates) if updates else None,
        "startup_s": startup,
        "projected_10x1M_s": startup + TARGET_STEPS / steps_per_s,
    }


def best(out: str) -> None:
    """The fastest way to run the 10-seed table at the paper's schedule, from the lines so far."""
    with open(out) as f:
        records = [json.loads(line) for line in f]
    paper = [
        r
        for r in records
        if r["step"] in ("sweep-gym-cpu", "sweep-gym-accelerator", "sweep-mjx-1")
        and "projected_10x1M_s" in r
    ]
    if paper:
        fastest = min(paper, key=lambda r: r["projected_10x1M_s"])
        append(
            out,
            {
                "step": "best",
                "fastest": fastest["step"],
                "projected_10x1M_min": fastest["projected_10x1M_s"] / 60,
                "goal_min": 30,
            },
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON lines file (appended to)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: a CPU dry run")
    parser.add_argument("--step", choices=list(BUDGETS), help="run one step in this process")
    parser.add_argument("--only", nargs="+", choices=list(BUDGETS), help="run these steps")
    args = parser.parse_args()
    if args.step == "machine":
        return step_machine(args.out, args.smoke)
    if args.step == "population":
        return step_population(args.out, args.smoke)
    if args.step:
        return step_sweep(args.step, args.out, args.smoke)
    start = time.perf_counter()
    for name in args.only or BUDGETS:
        budget = BUDGETS[name][args.smoke]
        command = [sys.executable, __file__, "--step", name, "--out", args.out]
        # A session of its own: a step cut at its budget takes its sweep's process with it.
        step = subprocess.Popen([*command, *["--smoke"] * args.smoke], start_new_session=True)
        try:
            code = step.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            os.killpg(step.pid, signal.SIGKILL)
            step.wait()
            append(args.out, {"step": name, "cut_at_budget_s": budget})
            continue
        if code:
            append(args.out, {"step": name, "exit_code": code})
    best(args.out)
    print(f"total {time.perf_counter() - start:.0f} s; lines in {args.out}", flush=True)


if __name__ == "__main__":
    main()
