"""Adam with a traced learning rate: the optimizer every learned network here uses."""

from __future__ import annotations

import jax
import optax

# optax.adam's moments (b1 0.9, b2 0.999, eps 1e-8); adam_step applies the learning rate, a
# traced value of the state rather than a constant of the compiled program.
ADAM = optax.scale_by_adam()


def adam_step(grads, opt_state, params, lr: jax.Array):
    """One Adam step of ``params`` (as ``optax.adam(lr)``: ``p - lr * m_hat / (sqrt(v_hat) +
    eps)``).

    Returns:
      The new parameters and optimizer state.
    """
    updates, opt_state = ADAM.update(grads, opt_state)
    updates = jax.tree.map(lambda u: -lr * u, updates)
    return optax.apply_updates(params, updates), opt_state
