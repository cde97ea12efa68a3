"""The running observation normalizer against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np

from spikerl_jax.rl.normalizer import normalize, normalizer_init, normalizer_update


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
