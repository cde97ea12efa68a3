"""Population-based training: the exploit step's decisions against a NumPy reference, the
copy on the devices, members that are never replaced bit-identical to a population without
PBT, a killed PBT run resumed exactly, the records, what eval serves, and bad input."""

import csv
import dataclasses
import json
import math
import signal

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    USER_TINY,
    one_line,
    rows,
    steps_saved,
    user_cli,
    user_cli_background,
    wait_until,
)

from spikerl_jax.cli import main
from spikerl_jax.config import preset_for
from spikerl_jax.pbt_spec import PBTRecord, PBTSpec, Range, load_spec
from spikerl_jax.training.exploit import make_copy
from spikerl_jax.training.state import LearnerState

RANGES = (Range("actor_lr", 1e-5, 1e-3, log=True), Range("exploration_noise", 0.05, 0.3))


def reference_exploit(seed, step, scores, settings, quantile, resample, ranges):
    """The exploit step as its description says, written out: rank by score (ties: lower
    index first), the ceil(quantile M) (at most M/2) lowest copy a uniformly drawn one of as
    many highest; each setting resampled with probability ``resample`` (log-uniform for a
    log range), else times 0.8 or 1.2; 4 significant digits, clipped to the range."""
    rng = np.random.default_rng([seed, step])
    m = len(scores)
    n = min(math.ceil(m * quantile), m // 2)
    ranked = sorted(range(m), key=lambda i: (-scores[i], i))
    top, bottom = ranked[:n], sorted(ranked[m - n :]) if n else []
    sources, new = list(range(m)), [tuple(s) for s in settings]
    for member in bottom:
        source = top[int(rng.integers(n))]
        values = []
        for r, value in zip(ranges, settings[source], strict=True):
            if rng.random() < resample:
                if r.log:
                    v = math.exp(rng.uniform(math.log(r.low), math.log(r.high)))
                else:
                    v = rng.uniform(r.low, r.high)
            else:
                v = value * (0.8, 1.2)[int(rng.integers(2))]
            values.append(min(max(float(f"{v:.4g}"), r.low), r.high))
        sources[member], new[member] = source, tuple(values)
    return sources, new


@pytest.mark.parametrize("quantile,resample", [(0.25, 0.25), (0.5, 0.0), (0.34, 1.0)])
def test_the_exploit_step_matches_a_numpy_reference(quantile, resample):
    spec = PBTSpec(
        base=preset_for("InvertedPendulum-v4"),
        members=6,
        every=5000,
        ranges=RANGES,
        quantile=quantile,
        resample=resample,
    )
    settings = spec.initial_settings()
    for r, column in zip(RANGES, zip(*settings, strict=True), strict=True):
        assert all(r.low <= v <= r.high for v in column)
    assert len(set(settings)) == 6  # drawn per member
    scores = (3.0, 900.0, 15.0, 900.0, -2.0, 40.0)  # a tie at the top: member 1 ranks first
    windows = tuple((s - 1.0, s + 1.0) for s in scores)  # the score is the window's mean
    record = PBTRecord(settings=settings, window=windows)
    sources, after = spec.exploit(7000, record)
    ref_sources, ref_settings = reference_exploit(
        spec.base.seed, 7000, scores, settings, quantile, resample, RANGES
    )
    assert list(sources) == ref_sources
    assert after.settings == tuple(ref_settings)
    copiers = [m for m in range(6) if sources[m] != m]
    assert len(copiers) == min(math.ceil(6 * quantile), 3)
    assert {c.member for c in after.lineage} == set(copiers)
    assert all(w == () for w in after.window)
    for c in after.lineage:  # what each copy records
        assert (c.source, c.before, c.after) == (
            sources[c.member],
            settings[c.member],
            after.settings[c.member],
        )
        assert c.score == scores[c.member] and c.source_score == scores[c.source]
        if resample == 0.0:  # perturbed only: 0.8 or 1.2 times the source's, clipped
            for r, v, s in zip(RANGES, c.after, settings[c.source], strict=True):
                options = {r.clip(s * 0.8), r.clip(s * 1.2)}
                assert v in options
    kept = [m for m in range(6) if m not in copiers]
    assert all(after.settings[m] == settings[m] for m in kept)
    assert spec.exploit(7000, record)[1] == after  # seeded by the run's seed and the step


def test_the_schedule_follows_the_copies_back():
    spec = PBTSpec(base=preset_for("InvertedPendulum-v4"), members=3, every=5000, ranges=RANGES)
    initial = spec.initial_settings()
    a, b = (1e-4, 0.1), (2e-4, 0.2)
    from spikerl_jax.pbt_spec import Exploit

    lineage = (
        Exploit(5000, 2, 0, 1.0, 2.0, initial[2], a),
        Exploit(10000, 1, 2, 1.0, 2.0, initial[1], b),
    )
    schedule = spec.schedule(1, lineage)
    assert [(s["start"], s["end"], s["member"]) for s in schedule] == [
        (0, 5000, 0), (5000, 10000, 2), (10000, spec.base.total_steps, 1),
    ]  # fmt: skip
    assert (schedule[0]["actor_lr"], schedule[1]["actor_lr"], schedule[2]["actor_lr"]) == (
        initial[0][0], a[0], b[0],
    )  # fmt: skip


@flax.struct.dataclass
class _Agent:
    actor_params: dict
    hparams: dict


def test_the_copy_is_a_gather_over_the_member_axis():
    """Copiers take their source's agent and normalizer (and buffer only with copy_buffer),
    keep their own key; the traced settings are the new ones."""
    m = 4
    rng = np.random.default_rng(0)
    learner = LearnerState(
        agent=_Agent(
            {"w": rng.normal(size=(m, 3, 2))}, {"actor_lr": np.arange(m, dtype=np.float32)}
        ),
        buffer={"obs": rng.normal(size=(m, 5, 3))},
        normalizer={"mean": rng.normal(size=(m, 3))},
        key=jax.random.split(jax.random.key(1), m),
    )
    learner = jax.device_put(learner)
    sources = np.array([0, 0, 2, 1])
    hparams = {"actor_lr": np.array([9, 8, 7, 6], np.float32)}
    for copy_buffer in (False, True):
        before = jax.tree.map(np.asarray, jax.random.key_data(learner.key))
        ref = jax.tree.map(
            np.asarray, (learner.agent.actor_params, learner.buffer, learner.normalizer)
        )
        out = make_copy(learner, copy_buffer)(jax.tree.map(jnp.copy, learner), sources, hparams)
        np.testing.assert_array_equal(out.agent.actor_params["w"], ref[0]["w"][sources])
        np.testing.assert_array_equal(out.normalizer["mean"], ref[2]["mean"][sources])
        expected = ref[1]["obs"][sources] if copy_buffer else ref[1]["obs"]
        np.testing.assert_array_equal(out.buffer["obs"], expected)
        np.testing.assert_array_equal(out.agent.hparams["actor_lr"], hparams["actor_lr"])
        np.testing.assert_array_equal(jax.random.key_data(out.key), before)


# A tiny PBT on the user's path (no --devices: 4 members over the CPU's cores): evaluations
# every 100 steps, an exploit step every 200, checkpoints with the buffer at every one.
PBT = [
    *USER_TINY[: USER_TINY.index("--eval-every")],
    *USER_TINY[USER_TINY.index("--eval-every") + 2 :],
    "--eval-every", "100", "--every", "200", "--members", "4", "--no-energy",
    "--checkpoint-buffer", "--keep-checkpoints", "10",
    "--actor-lr", "1e-4:3e-3:log", "--exploration-noise", "0.05:0.3",
]  # fmt: skip


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """A PBT run and the same population without copies (--quantile 0: the same draws)."""
    base = tmp_path_factory.mktemp("pbt")
    for name, quantile in (("pbt", "0.25"), ("random", "0")):
        code, _, err = user_cli("pbt", *PBT, "--quantile", quantile, "--out", str(base / name))
        assert code == 0, err[-3000:]
    return base


def lineage(root):
    with open(root / "lineage.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_members_never_replaced_are_bit_identical_to_the_population_without_pbt(straight):
    copies = lineage(straight / "pbt")
    assert {int(r["step"]) for r in copies} == {200, 400, 600}  # one copier per exploit step
    copiers = {r["member"] for r in copies}
    members = [f"m{i}-s{i}" for i in range(4)]
    never = [m for m in members if m not in copiers]
    assert never and len(copiers) >= 1
    for member in never:
        assert rows(straight / "pbt" / member) == rows(straight / "random" / member)
    for member in copiers:  # a copier's curve leaves the copy-free one after its first copy
        first = min(int(r["step"]) for r in copies if r["member"] == member)
        mine, free = rows(straight / "pbt" / member), rows(straight / "random" / member)
        assert [r for r in mine if int(r["step"]) <= first] == [
            r for r in free if int(r["step"]) <= first
        ]
        assert mine != free or first == 600  # (a copy at the last step changes no row)
    assert lineage(straight / "random") == []
    summary = json.loads((straight / "pbt" / "pbt.json").read_text())
    assert summary["copies"] == len(copies) and (straight / "pbt" / "pbt.png").stat().st_size > 0
    best = max(
        members,
        key=lambda m: max(float(r["eval_return"]) for r in rows(straight / "pbt" / m)),
    )
    assert summary["best_member"] == best
    schedule = summary["best_schedule"]
    assert schedule[0]["start"] == 0 and schedule[-1]["end"] == 600


def test_a_killed_pbt_run_resumes_exactly(straight, tmp_path):
    """kill -9 after its second checkpoint (past the first exploit step), then ``pbt
    --resume``: every member's metrics and the lineage equal the uninterrupted run's."""
    root = tmp_path / "root"
    proc = user_cli_background("pbt", *PBT, "--out", str(root))
    wait_until(lambda: len(steps_saved(root)) >= 3 or proc.poll() is not None)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    code, _, err = user_cli("pbt", "--resume", str(root))
    assert code == 0, err[-3000:]
    for i in range(4):
        assert rows(root / f"m{i}-s{i}") == rows(straight / "pbt" / f"m{i}-s{i}")
    assert lineage(root) == lineage(straight / "pbt")
    assert load_spec(root) == dataclasses.replace(
        load_spec(straight / "pbt"), base=load_spec(root).base
    )


def test_eval_of_the_root_serves_the_best_member(straight, capsys):
    summary = json.loads((straight / "pbt" / "pbt.json").read_text())
    assert main(["eval", str(straight / "pbt"), "--episodes", "1", "--json"]) == 0
    served = json.loads(capsys.readouterr().out)
    assert served["run_dir"].endswith(summary["best_member"])


@pytest.mark.parametrize(
    "args,says",
    [
        (["--actor-lr", "1e-3:1e-4"], "empty or inverted"),
        (["--actor-lr", "3e-4:3e-4"], "empty or inverted"),
        (["--actor-lr", "0:1e-3:log"], "LOW > 0"),
        (["--actor-lr", "1e-4:1e-3:exp"], "takes a number or a range"),
        (["--actor-lr", "1e-4:1e-3", "--every", "150"], "multiple of --eval-every"),
        (["--actor-lr", "1e-4:1e-3", "--members", "1"], "at least 2"),
        (["--actor-lr", "1e-4:1e-3", "--batch-size", "64:256"], "changes the compiled"),
        (["--actor-lr", "1e-4:1e-3", "--encoder-std", "0.1:0.5"], "only sets where training"),
        (["--actor-lr", "1e-4:1e-3", "--quantile", "0.7"], "--quantile"),
        (["--gamma", "0.9:1.5"], "gamma"),
        (["--seeds", "0", "1"], "--seed"),
        ([], "at least one range"),
    ],
)
def test_bad_pbt_input_is_one_line_and_writes_nothing(args, says, tmp_path, capsys):
    root = tmp_path / "root"
    tiny = [*USER_TINY[: USER_TINY.index("--eval-every")], "--eval-every", "100"]
    assert main(["pbt", *tiny, *args, "--out", str(root)]) == 2
    line = one_line(capsys.readouterr().err)
    assert says in line, line
    assert not root.exists()
