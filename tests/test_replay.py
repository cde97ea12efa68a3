"""Replay ring buffer and observation normalizer against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np

from spikerl_jax.replay import (
    Transition,
    normalize,
    normalizer_init,
    normalizer_update,
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


def test_normalizer_matches_numpy_over_a_stream():
    rng = np.random.default_rng(0)
    stream = [
        rng.normal(5.0, 3.0, (n, 4)).astype(np.float32) * [1, 2, 0.5, 10]
        for n in (1, 7, 50, 50, 13)
    ]
    norm = normalizer_init(4)
    update = jax.jit(normalizer_update)
    for i, chunk in enumerate(stream):
        norm = update(norm, jnp.asarray(chunk))
        seen = np.concatenate(stream[: i + 1]).astype(np.float64)
        assert float(norm.count) == len(seen)
        np.testing.assert_allclose(np.asarray(norm.mean), seen.mean(0), rtol=1e-5)
        np.testing.assert_allclose(np.asarray(norm.var), seen.var(0), rtol=1e-4)


def test_normalize_clips_at_three_std():
    norm = normalizer_update(normalizer_init(2), jnp.array([[0.0, 10.0], [2.0, 30.0]]))
    # mean (1, 20), std (1, 10)
    out = normalize(norm, jnp.array([[2.0, 25.0], [100.0, -100.0]]))
    np.testing.assert_allclose(np.asarray(out), [[1.0, 0.5], [3.0, -3.0]], rtol=1e-5)


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
