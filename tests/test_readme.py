"""README's own commands, run as a user runs them: so that a README example that crashes fails
the suite.

Every ``spikerl-jax`` line of README's bash blocks is either run here or named in
``NOT_RUN`` with the reason (a new example that is neither fails
``test_every_readme_command_is_run_or_named``). The lines run verbatim, in README's order, in
one working directory (so ``runs/hopper`` is what the Training section's line wrote), each in
its own ``spikerl-jax`` process with the user's environment (``helpers.user_env``: no forced
host device count, no ``--devices``).

What is shrunk, always by flags appended at the end of the line (the CLI takes a repeated
option's last value; ``test_a_flag_appended_at_the_end_overrides_the_line``):

- new runs and sweeps: ``SHRINK`` (600 steps, the Training section's Hopper run 900; 16x16
  networks, 2 evaluation episodes every 300 steps, a 1000-transition buffer); the task, the
  sweep's grid and its 20 members stay as written (Hopper-v4 with 16x16 networks is about as
  cheap as InvertedPendulum);
- ``train --resume runs/hopper --total-steps 2000000``: ``--total-steps 1200``;
- ``eval ... --raster`` and ``--render``: ``--episodes 1``.

What is made to happen between the lines: the Training section's Hopper run and the sweep
are stopped by Ctrl-C (SIGINT) after their first checkpoint, which is what their resume
lines are for ("after a crash, Ctrl-C or kill"); ``compare runs/mlp runs/popsan`` and
``plot runs/a-s0 runs/a-s1 runs/b-s0`` name runs that README leaves to the reader: they are
copies of the quick start's run and of sweep members (``PLACEHOLDERS``).

``eval --render`` needs an OpenGL library (EGL or OSMesa): where the machine has none, or
MuJoCo cannot start it, that line alone is skipped with the CLI's one line as the reason.
README's Python blocks are not run here (tests/test_notebook.py runs the same API).
"""

from __future__ import annotations

import ctypes.util
import json
import re
import shlex
import shutil
import signal
import time
from pathlib import Path

import pytest
from helpers import USER_TINY, user_cli, user_cli_background

README = Path(__file__).resolve().parent.parent / "README.md"

# USER_TINY without its task: the schedule and sizes of a tiny run.
SHRINK = [*USER_TINY[: USER_TINY.index("--env")], *USER_TINY[USER_TINY.index("--env") + 2 :]]

QUICK_START = "spikerl-jax train"
HOPPER = "spikerl-jax train --env Hopper-v4 --total-steps 100000 --out runs/hopper"
SWEEP = (
    "spikerl-jax sweep --env Hopper-v4 --seeds 0 1 2 3 4 --actor-lr 1e-4 3e-4 "
    "--exploration-noise 0.1 0.2 --total-steps 100000 --out runs/hopper-sweep"
)
SWEEP_RESUME = "spikerl-jax sweep --resume runs/hopper-sweep"
RENDER = "spikerl-jax eval runs/hopper --render hopper.mp4"
RESUME = "spikerl-jax train --resume runs/hopper"
RESUME_LONGER = "spikerl-jax train --resume runs/hopper --total-steps 2000000"

# What each line gets appended (the rest run exactly as written).
APPENDED = {
    # The quick start's progress stays on: its announcement and evaluation lines are checked.
    QUICK_START: [a for a in SHRINK if a != "--no-progress"],
    # Ctrl-C lands after the checkpoint of step 300, with one or two evaluations to go.
    HOPPER: [*SHRINK, "--total-steps", "900"],
    SWEEP: SHRINK,
    "spikerl-jax eval runs/hopper --raster raster.png": ["--episodes", "1"],
    RENDER: ["--episodes", "1"],
    RESUME_LONGER: ["--total-steps", "1200"],
}
# Lines stopped by Ctrl-C once their first checkpoint is written (the root of what they write).
INTERRUPTED = {HOPPER: "runs/hopper", SWEEP: "runs/hopper-sweep"}
# Runs README names without making them: made before the line that needs them, from what the
# lines before wrote (the sweep's members: actor_lr=A,exploration_noise=N-sSEED).
MEMBER = "runs/hopper-sweep/actor_lr=0.0001,exploration_noise=0.1-s{}"
PLACEHOLDERS = {
    "spikerl-jax compare runs/mlp runs/popsan": {
        "runs/mlp": "runs/quick-start",  # the quick start's run, moved below
        "runs/popsan": MEMBER.format(0),
    },
    "spikerl-jax plot runs/a-s0 runs/a-s1 runs/b-s0 --out plots": {
        "runs/a-s0": MEMBER.format(0),
        "runs/a-s1": MEMBER.format(1),
        "runs/b-s0": "runs/hopper-sweep/actor_lr=0.0003,exploration_noise=0.1-s0",
    },
}
NOT_RUN = {
    # Run verbatim, as a user runs them, by the tests of the help (one process each is enough).
    "spikerl-jax train --env Hopper-v4 --help": "test_cli.py::test_help_documents_every_option",
    "spikerl-jax --version": "test_cli.py::test_version",
    "spikerl-jax sweep --help": "test_first_day.py::test_help_teaches",
    "spikerl-jax train --env Hopper-v4 --backend mjx --num-envs 1024 --update-every 4096 "
    "--updates-per-round 64 --start-steps 40960": "MJX Hopper: a 45-55 s compile "
    "(tests/envs/test_mjx_tasks.py, tests/training/test_device_loop.py run MJX)",
    "spikerl-jax train --env Hopper-v4 --devices 4": "needs 4 devices "
    "(tests/training/test_parallel.py forces them)",
    "spikerl-jax train --env Hopper-v4 --coordinator-address HOST:PORT --num-processes 2 "
    "--process-id 0": "a placeholder address and two hosts "
    "(tests/training/test_parallel.py runs 2 processes)",
}


def readme_commands() -> list[str]:
    """Every ``spikerl-jax`` command of README's bash blocks, in order: continuation lines
    joined, comments dropped, ``a && b`` split, ``.venv/bin/spikerl-jax`` as ``spikerl-jax``."""
    text = README.read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words, part = shlex.split(line, comments=True), []
            for word in [*words, "&&"]:
                if word != "&&":
                    part.append(word)
                    continue
                if part and Path(part[0]).name == "spikerl-jax":
                    commands.append(shlex.join(["spikerl-jax", *part[1:]]))
                part = []
    return commands


def gl_missing() -> str | None:
    """Why ``--render`` cannot run here (no EGL or OSMesa library), or None."""
    if any(ctypes.util.find_library(name) for name in ("EGL", "OSMesa")):
        return None
    return "no EGL or OSMesa library (apt-get install libegl1 or libosmesa6)"


def wait_for(condition, proc, timeout: float = 300.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if condition():
            return
        time.sleep(0.05)


def first_checkpoint(root: Path) -> bool:
    folder = root / "checkpoints"
    return folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())


def run_line(line: str, cwd: Path) -> dict:
    """Runs one README line in ``cwd``: its result, with ``stopped`` (the signal's line) for
    those it interrupts."""
    args = [*shlex.split(line)[1:], *APPENDED.get(line, [])]
    if line not in INTERRUPTED:
        code, out, err = user_cli(*args, cwd=cwd)
        return {"code": code, "out": out, "err": err}
    proc = user_cli_background(*args, cwd=cwd)
    wait_for(lambda: first_checkpoint(cwd / INTERRUPTED[line]), proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    return {"code": proc.returncode, "out": out, "err": err, "interrupted": True}


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """README's lines run in order in one working directory: ``{line: result}``."""
    cwd = tmp_path_factory.mktemp("user")
    results = {}
    for line in readme_commands():
        if line in NOT_RUN or (line == RENDER and gl_missing()):
            continue
        for name, source in PLACEHOLDERS.get(line, {}).items():
            if (cwd / source).is_dir() and not (cwd / name).exists():
                shutil.copytree(cwd / source, cwd / name)
        results[line] = run_line(line, cwd)
        if line in (RESUME, RESUME_LONGER):  # the next line rewrites it
            results[line]["summary"] = json.loads((cwd / "runs/hopper/summary.json").read_text())
        if line == QUICK_START:  # its run is runs/InvertedPendulum-v4-s0-TIME: named for later
            made = sorted((cwd / "runs").glob("InvertedPendulum-v4-s0-*"))
            results[line]["made"] = [p.name for p in made]
            if len(made) == 1:
                shutil.copytree(made[0], cwd / "runs" / "quick-start")
    return cwd, results


def test_every_readme_command_is_run_or_named():
    commands = readme_commands()
    assert len(commands) == len(set(commands)) and QUICK_START in commands
    for line in [*APPENDED, *PLACEHOLDERS, *NOT_RUN]:
        assert line in commands, f"README no longer has {line!r}: update this test"


def test_a_flag_appended_at_the_end_overrides_the_line():
    """What the shrinking relies on: tyro takes a repeated option's last value, and the
    preset follows the last --env."""
    from spikerl_jax.cli import parse
    from spikerl_jax.cli.options import from_grid

    sweep = parse([*shlex.split(SWEEP)[1:], *APPENDED[SWEEP]]).config
    cfg, grid = from_grid(sweep)
    assert (cfg.env, cfg.total_steps, cfg.actor.hidden_sizes) == ("Hopper-v4", 600, (16, 16))
    assert dict(grid) == {"actor_lr": (1e-4, 3e-4), "exploration_noise": (0.1, 0.2)}
    longer = parse(["train", "--total-steps", "2000000", "--total-steps", "1200"]).config
    assert longer.total_steps == 1200


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


def check(line: str, cwd: Path, result: dict) -> None:
    """What README says each line does, beyond finishing."""
    out, err = result["out"], result["err"]
    runs = cwd / "runs"
    if line == QUICK_START:
        # "names the task, the device and the run directory, ... a line per evaluation, and
        # writes runs/InvertedPendulum-v4-s0-TIME/"; the run directory's table.
        assert len(result["made"]) == 1, result["made"]
        run = runs / result["made"][0]
        assert "InvertedPendulum-v4" in err and "CPU" in err and result["made"][0] in err, err
        assert len([x for x in err.splitlines() if "eval" in x and "step" in x]) == 2, err
        for name in ("config.json", "metrics.csv", "train.csv", "summary.json", "emissions.csv"):
            assert (run / name).is_file(), name
        assert (run / "tensorboard").is_dir() and (run / "checkpoints" / "600").is_dir()
    elif line in INTERRUPTED:
        # "Ctrl-C and SIGTERM save a checkpoint and exit with the resume command"
        stop = err.strip().splitlines()[-1]
        command = "sweep" if line == SWEEP else "train"
        assert result["code"] == 130, err[-3000:]
        assert "SIGINT" in stop and f"spikerl-jax {command} --resume {INTERRUPTED[line]}" in stop
    elif line == SWEEP_RESUME:
        # 2 x 2 settings x 5 seeds; ROOT holds sweep.json, sweep.csv, learning_curves.png.
        root = runs / "hopper-sweep"
        members = [p for p in root.iterdir() if (p / "config.json").is_file()]
        assert len(members) == 20 and (root / MEMBER.format(4).split("/", 2)[2]).is_dir()
        settings = json.loads((root / "sweep.json").read_text())["settings"]
        assert len(settings) == 4 and all(s["seeds"] == 5 for s in settings)
        assert (root / "sweep.csv").is_file() and (root / "learning_curves.png").is_file()
        summary = json.loads((cwd / MEMBER.format(3) / "summary.json").read_text())
        assert summary["total_steps"] == 600 and summary["resumed_from"] >= 300
    elif line == "spikerl-jax eval runs/hopper --episodes 10":
        assert "best policy (step" in out and "firing rate" in out, out
    elif line.endswith("--json"):
        assert json.loads(one_line(out))["episodes"] == 10
    elif "--raster" in line:
        assert (cwd / "raster.png").stat().st_size > 0
    elif "--render" in line:
        assert (cwd / "hopper.mp4").stat().st_size > 0
    elif line.startswith("spikerl-jax compare"):
        assert (runs / "mlp" / "comparison.json").is_file() and "Speedup" in out
    elif line.startswith("spikerl-jax plot"):
        assert list((cwd / "plots").glob("*.png")), out
    elif line.startswith("spikerl-jax export-nir"):
        assert (cwd / "hopper.nir").is_file() and "spike bins equal" in out
    elif line == RESUME:
        summary = result["summary"]
        assert summary["total_steps"] == 900 and summary["resumed_from"] >= 300
    elif line == RESUME_LONGER:
        summary = result["summary"]
        assert summary["total_steps"] == 1200 and summary["resumed_from"] == 900


RUN = [line for line in readme_commands() if line not in NOT_RUN]


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(
            line,
            id=line.removeprefix("spikerl-jax "),
            marks=pytest.mark.skipif(
                line == RENDER and gl_missing() is not None, reason=f"--render: {gl_missing()}"
            ),
        )
        for line in RUN
    ],
)
def test_readme_command(line, session):
    """The line finishes (exit 0; 130 where Ctrl-C stopped it) without a traceback, and does
    what README says (``check``). ``--render`` where the GL library is there but will not
    start: README's promise is then its one line."""
    cwd, results = session
    result = results[line]
    err = result["err"]
    if line == RENDER and result["code"] == 2:
        assert "offscreen" in one_line(err), err[-3000:]
        return
    assert "Traceback" not in err, f"{line}\n{err[-3000:]}"
    assert result["code"] == (130 if result.get("interrupted") else 0), f"{line}\n{err[-3000:]}"
    check(line, cwd, result)
