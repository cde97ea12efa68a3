"""``make_learner``: the compiled pieces of a run, over a leading member axis.

Every function here takes and returns member-batched pytrees (leading axis ``M``; ``M = 1``
for a single run). A member's computation is written once, for one member (``init_member``,
``ingest_member``, ``learn_member``), and batched over the members by ``over_members``:
``jax.vmap`` for several members, a plain call on the squeezed axis for one (so a single run
runs exactly the unbatched program). The layout (``spikerl_jax.training.parallel.Layout``)
then places the batch on the devices with ``shard_map``: whole members per device, or each
member's data split across devices with gradients averaged.
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
from spikerl_jax.rl.td3 import HParams, TD3State, hparam_values, make_td3
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


def over_members(fn: Callable, count: int, in_axes=0) -> Callable:
    """``fn`` (of one member) applied to ``count`` members stacked on a leading axis.

    Args:
      fn: a function of one member's pytrees.
      count: members per call.
      in_axes: as ``jax.vmap``'s (0: the argument is member-batched; None: shared).
    """
    if count > 1:
        return jax.vmap(fn, in_axes=in_axes)

    def one(*args):
        axes = in_axes if isinstance(in_axes, tuple | list) else (in_axes,) * len(args)
        args = [jax.tree.map(lambda x: x[0], a) if ax == 0 else a
                for a, ax in zip(args, axes, strict=True)]  # fmt: skip
        return jax.tree.map(lambda x: x[None], fn(*args))

    return one


def map_members(fn: Callable, count: int) -> Callable:
    """``over_members`` for programs that run once (initialisation): a loop over the members
    (``lax.map``), so that compiling takes as long as for one member (vmapping P = 4 members'
    initialisation tripled it: random initialisers compile slowly batched)."""
    if count > 1:
        return lambda *args: jax.lax.map(lambda member_args: fn(*member_args), args)
    return over_members(fn, count)


class Learner(NamedTuple):
    """The compiled functions of a run (member-batched); the loops call only these.

    Attributes:
      layout: where the members and their data live.
      policies: one member's policies (``spikerl_jax.rl.policy``), unbatched.
      init: ``(keys (M,), hparams (M,)) -> LearnerState``.
      ingest: ``(state, chunk) -> state``: replay insert and normalizer update of a round's
        transitions ``(M, rows, ...)``.
      learn: ``(state, chunk) -> (state, metrics (M,))``: ingest, then the round's updates.
      acting_view: the arguments of acting (a pytree of member-batched device arrays, e.g.
        the actor's parameters, normalizer, noise and keys) as the acting functions take
        them, on the acting device (``acting_device``); call it once per round, not per
        step.
      act, act_with_spikes: ``(actor_params, normalizer, obs (M, B, D), keys)`` in the
        acting view; numpy ``(M, B, A)`` actions (and ``{layer: (M, B)}`` spike counts).
      explore: ``(actor_params, normalizer, obs (M, B, D), keys, step, noise)`` likewise.
      ingest_member, update_member, explore_member: one member's ingest, round of updates
        (``state -> (state, metrics)``, with the data-parallel collectives, on the device's
        buffer shard) and explore (with the noise resolved as ``make_learner`` says), for
        programs that compose them.
    """

    layout: Layout
    policies: Policies
    init: Callable
    ingest: Callable
    learn: Callable
    acting_view: Callable
    act: Callable
    act_with_spikes: Callable
    explore: Callable
    ingest_member: Callable
    update_member: Callable
    explore_member: Callable


def make_learner(
    cfg: TrainConfig, spec: EnvSpec, layout: Layout, varying: frozenset[str] = frozenset()
) -> Learner:
    """Builds the run's compiled pieces for ``cfg``'s networks and schedule on ``layout``.

    Member-specific settings come in as ``init``'s keys and hyperparameters (``HParams``);
    ``varying`` names the hyperparameters that differ between members: those are read from
    the state, every other one is compiled in as a constant (``cfg``'s value).
    """
    data_parallel = layout.mode == "data"
    networks = make_networks(spec.action_dim, spec.action_limit, cfg.actor, cfg.critic,
                             cfg.actor_kind)  # fmt: skip
    constants = {k: v for k, v in hparam_values(cfg).items() if k not in varying}
    td3 = make_td3(networks, cfg.td3, axis_name=layout.axis_name, constants=constants)
    policies = make_policies(networks.actor, cfg.obs_clip)
    num_blocks = cfg.updates_per_round // cfg.td3.policy_delay
    local = layout.local_members

    def init_member(key: jax.Array, hparams: HParams) -> LearnerState:
        key_td3, key_update = jax.random.split(key)
        td3_state = td3.init(key_td3, spec.obs_dim, hparams)
        if "encoder_std" in varying and cfg.actor_kind == "popsan":
            td3_state = with_encoder_std(td3_state, hparams.encoder_std)
        return LearnerState(
            td3=td3_state,
            buffer=replay_init_for(layout, cfg.replay_size, spec.obs_dim, spec.action_dim),
            normalizer=normalizer_init(spec.obs_dim),
            key=key_update,
        )

    def ingest_member(state: LearnerState, chunk: Transition) -> LearnerState:
        # The normalizer is replicated: every device folds in every device's observations.
        obs = jax.lax.all_gather(chunk.obs, AXIS, tiled=True) if data_parallel else chunk.obs
        return state.replace(
            buffer=replay_add(state.buffer, chunk),
            normalizer=normalizer_update(state.normalizer, obs),
        )

    def update_member(state: LearnerState):
        key, key_update = jax.random.split(state.key)
        if data_parallel:  # own batches per device; the state's key stays replicated
            key_update = jax.random.fold_in(key_update, jax.lax.axis_index(AXIS))

        def sample(k):
            return sample_normalized(
                state.buffer, state.normalizer, k, cfg.td3.batch_size, cfg.obs_clip
            )

        td3_state, metrics = td3.update(state.td3, sample, key_update, num_blocks)
        return state.replace(td3=td3_state, key=key), metrics

    def learn_member(state: LearnerState, chunk: Transition):
        return update_member(ingest_member(state, chunk))

    def on_device(fn):
        """A member function batched over this device's members, its buffer shard seen as a
        plain buffer (data mode)."""
        batched = over_members(fn, local)
        if not data_parallel:
            return batched

        def body(state, chunk):
            out = batched(state.replace(buffer=local_buffer(state.buffer)), chunk)
            new = out[0] if isinstance(out, tuple) else out
            new = new.replace(buffer=global_buffer(new.buffer))
            return (new, out[1]) if isinstance(out, tuple) else new

        return body

    ingest, learn = on_device(ingest_member), on_device(learn_member)
    specs = learner_specs(layout, LearnerState)
    chunk_spec = layout.spec(0)
    if layout.mesh is not None:
        # check_vma=False: gradients of the replicated parameters stay per device (the
        # all-reduce is TD3's explicit pmean), rather than being summed implicitly.
        ingest = jax.shard_map(ingest, mesh=layout.mesh, in_specs=(specs, chunk_spec),
                               out_specs=specs, check_vma=False)  # fmt: skip
        learn = jax.shard_map(learn, mesh=layout.mesh, in_specs=(specs, chunk_spec),
                              out_specs=(specs, layout.spec(None)), check_vma=False)  # fmt: skip

    init_out = None
    if layout.mesh is not None:
        init_out = jax.tree.map(layout.sharding, specs, is_leaf=lambda x: isinstance(x, P))
    members = layout.members
    init = map_members(init_member, members)

    def explore(actor_params, normalizer, obs_BD, key, step, noise_std):
        noise_std = constants.get("exploration_noise", noise_std)
        return policies.explore(actor_params, normalizer, obs_BD, key, step, noise_std)

    return Learner(
        layout=layout,
        policies=policies,
        init=jax.jit(counted("init", init), out_shardings=init_out),
        ingest=jax.jit(counted("ingest", ingest), donate_argnums=0),
        learn=jax.jit(counted("learn", learn), donate_argnums=0),
        acting_view=functools.partial(acting_view, layout, acting_device(cfg, layout)),
        act=acting(policies.act, "act", members),
        act_with_spikes=acting(policies.act_with_spikes, "act_with_spikes", members),
        explore=acting(explore, "explore", members, in_axes=(0, 0, 0, 0, None, 0)),
        ingest_member=ingest_member,
        update_member=update_member,
        explore_member=explore,
    )


def with_encoder_std(state: TD3State, std: jax.Array) -> TD3State:
    """The state with PopSAN's (and its target's) initial receptive-field widths set to the
    traced ``std`` (the module's own initializer only knows its config's constant)."""

    def widen(params):
        encoder = params["params"]["encoder"]
        encoder = {**encoder, "std": jnp.full_like(encoder["std"], std)}
        return {"params": {**params["params"], "encoder": encoder}}

    return state.replace(actor_params=widen(state.actor_params),
                         target_actor_params=widen(state.target_actor_params))  # fmt: skip


# --act-device auto acts on the host CPU up to this many observations per actor call. One
# exploring call of a batch-100-sized actor took 437 µs on an H100 against 97 µs on a CPU
# (issue 14's measurement, batch 1): dispatch, not arithmetic, bounds small batches.
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
        # a batch-1 actor call costs less there than split across the cores (4 members
        # acting split: 1,164 env steps/s, on one device 1,583; BENCHMARKS.md, "Populations").
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
    inputs that are equal on every process), for a single member without its member axis,
    and copied to ``device`` (the acting functions then run there) unless it is ``None``."""
    if layout.mode == "data":
        tree = jax.tree.map(lambda x: x.addressable_data(0), tree)
    if layout.members == 1:
        tree = jax.tree.map(lambda x: x[0], tree)
    return tree if device is None else jax.device_put(tree, device)


def acting(fn: Callable, name: str, members: int, in_axes=0) -> Callable:
    """A policy function for host-side acting: member-batched numpy observations ``(M, B,
    D)`` in, numpy actions ``(M, B, A)`` (and device spike counts ``(M, B)``) out, the other
    arguments in the acting view (``acting_view``).

    A single member runs the unbatched program on its squeezed observations, the very
    program an unbatched call compiles: the member axis is added and removed on the host.
    """
    if members > 1:
        batched = jax.jit(counted(name, jax.vmap(fn, in_axes=in_axes)))

        def call_batched(*args):
            out = batched(*args)
            return (np.asarray(out[0]), out[1]) if isinstance(out, tuple) else np.asarray(out)

        return call_batched
    single = jax.jit(counted(name, fn))

    def call_single(params, normalizer, obs_MBD, *rest):
        out = single(params, normalizer, obs_MBD[0], *rest)
        if isinstance(out, tuple):
            return np.asarray(out[0])[None], jax.tree.map(lambda c: c[None], out[1])
        return np.asarray(out)[None]

    return call_single


def member_keys(seeds) -> dict[str, jax.Array]:
    """Each member's PRNG keys by purpose, from its seed: ``init`` (networks, update
    sampling), ``explore`` (exploration noise, random actions of MJX) and ``eval``."""
    keys = jax.numpy.stack([jax.random.split(jax.random.key(s), 3) for s in seeds])
    return {"init": keys[:, 0], "explore": keys[:, 1], "eval": keys[:, 2]}


def stack_hparams(hparams: list[HParams]) -> HParams:
    """Per-member hyperparameters stacked on a leading member axis."""
    return jax.tree.map(lambda *v: np.stack(v), *hparams)
