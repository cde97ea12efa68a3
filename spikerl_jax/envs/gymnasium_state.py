"""A Gymnasium env's state between steps as arrays (one row per env, for checkpoints): its
simulator (MuJoCo's ``MjData``, or a non-MuJoCo env's attributes), its time limit's counter and
its generators.
"""

from __future__ import annotations

import pickle
import zlib

import gymnasium as gym
import numpy as np


def rng_array(generator: np.random.Generator) -> np.ndarray:
    """A PCG64 generator's state as ``uint64[6]`` (state and increment as two halves each,
    then the buffered 32-bit draw)."""
    state = generator.bit_generator.state
    if state["bit_generator"] != "PCG64":
        raise ValueError(f"cannot save a {state['bit_generator']} generator (PCG64 only)")
    words = []
    for value in (state["state"]["state"], state["state"]["inc"]):
        words += [value >> 64, value & (2**64 - 1)]
    return np.array([*words, state["has_uint32"], state["uinteger"]], np.uint64)


def set_rng(generator: np.random.Generator, saved: np.ndarray) -> None:
    """Restores ``rng_array``'s output into ``generator``."""
    w = [int(x) for x in saved]
    generator.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
        "has_uint32": w[4],
        "uinteger": w[5],
    }


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


# What a non-MuJoCo env's own attributes hold that is not its state (spaces, rendering,
# its generator: saved on its own).
NOT_STATE = {
    "spec",
    "action_space",
    "observation_space",
    "metadata",
    "render_mode",
    "screen",
    "clock",
    "isopen",
    "_np_random",
    "np_random",
}


def _physics(env: gym.Env) -> bytes:
    """An env's simulator state as bytes: MuJoCo's whole ``MjData``, or for other envs
    (classic control: ``Pendulum-v1``, ...) their attributes that are state."""
    base = env.unwrapped
    if hasattr(base, "data") and hasattr(base, "model"):
        return zlib.compress(pickle.dumps(base.data))
    state = {k: v for k, v in vars(base).items() if k not in NOT_STATE}
    try:
        return zlib.compress(pickle.dumps(state))
    except Exception as e:  # e.g. Box2D worlds
        raise ValueError(
            f"{env.spec.id if env.spec else type(base).__name__}'s state cannot "
            f"be checkpointed ({type(e).__name__}: {e})"
        ) from None


def envs_state(envs: list[gym.Env]) -> dict[str, np.ndarray]:
    """Everything the Gymnasium envs carry between steps, one row per env.

    ``physics`` holds each env's simulator state (``_physics``: for MuJoCo the whole
    ``MjData``, not just ``mj_getState``'s integration state, since Gymnasium's rewards read
    derived quantities that ``mj_step`` leaves from its last substep, which a recomputation
    from the state would change), as bytes padded to the longest (``physics_bytes`` gives each
    length): restore only checkpoints you wrote. ``elapsed_steps`` is the time limit's
    counter (-1: no limit), ``rng`` the generator of the next reset's noise.
    """
    blobs = [_physics(env) for env in envs]
    physics = np.zeros((len(envs), max(map(len, blobs))), np.uint8)
    for row, blob in zip(physics, blobs, strict=True):
        row[: len(blob)] = np.frombuffer(blob, np.uint8)
    limits = [_time_limit(env) for env in envs]
    return {
        "physics": physics,
        "physics_bytes": np.array([len(b) for b in blobs], np.int64),
        "elapsed_steps": np.array([-1 if t is None else t._elapsed_steps for t in limits]),
        "rng": np.stack([rng_array(env.unwrapped.np_random) for env in envs]),
    }


def set_envs_state(envs: list[gym.Env], state: dict[str, np.ndarray]) -> None:
    """Restores what ``envs_state`` returned (the envs must have been reset once)."""
    import mujoco

    for i, env in enumerate(envs):
        base = env.unwrapped
        saved = pickle.loads(
            zlib.decompress(state["physics"][i, : int(state["physics_bytes"][i])].tobytes())
        )
        if isinstance(saved, dict):
            for name, value in saved.items():
                setattr(base, name, value)
        else:
            mujoco.mj_copyData(base.data, base.model, saved)
        limit = _time_limit(env)
        if limit is not None:
            limit._elapsed_steps = int(state["elapsed_steps"][i])
        set_rng(base.np_random, state["rng"][i])
