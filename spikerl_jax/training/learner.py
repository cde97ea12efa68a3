"""``make_learner``: the compiled pieces of a population, over its leading member axis.

A member's computation is written once, for one member (``init_member``, ``learn_round``:
ingest a round's transitions, then its algorithm's updates), and batched over the members by
``over_members``. The layout (``spikerl_jax.training.parallel.Layout``) places the batch on
the devices with ``shard_map``: whole members per device, or each member's data split across
devices with gradients averaged. Both backends learn through ``learn_round``: the Gymnasium
backend calls its compiled host programs (``learn``, ``ingest``), the MJX backend composes it
into its own program.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from spikerl_jax.batching import counted, over_members
from spikerl_jax.config import TrainConfig
from spikerl_jax.envs.registry import EnvSpec
from spikerl_jax.rl.algorithm import Algorithm
from spikerl_jax.rl.algorithms import make_algorithm
from spikerl_jax.rl.networks import Networks, make_networks
from spikerl_jax.rl.normalizer import normalizer_init, normalizer_update
from spikerl_jax.rl.policy import Policies, make_policies
from spikerl_jax.rl.replay import (
    Transition,
    as_shard,
    one_shard,
    replay_add,
    replay_init,
    sample_normalized,
)
from spikerl_jax.training.parallel import AXIS, Layout, learner_specs
from spikerl_jax.training.state import LearnerState


class Learner(NamedTuple):
    """The compiled functions of a population (member-batched); the loops call only these.

    Attributes:
      layout: where the members and their data live.
      policies: one member's policies (``spikerl_jax.rl.policy``), unbatched.
      explorer: ``agent state -> params`` of ``policies.explore`` (``Algorithm.explorer``).
      metrics: the names of the updates' metrics, in the records' column order.
      init: ``(keys (M,), hparams (M,), encoder_std (M,)) -> LearnerState``.
      learn: ``(state, chunk) -> (state, metrics (M,))``: ``learn_round`` with updates.
      ingest: ``(state, chunk) -> state``: ``learn_round`` without (before ``update_after``).
      learn_round: one member's round, ``(state, chunk, update) -> (state, metrics)``, with
        the data-parallel collectives on the device's buffer shard; ``update`` is a Python
        bool (a program each) or a traced one (``lax.cond``, for programs that compose it).
    """

    layout: Layout
    policies: Policies
    explorer: Callable
    metrics: tuple[str, ...]
    init: Callable
    learn: Callable
    ingest: Callable
    learn_round: Callable


def make_member_round(
    cfg: TrainConfig, spec: EnvSpec, layout: Layout, algorithm: Algorithm, networks: Networks
):
    """One member's learner, written once: ``(init_member, learn_round)``, for ``algorithm``
    (``rl.algorithm.Algorithm``) of ``networks``.

    ``init_member(key, hparams, encoder_std) -> LearnerState``; ``learn_round(state, chunk,
    update) -> (state, metrics)`` ingests a round's transitions (replay insert, normalizer
    update) and then, if ``update``, runs the round's updates, with the data-parallel
    collectives on this device's buffer shard. ``update`` is a Python bool (a program each)
    or a traced one (``lax.cond``: one program for every round of an MJX segment).
    """
    data_parallel = layout.mode == "data"

    def init_member(key: jax.Array, hparams, encoder_std: jax.Array) -> LearnerState:
        key_agent, key_update = jax.random.split(key)
        # The actor from the first half of the algorithm's key (its init takes the second).
        actor_params = networks.init_actor(
            jax.random.split(key_agent)[0], spec.obs_dim, encoder_std
        )
        shards = layout.devices if data_parallel else 0
        return LearnerState(
            agent=algorithm.init(key_agent, actor_params, spec.obs_dim, hparams),
            buffer=replay_init(cfg.replay_size, spec.obs_dim, spec.action_dim, shards),
            normalizer=normalizer_init(spec.obs_dim),
            key=key_update,
        )

    @jax.jit  # traced once for both branches of learn_round's cond (eval_shape, the call)
    def update(state: LearnerState):
        key, key_update = jax.random.split(state.key)
        if data_parallel:  # own batches per device; the state's key stays replicated
            key_update = jax.random.fold_in(key_update, jax.lax.axis_index(AXIS))

        def sample(k):
            return sample_normalized(
                state.buffer, state.normalizer, k, algorithm.batch_size, cfg.input_clip
            )

        agent, metrics = algorithm.update(state.agent, sample, key_update)
        return (agent, key), metrics

    def learn_round(state: LearnerState, chunk: Transition, do_update):
        # The normalizer is replicated: every device folds in every device's observations.
        obs = jax.lax.all_gather(chunk.obs, AXIS, tiled=True) if data_parallel else chunk.obs
        if cfg.obs_normalization:
            state = state.replace(normalizer=normalizer_update(state.normalizer, obs))
        state = state.replace(buffer=replay_add(state.buffer, chunk))
        if do_update is False:
            return state, None
        if do_update is True:
            (agent, key), metrics = update(state)
        else:  # the replay buffer is an operand of both branches only, never copied

            def skip(state):
                _, metrics = jax.eval_shape(update, state)
                return (state.agent, state.key), jax.tree.map(jnp.zeros_like, metrics)

            (agent, key), metrics = jax.lax.cond(do_update, update, skip, state)
        return state.replace(agent=agent, key=key), metrics

    return init_member, learn_round


def make_learner(cfg: TrainConfig, spec: EnvSpec, layout: Layout) -> Learner:
    """Builds the population's compiled pieces for ``cfg``'s networks and schedule on
    ``layout``; what members may differ in comes in through ``init`` (keys, the
    algorithm's traced settings, the encoder's initial width)."""
    networks = make_networks(
        spec.action_dim, spec.action_limit, cfg.actor, cfg.critic, cfg.actor_kind
    )
    algorithm = make_algorithm(networks, cfg, axis_name=layout.axis_name)
    init_member, learn_round = make_member_round(cfg, spec, layout, algorithm, networks)
    specs = learner_specs(layout, LearnerState)

    def on_devices(update: bool, out_specs):
        """The round over this device's members, its buffer shard seen as a plain buffer
        (data mode), under ``shard_map`` on a mesh."""
        batched = over_members(lambda s, c: learn_round(s, c, update), layout.local_members)

        def body(state, chunk):
            if layout.mode == "data":
                state = state.replace(buffer=one_shard(state.buffer))
            state, metrics = batched(state, chunk)
            if layout.mode == "data":
                state = state.replace(buffer=as_shard(state.buffer))
            return (state, metrics) if update else state

        if layout.mesh is None:
            return body
        # check_vma=False: gradients of the replicated parameters stay per device (the
        # all-reduce is the algorithm's explicit pmean), rather than being summed implicitly.
        return jax.shard_map(
            body,
            mesh=layout.mesh,
            in_specs=(specs, layout.spec(0)),
            out_specs=out_specs,
            check_vma=False,
        )

    init_out = None
    if layout.mesh is not None:
        init_out = jax.tree.map(layout.sharding, specs, is_leaf=lambda x: isinstance(x, P))
    init = over_members(init_member, layout.members, loop=True)
    return Learner(
        layout=layout,
        policies=make_policies(networks.actor, cfg.input_clip, algorithm.explore),
        explorer=algorithm.explorer,
        metrics=algorithm.metrics,
        init=jax.jit(counted("init", init), out_shardings=init_out),
        learn=jax.jit(
            counted("learn", on_devices(True, (specs, layout.spec(None)))), donate_argnums=0
        ),
        ingest=jax.jit(counted("ingest", on_devices(False, specs)), donate_argnums=0),
        learn_round=learn_round,
    )
