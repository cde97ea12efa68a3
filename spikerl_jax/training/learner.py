"""``make_learner``: the compiled pieces of a population, over its leading member axis.

A member's computation is written once, for one member (``init_member``, ``learn_round``:
ingest a round's transitions, then its TD3 updates), and batched over the members by
``over_members``. The layout (``spikerl_jax.training.parallel.Layout``) places the batch on
the devices with ``shard_map``: whole members per device, or each member's data split across
devices with gradients averaged. Both backends learn through ``learn_round``: the Gymnasium
backend calls its compiled host programs (``learn``, ``ingest``), the MJX backend composes it
into its own program.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from spikerl_jax.config import TrainConfig
from spikerl_jax.envs.registry import EnvSpec
from spikerl_jax.rl.networks import make_networks
from spikerl_jax.rl.normalizer import normalizer_init, normalizer_update
from spikerl_jax.rl.policy import Policies, make_policies
from spikerl_jax.rl.replay import Transition, replay_add, sample_normalized
from spikerl_jax.rl.td3 import HParams, hparams_from_config, make_td3
from spikerl_jax.training.parallel import (
    AXIS,
    Layout,
    global_buffer,
    learner_specs,
    local_buffer,
    replay_init_for,
)
from spikerl_jax.training.state import LearnerState

# Traces of each compiled program of this process, by name: every program should compile once
# per run (a test checks); a second trace means a retrace (new shapes, dtypes or statics).
TRACES: collections.Counter = collections.Counter()


def counted(name: str, fn: Callable) -> Callable:
    """``fn``, counting in ``TRACES[name]`` each time it is traced (its Python body runs only
    then)."""

    @functools.wraps(fn)
    def traced(*args, **kwargs):
        TRACES[name] += 1
        return fn(*args, **kwargs)

    return traced


def over_members(fn: Callable, count: int, in_axes=0, loop: bool = False) -> Callable:
    """``fn`` (of one member) applied to ``count`` members stacked on a leading axis: the one
    place where the member axis meets a member's function.

    Args:
      fn: a function of one member's pytrees.
      count: members per call. One member runs ``fn`` itself on the squeezed axis, so that a
        single run compiles the unbatched program.
      in_axes: as ``jax.vmap``'s (0: the argument is member-batched; None: shared).
      loop: a loop over the members (``lax.map``) instead of ``vmap``: for programs that run
        once (initialisation), whose compile time then stays that of one member.
    """
    axes_of = (lambda n: in_axes) if isinstance(in_axes, tuple | list) else (
        lambda n: (in_axes,) * n)  # fmt: skip
    if count > 1 and loop:
        return lambda *args: jax.lax.map(lambda a: fn(*a), args)
    if count > 1:
        return jax.vmap(fn, in_axes=in_axes)

    def one(*args):
        args = [jax.tree.map(lambda x: x[0], a) if ax == 0 else a
                for a, ax in zip(args, axes_of(len(args)), strict=True)]  # fmt: skip
        return jax.tree.map(lambda x: x[None], fn(*args))

    return one


class Learner(NamedTuple):
    """The compiled functions of a population (member-batched); the loops call only these.

    Attributes:
      layout: where the members and their data live.
      policies: one member's policies (``spikerl_jax.rl.policy``), unbatched.
      init: ``(keys (M,), hparams (M,), encoder_std (M,)) -> LearnerState``.
      learn: ``(state, chunk) -> (state, metrics (M,))``: ``learn_round`` with updates.
      ingest: ``(state, chunk) -> state``: ``learn_round`` without (before ``update_after``).
      learn_round: one member's round, ``(state, chunk, update) -> (state, metrics)``, with
        the data-parallel collectives on the device's buffer shard; ``update`` is a Python
        bool (a program each) or a traced one (``lax.cond``, for programs that compose it).
      explore_member: one member's exploring policy, for programs that compose it.
      act, act_with_spikes, explore: host-side acting (``acting``), in the acting view
        (``acting_view``, taken once per round).
    """

    layout: Layout
    policies: Policies
    init: Callable
    learn: Callable
    ingest: Callable
    learn_round: Callable
    explore_member: Callable
    acting_view: Callable
    act: Callable
    act_with_spikes: Callable
    explore: Callable


def make_learner(cfg: TrainConfig, spec: EnvSpec, layout: Layout) -> Learner:
    """Builds the population's compiled pieces for ``cfg``'s networks and schedule on
    ``layout``; what members may differ in comes in through ``init`` (keys, ``HParams``,
    the encoder's initial width)."""
    data_parallel = layout.mode == "data"
    networks = make_networks(spec.action_dim, spec.action_limit, cfg.actor, cfg.critic,
                             cfg.actor_kind)  # fmt: skip
    td3 = make_td3(networks, cfg.td3, axis_name=layout.axis_name)
    policies = make_policies(networks.actor, cfg.obs_clip)
    num_blocks = cfg.updates_per_round // cfg.td3.policy_delay

    def init_member(key: jax.Array, hparams: HParams, encoder_std: jax.Array) -> LearnerState:
        key_td3, key_update = jax.random.split(key)
        # The actor from the first half of TD3's key (td3.init takes the second).
        actor_params = networks.init_actor(jax.random.split(key_td3)[0], spec.obs_dim,
                                           encoder_std)  # fmt: skip
        return LearnerState(
            td3=td3.init(key_td3, actor_params, spec.obs_dim, hparams),
            buffer=replay_init_for(layout, cfg.replay_size, spec.obs_dim, spec.action_dim),
            normalizer=normalizer_init(spec.obs_dim),
            key=key_update,
        )

    def ingest(state: LearnerState, chunk: Transition) -> LearnerState:
        # The normalizer is replicated: every device folds in every device's observations.
        obs = jax.lax.all_gather(chunk.obs, AXIS, tiled=True) if data_parallel else chunk.obs
        return state.replace(buffer=replay_add(state.buffer, chunk),
                             normalizer=normalizer_update(state.normalizer, obs))  # fmt: skip

    def update(state: LearnerState):
        key, key_update = jax.random.split(state.key)
        if data_parallel:  # own batches per device; the state's key stays replicated
            key_update = jax.random.fold_in(key_update, jax.lax.axis_index(AXIS))

        def sample(k):
            return sample_normalized(state.buffer, state.normalizer, k, cfg.td3.batch_size,
                                     cfg.obs_clip)  # fmt: skip

        td3_state, metrics = td3.update(state.td3, sample, key_update, num_blocks)
        return state.replace(td3=td3_state, key=key), metrics

    def learn_round(state: LearnerState, chunk: Transition, do_update):
        state = ingest(state, chunk)
        if isinstance(do_update, bool):
            return update(state) if do_update else (state, None)

        def skip(state):  # the replay buffer is an operand only, never copied
            _, metrics = jax.eval_shape(update, state)
            return (state.td3, state.key), jax.tree.map(jnp.zeros_like, metrics)

        def updated(state):
            new, metrics = update(state)
            return (new.td3, new.key), metrics

        (td3_state, key), metrics = jax.lax.cond(do_update, updated, skip, state)
        return state.replace(td3=td3_state, key=key), metrics

    def on_devices(fn, out_specs):
        """``fn`` over this device's members, its buffer shard seen as a plain buffer (data
        mode), under ``shard_map`` on a mesh."""
        batched = over_members(fn, layout.local_members)

        def body(state, chunk):
            if data_parallel:
                state = state.replace(buffer=local_buffer(state.buffer))
            state, metrics = batched(state, chunk)
            if data_parallel:
                state = state.replace(buffer=global_buffer(state.buffer))
            return (state, metrics) if metrics is not None else state

        if layout.mesh is None:
            return body
        # check_vma=False: gradients of the replicated parameters stay per device (the
        # all-reduce is TD3's explicit pmean), rather than being summed implicitly.
        return jax.shard_map(body, mesh=layout.mesh, in_specs=(specs, layout.spec(0)),
                             out_specs=out_specs, check_vma=False)  # fmt: skip

    specs = learner_specs(layout, LearnerState)
    learn = on_devices(lambda s, c: learn_round(s, c, True), (specs, layout.spec(None)))
    ingest_only = on_devices(lambda s, c: learn_round(s, c, False), specs)
    init_out = None
    if layout.mesh is not None:
        init_out = jax.tree.map(layout.sharding, specs, is_leaf=lambda x: isinstance(x, P))
    members, device = layout.members, acting_device(cfg, layout)
    return Learner(
        layout=layout,
        policies=policies,
        init=jax.jit(counted("init", over_members(init_member, members, loop=True)),
                     out_shardings=init_out),  # fmt: skip
        learn=jax.jit(counted("learn", learn), donate_argnums=0),
        ingest=jax.jit(counted("ingest", ingest_only), donate_argnums=0),
        learn_round=learn_round,
        explore_member=policies.explore,
        acting_view=functools.partial(acting_view, layout, device),
        act=acting(policies.act, "act", members),
        act_with_spikes=acting(policies.act_with_spikes, "act_with_spikes", members),
        explore=acting(policies.explore, "explore", members, in_axes=(0, 0, 0, 0, None, 0)),
    )


# --act-device auto acts on the host CPU up to this many observations per actor call: on an
# accelerator, dispatch rather than arithmetic bounds small batches (BENCHMARKS.md).
ACT_ON_CPU_MAX_OBSERVATIONS = 64


def platform() -> str:
    """The training devices' platform (``"cpu"``, ``"gpu"``, ``"tpu"``)."""
    return jax.default_backend()


def acting_device(cfg: TrainConfig, layout: Layout) -> jax.Device | None:
    """The device the host loop acts on (``cfg.act_device`` resolved), or ``None`` for the
    training device."""
    if cfg.backend != "gymnasium":
        return None
    if platform() == "cpu":
        # Members split over CPU devices (one per core: split_cpu_for_members) act on one:
        # a batch-1 actor call costs less there than split across the cores.
        return jax.local_devices()[0] if layout.mode == "members" else None
    if cfg.act_device == "accelerator":
        return None
    observations = layout.members * cfg.num_envs // jax.process_count()
    if cfg.act_device == "auto" and observations > ACT_ON_CPU_MAX_OBSERVATIONS:
        return None
    return jax.devices("cpu")[0]


def acting_view(layout: Layout, device: jax.Device | None, tree):
    """``tree`` (member-batched device arrays) as the acting functions take it: in the
    data-parallel layout one device's copy of the replicated arrays (acting once, not once
    per device; with several processes each on its own, as a global array may only meet
    inputs that are equal on every process), copied to ``device`` (the acting functions then
    run there) unless it is ``None``."""
    if layout.mode == "data":
        tree = jax.tree.map(lambda x: x.addressable_data(0), tree)
    return tree if device is None else jax.device_put(tree, device)


def acting(fn: Callable, name: str, members: int, in_axes=0) -> Callable:
    """A policy function for host-side acting: member-batched observations ``(M, B, D)`` in,
    numpy actions ``(M, B, A)`` (and spike counts ``{layer: (M, B)}``) out, the other
    arguments member-batched in the acting view (``acting_view``)."""
    compiled = jax.jit(counted(name, over_members(fn, members, in_axes)))

    def call(*args):
        out = compiled(*args)
        return (np.asarray(out[0]), out[1]) if isinstance(out, tuple) else np.asarray(out)

    return call


def member_keys(seeds) -> dict[str, jax.Array]:
    """Each member's PRNG keys by purpose, from its seed: ``init`` (networks, update
    sampling), ``explore`` (exploration noise, random actions of MJX) and ``eval``."""
    keys = jnp.stack([jax.random.split(jax.random.key(s), 3) for s in seeds])
    return {"init": keys[:, 0], "explore": keys[:, 1], "eval": keys[:, 2]}


def member_settings(configs: list[TrainConfig]) -> tuple[HParams, np.ndarray, np.ndarray]:
    """What each member brings to the shared programs, stacked on a leading member axis:
    TD3's ``HParams``, the encoder's initial width and the exploration noise (float32)."""
    hparams = jax.tree.map(lambda *v: np.stack(v),
                           *(hparams_from_config(c.td3) for c in configs))  # fmt: skip
    encoder_std = np.array([c.actor.encoder_std for c in configs], np.float32)
    noise = np.array([c.exploration_noise for c in configs], np.float32)
    return hparams, encoder_std, noise
