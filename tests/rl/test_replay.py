"""The replay ring buffer against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np

from spikerl_jax.rl.normalizer import normalize, normalizer_init, normalizer_update
from spikerl_jax.rl.replay import (
    Transition,
    replay_add,
    replay_init,
    replay_sample,
    sample_normalized,
)


def make_batch(start, n, obs_dim=3, act_dim=2):
    ids = np.arange(start, start + n, dtype=np.float32)
    return Transition(
        obs=jnp.asarray(np.repeat(ids[:, None], obs_dim, 1)),
        action=jnp.asarray(np.repeat(-ids[:, None], act_dim, 1)),
        reward=jnp.asarray(ids * 10),
        next_obs=jnp.asarray(np.repeat(ids[:, None] + 0.5, obs_dim, 1)),
        terminated=jnp.asarray((ids % 3 == 0).astype(np.float32)),
    )


def test_buffer_wraps_around():
    add = jax.jit(replay_add)
    buf = replay_init(10, 3, 2)
    for start in (0, 4, 8):  # 12 transitions into 10 slots
        buf = add(buf, make_batch(start, 4))
    assert int(buf.size) == 10 and int(buf.insert_pos) == 2
    # Slots 0-1 were overwritten by transitions 10 and 11; slots 2-9 hold 2..9.
    np.testing.assert_array_equal(np.asarray(buf.data.obs[:, 0]), [10, 11, 2, 3, 4, 5, 6, 7, 8, 9])
    np.testing.assert_array_equal(np.asarray(buf.data.reward), np.asarray(buf.data.obs[:, 0]) * 10)
    np.testing.assert_array_equal(np.asarray(buf.data.next_obs - buf.data.obs), 0.5)


def test_sampling_covers_only_valid_range_uniformly():
    buf = replay_add(replay_init(100, 3, 2), make_batch(0, 30))
    batch = replay_sample(buf, jax.random.key(0), 30_000)
    ids = np.asarray(batch.obs[:, 0])
    assert ids.min() == 0 and ids.max() == 29  # never the 70 empty slots
    counts = np.bincount(ids.astype(int), minlength=30)
    # Uniform: each id ~ Binomial(30000, 1/30) = 1000 +- 31; 6 sigma bound.
    assert np.all(np.abs(counts - 1000) < 190)
    # Fields of one sampled transition stay together.
    np.testing.assert_array_equal(np.asarray(batch.reward), ids * 10)
    np.testing.assert_array_equal(np.asarray(batch.action[:, 0]), -ids)


def test_sample_normalized_normalizes_both_observations():
    data = make_batch(0, 20)
    buf = replay_add(replay_init(20, 3, 2), data)
    norm = normalizer_update(normalizer_init(3), data.obs)
    batch = sample_normalized(buf, norm, jax.random.key(1), 8, 3.0)
    raw = replay_sample(buf, jax.random.key(1), 8)
    np.testing.assert_allclose(
        np.asarray(batch.obs), np.asarray(normalize(norm, raw.obs)), rtol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(batch.next_obs), np.asarray(normalize(norm, raw.next_obs)), rtol=1e-6
    )
    np.testing.assert_array_equal(np.asarray(batch.action), np.asarray(raw.action))
