"""The on-device replay ring buffer of raw transitions.

Hand-written rather than flashbax: TD3 needs flat ``(obs, action, reward, next_obs,
terminated)`` items with uniform sampling, which is a fixed-size array and a scatter; flashbax's
flat buffer derives ``next_obs`` from the following timestep (so an auto-reset episode boundary
needs extra care), and later the buffer must be sharded per device under ``shard_map``, which is
simplest with arrays we lay out ourselves.

Shapes: ``C`` capacity, ``N`` transitions added at once, ``B`` batch, ``D`` obs dims,
``A`` action dims.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from spikerl_jax.rl.normalizer import Normalizer, normalize


@flax.struct.dataclass
class Transition:
    """A batch of transitions; every field has a leading batch axis."""

    obs: jax.Array  # (N, D)
    action: jax.Array  # (N, A)
    reward: jax.Array  # (N,)
    next_obs: jax.Array  # (N, D)
    terminated: jax.Array  # (N,) 1.0 where the episode ended in a terminal state (no bootstrap)


def random_transitions(
    key: jax.Array, n: int, obs_dim: int, action_dim: int, action_limit: float = 1.0
) -> Transition:
    """``n`` synthetic non-terminal transitions (normal observations and rewards, uniform
    actions): data for benchmarks and tests of the update, not for learning."""
    key_obs, key_next, key_action, key_reward = jax.random.split(key, 4)
    return Transition(
        obs=jax.random.normal(key_obs, (n, obs_dim)),
        action=jax.random.uniform(
            key_action, (n, action_dim), minval=-action_limit, maxval=action_limit
        ),
        reward=jax.random.normal(key_reward, (n,)),
        next_obs=jax.random.normal(key_next, (n, obs_dim)),
        terminated=jnp.zeros(n),
    )


@flax.struct.dataclass
class ReplayBuffer:
    """A ring buffer of raw (unnormalized) transitions of fixed capacity ``C``."""

    data: Transition  # every field (C, ...)
    insert_pos: jax.Array  # int32 scalar: where the next transition goes
    size: jax.Array  # int32 scalar: valid transitions, at most C

    @property
    def capacity(self) -> int:
        return self.data.reward.shape[0]


def replay_init(capacity: int, obs_dim: int, action_dim: int, shards: int = 0) -> ReplayBuffer:
    """An empty buffer of ``capacity`` transitions; with ``shards``, rows for that many
    devices (data parallelism), each shard with its own insert position and size
    (``(shards,)``, split with the rows under ``shard_map``: ``one_shard`` inside)."""
    zeros = jnp.zeros
    data = Transition(
        obs=zeros((capacity, obs_dim)),
        action=zeros((capacity, action_dim)),
        reward=zeros((capacity,)),
        next_obs=zeros((capacity, obs_dim)),
        terminated=zeros((capacity,)),
    )
    position = jnp.zeros((shards,), jnp.int32) if shards else jnp.int32(0)
    return ReplayBuffer(data, position, position)


def one_shard(buffer: ReplayBuffer) -> ReplayBuffer:
    """Inside ``shard_map``: this device's shard of a sharded buffer as an ordinary one."""
    return buffer.replace(insert_pos=buffer.insert_pos[..., 0], size=buffer.size[..., 0])


def as_shard(buffer: ReplayBuffer) -> ReplayBuffer:
    """The inverse of ``one_shard``."""
    return buffer.replace(insert_pos=buffer.insert_pos[..., None], size=buffer.size[..., None])


def replay_add(buffer: ReplayBuffer, batch: Transition) -> ReplayBuffer:
    """Writes ``N`` transitions at the insert position, wrapping around (``N <= C``)."""
    n = batch.reward.shape[0]
    idx = (buffer.insert_pos + jnp.arange(n)) % buffer.capacity
    data = jax.tree.map(lambda store, new: store.at[idx].set(new), buffer.data, batch)
    return ReplayBuffer(
        data=data,
        insert_pos=(buffer.insert_pos + n) % buffer.capacity,
        size=jnp.minimum(buffer.size + n, buffer.capacity),
    )


def replay_sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Transition:
    """``batch_size`` transitions drawn uniformly, with replacement, from the valid ones."""
    idx = jax.random.randint(key, (batch_size,), 0, buffer.size)
    return jax.tree.map(lambda store: store[idx], buffer.data)


def sample_normalized(
    buffer: ReplayBuffer, norm: Normalizer, key: jax.Array, batch_size: int, clip: float
) -> Transition:
    """A uniform batch whose observations are normalized with the current statistics."""
    batch = replay_sample(buffer, key, batch_size)
    return batch.replace(
        obs=normalize(norm, batch.obs, clip), next_obs=normalize(norm, batch.next_obs, clip)
    )
