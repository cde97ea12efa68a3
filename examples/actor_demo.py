"""A PopSAN spiking actor on Hopper-sized inputs: actions and firing rates per layer.

python examples/actor_demo.py
"""

import jax
import jax.numpy as jnp

from spikerl_jax import PopSANConfig, make_networks

OBS_DIM, ACT_DIM = 11, 3  # Hopper


def main() -> None:
    config = PopSANConfig()  # the paper's: pop 10 in/out, hidden (256, 256), T = 5
    actor = make_networks(ACT_DIM, action_limit=1.0, actor_config=config).actor
    key_init, key_obs = jax.random.split(jax.random.key(0))
    params = actor.init(key_init, jnp.zeros((1, OBS_DIM)))
    obs = jax.random.normal(key_obs, (4, OBS_DIM))  # already-normalized observations

    act = jax.jit(lambda p, o: actor.apply(p, o, return_spike_counts=True))
    actions, counts = act(params, obs)
    print("actions (4 observations x 3 action dims):")
    print(actions)
    print(f"firing rate per layer (spikes per neuron per timestep, T = {config.timesteps}):")
    for layer, count in counts.items():
        print(
            f"  {layer:9s} {float(count.mean()) / config.timesteps:.3f}  ({count.shape[1]} neurons)"
        )


if __name__ == "__main__":
    main()
