"""The MJX backend: its compiled segments equal an explicit Python loop of the same steps,
each program compiles once, and a resumed run equals the straight one (its learning test:
test_device_loop_learning.py)."""

import dataclasses
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_trees_equal, latest_state, loop_physics, rows

from spikerl_jax.batching import TRACES
from spikerl_jax.cli import main
from spikerl_jax.config import CriticConfig, PopSANConfig, preset_for
from spikerl_jax.envs.mjx_env import EpisodeWrapper, VmapWrapper
from spikerl_jax.envs.registry import env_spec
from spikerl_jax.rl.replay import Transition
from spikerl_jax.training import device_loop
from spikerl_jax.training.build import build
from spikerl_jax.training.schedule import Counters, after_round

# The resume test's run (MJX_TINY below): both tests then use the same compiled programs,
# which the persistent compile cache shares between them.
PRESET = preset_for("InvertedPendulum-v4")  # as the CLI starts from
CFG = dataclasses.replace(
    PRESET,
    backend="mjx",
    devices=1,
    num_envs=2,
    update_every=8,
    updates_per_round=2,
    start_steps=16,
    update_after=24,
    replay_size=256,
    td3=dataclasses.replace(PRESET.td3, batch_size=8),
    actor=PopSANConfig(hidden_sizes=(8,)),
    critic=CriticConfig(critic_hidden_sizes=(8,)),
)
MJX_TINY = [
    "--env",
    "InvertedPendulum-v4",
    "--backend",
    "mjx",
    "--num-envs",
    "2",
    "--update-every",
    "8",
    "--updates-per-round",
    "2",
    "--start-steps",
    "16",
    "--update-after",
    "24",
    "--eval-every",
    "32",
    "--eval-episodes",
    "2",
    "--hidden-sizes",
    "8",
    "--critic-hidden-sizes",
    "8",
    "--replay-size",
    "256",
    "--batch-size",
    "8",
    "--no-progress",
    "--no-energy",
    "--devices",
    "1",
    "--checkpoint-buffer",
]


@pytest.fixture(autouse=True)
def cheap_physics(monkeypatch):
    """The loop's tests hold for any physics: the cheapest to compile (helpers.loop_physics)."""
    monkeypatch.setattr(device_loop, "make", loop_physics(device_loop.make))


def fresh(cfg=CFG):
    population = build([cfg])
    return population.learner, population.backend, population.state


@pytest.mark.slow
def test_segments_equal_an_explicit_loop_and_compile_once():
    _, backend, state = fresh()
    TRACES.clear()
    state, stats = backend.rounds(state, Counters(), 24)
    counters = Counters()
    for _ in range(stats.rounds):
        counters = after_round(CFG, counters)
    assert stats.rounds == 3 and counters.updates == CFG.updates_per_round  # 2 prefill rounds
    assert stats.nonfinite_step is None

    # The reference: round by round, vector step by vector step, from Python.
    ref_learner, ref_backend, ref = fresh()
    keys = ref_backend.members.keys
    spec = env_spec(CFG.env)
    env = VmapWrapper(
        EpisodeWrapper(device_loop.make(CFG.env), spec.max_episode_steps), CFG.num_envs
    )
    env_step = jax.jit(env.step)
    key_random, key_policy = jax.random.split(keys["explore"][0])
    ref_env = jax.tree.map(lambda x: x[0], ref.env)
    lstate, step = ref.learner, 0
    for _ in range(3):
        rows = []
        for _ in range(CFG.update_every // CFG.num_envs):
            params, norm = jax.tree.map(
                lambda x: x[0], (lstate.agent.actor_params, lstate.normalizer)
            )
            noise = jnp.float32(CFG.exploration_noise)
            if step < CFG.start_steps:  # the first two rounds: uniform random actions
                action = jax.random.uniform(
                    jax.random.fold_in(key_random, step), (CFG.num_envs, 1), jnp.float32, -3.0, 3.0
                )
            else:
                action = ref_learner.policies.explore(
                    params, norm, ref_env.obs, key_policy, step, noise
                )
            action = np.asarray(action)  # random or policy: one argument type, one compile
            nxt = env_step(ref_env, action)
            rows.append(
                Transition(
                    ref_env.obs, action, nxt.reward, nxt.info["final_obs"], nxt.info["terminated"]
                )
            )
            ref_env, step = nxt, step + CFG.num_envs
        chunk = jax.tree.map(lambda *x: jnp.concatenate(x)[None], *rows)
        if step >= CFG.update_after:
            lstate, _ = ref_learner.learn(lstate, chunk)
        else:
            lstate = ref_learner.ingest(lstate, chunk)

    assert int(state.learner.buffer.size[0]) == int(lstate.buffer.size[0]) == 24
    for a, b in zip(
        jax.tree.leaves(state.learner.buffer), jax.tree.leaves(lstate.buffer), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(
        jax.tree.leaves(state.learner.agent), jax.tree.leaves(lstate.agent), strict=True
    ):
        if jnp.issubdtype(a.dtype, jnp.floating):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(state.env.obs[0], ref_env.obs, rtol=1e-5, atol=1e-6)

    # Prefill rounds with random actions, then the policy's with updates: one program (the
    # host passes the action source and whether to update), traced once; more rounds reuse it.
    state, _ = backend.rounds(state, counters, 40)
    programs = {k: v for k, v in TRACES.items() if k.startswith("mjx_")}
    assert programs == {"mjx_segment": 1}


@pytest.mark.slow
def test_mjx_resume_equals_the_straight_run(tmp_path, caplog):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(["train", *MJX_TINY, "--total-steps", "96", "--out", str(straight)]) == 0
    assert main(["train", *MJX_TINY, "--total-steps", "32", "--out", str(resumed)]) == 0
    with caplog.at_level(logging.DEBUG, logger="jax._src.compiler"):
        assert main(["train", "--resume", str(resumed), "--total-steps", "96"]) == 0
    # The restored state lowers to the programs the fresh runs compiled (the segments, the
    # evaluation), so the persistent compile cache serves them all.
    missed = {
        r.args[0] for r in caplog.records if r.msg.startswith("PERSISTENT COMPILATION CACHE MISS")
    }
    assert not missed & {"jit_segment", "jit_one"}, missed
    assert rows(resumed) == rows(straight)
    (items, _, step), (ref_items, _, ref_step) = latest_state(resumed), latest_state(straight)
    assert step == ref_step == 96
    # Learner, buffer, policies, the MJX envs' state and the training-episode returns since
    # the evaluation.
    assert_trees_equal(items, ref_items)
