"""What a run will hold in memory, estimated from its config before anything is allocated:
the networks' parameters (with their targets, Adam's moments and gradients), the replay
buffers, the spiking actor's activations over its timesteps, a round's bookkeeping and the
Gymnasium envs; and the one check of it against the memory there is (``check_fits``).

An estimate, meant to refuse sizes that cannot fit (16 TB of weights, a 10^11-transition
buffer) with the option to lower, not to predict XLA's peak to the byte: it leaves 10% of
the free memory as margin."""

from __future__ import annotations

import dataclasses
import itertools
from typing import NamedTuple

from spikerl_jax.config.algorithms import ALGOS
from spikerl_jax.config.base import ConfigError, flag
from spikerl_jax.config.train import TrainConfig
from spikerl_jax.envs.registry import EnvSpec

FLOAT = 4  # bytes; bf16 policies are counted as float32 (an upper bound)
# Copies of each network's parameters held at once: the parameters, their target (or the
# best policy's copy), Adam's two moments, the gradient and a host copy for checkpoints.
COPIES = 6
# Floats each spiking neuron keeps per timestep and batch row for the backward pass (its
# drive, current, voltage and spike), and the same for a dense layer's units.
ACTIVATION_FLOATS = 4
KEY_BYTES = 8  # a PRNG key per scanned step
METRIC_BYTES = 16 * FLOAT  # a block's stacked metrics (losses, Q, proxy), generously
# Host memory per Gymnasium env (MuJoCo's data and the env around it; Ant's MjData alone
# pickles to 0.7 MB).
ENV_BYTES = 2 * 2**20
# Of the free memory, what a run may plan to use (the rest: XLA's workspace, fragmentation).
USABLE = 0.9


class Need(NamedTuple):
    """One thing a run holds: what it is, its bytes (all members), and where it lives."""

    what: str
    bytes: int
    host: bool = False  # in host memory whatever the training device (Gymnasium's envs)


def _dense_params(sizes) -> int:
    return sum((a + 1) * b for a, b in itertools.pairwise(sizes))


def run_needs(cfg: TrainConfig, spec: EnvSpec, members: int = 1) -> list[Need]:
    """What ``members`` runs of ``cfg`` on task ``spec`` hold at once, item by item."""
    d, a, actor, td3 = spec.obs_dim, spec.action_dim, cfg.actor, cfg.td3
    if cfg.actor_kind == "popsan":
        layers = (d * actor.pop_in, *actor.hidden_sizes, a * actor.pop_out)
        # Receptive fields (a mean and a width per encoder neuron), the LIF layers and the
        # decoder (a weight per output neuron and a bias per action).
        actor_params = 2 * d * actor.pop_in + _dense_params(layers) + a * actor.pop_out + a
        steps = actor.timesteps
    else:
        layers, steps = (d, *actor.hidden_sizes, a), 1
        actor_params = _dense_params(layers)
    critic_layers = (d + a, *cfg.critic.critic_hidden_sizes, 1)
    proxy = td3.target_actor == "proxy"
    proxy_layers = (d, *td3.proxy_hidden_sizes, a) if proxy else ()
    # The largest batch one actor call sees: a gradient step's, the acting envs' or the
    # evaluation episodes'.
    rows = max(td3.batch_size, cfg.num_envs, cfg.eval_episodes)
    floats = d * 2 + a + 2  # a transition: obs, next_obs, action, reward, done
    delay = ALGOS[cfg.algo].policy_delay(cfg)
    blocks = cfg.updates_per_round // delay
    each = f" x {members} members" if members > 1 else ""
    needs = [
        Need(
            f"the actor's parameters ({actor_params} x {COPIES} copies{each})",
            actor_params * COPIES * FLOAT,
        ),
        Need(
            f"the critics' parameters (2 x {_dense_params(critic_layers)} x {COPIES} copies{each})",
            2 * _dense_params(critic_layers) * COPIES * FLOAT,
        ),
        Need(
            f"the actor's activations ({rows} rows x {steps} timesteps x {sum(layers)} "
            f"neurons{each})",
            rows * steps * sum(layers) * ACTIVATION_FLOATS * FLOAT,
        ),
        Need(
            f"the critics' activations ({td3.batch_size} rows{each})",
            2 * td3.batch_size * sum(critic_layers) * ACTIVATION_FLOATS * FLOAT,
        ),
        Need(
            f"the replay buffers ({cfg.replay_size} transitions x {floats} floats{each})",
            cfg.replay_size * floats * FLOAT,
        ),
        Need(
            f"a round's transitions ({cfg.update_every} x {floats} floats{each})",
            cfg.update_every * floats * FLOAT,
        ),
        Need(
            f"a round's update steps ({blocks} blocks of {delay} critic steps, "
            f"{td3.batch_size} observations kept per step{each})",
            blocks * (KEY_BYTES + METRIC_BYTES)
            + delay * (KEY_BYTES + METRIC_BYTES + td3.batch_size * d * FLOAT),
        ),
    ]
    if proxy:
        params = _dense_params(proxy_layers)
        needs += [
            Need(
                f"the proxy's parameters ({params} x {COPIES} copies{each})",
                params * COPIES * FLOAT,
            ),
            Need(
                f"the proxy's activations and steps ({td3.batch_size} rows, "
                f"{td3.proxy_steps} steps{each})",
                td3.batch_size * sum(proxy_layers) * ACTIVATION_FLOATS * FLOAT
                + td3.proxy_steps * (KEY_BYTES + FLOAT),
            ),
        ]
    if cfg.backend == "gymnasium":
        needs += [
            Need(f"{cfg.num_envs} training envs{each}", cfg.num_envs * ENV_BYTES, host=True),
            Need(f"{cfg.eval_episodes} evaluation envs{each}", cfg.eval_episodes * ENV_BYTES, True),
        ]
    return [need._replace(bytes=need.bytes * members) for need in needs]


# What each option lowers (its default is the size it is compared with), in the order an
# equal saving names them.
SIZES = (
    "replay_size",
    "hidden_sizes",
    "critic_hidden_sizes",
    "proxy_hidden_sizes",
    "pop_in",
    "pop_out",
    "timesteps",
    "batch_size",
    "num_envs",
    "eval_episodes",
    "update_every",
    "updates_per_round",
    "policy_delay",
    "proxy_steps",
)


def _with_default(cfg: TrainConfig, name: str) -> TrainConfig | None:
    """``cfg`` with option ``name`` at its default, or None where that is not smaller."""
    for section in ("", "actor", "critic", "td3"):
        owner = getattr(cfg, section) if section else cfg
        field = {f.name: f for f in dataclasses.fields(owner)}.get(name)
        if field is None:
            continue
        value, default = getattr(owner, name), field.default
        if isinstance(value, tuple):  # layer widths: compared by their sum
            if sum(value) <= sum(default):
                return None
        elif value <= default:
            return None
        changed = dataclasses.replace(owner, **{name: default})
        return dataclasses.replace(cfg, **{section: changed}) if section else changed
    return None


def option_to_lower(cfg: TrainConfig, spec: EnvSpec, members: int, host: bool | None) -> str:
    """The option whose default would save the most of the memory ``check_fits`` counts
    (``host``: True, only the host's items; False, only the device's; None, all)."""

    def total(c: TrainConfig, m: int) -> int:
        return sum(n.bytes for n in run_needs(c, spec, m) if host is None or n.host == host)

    base, best, saved = total(cfg, members), None, 0
    for name in SIZES:
        smaller = _with_default(cfg, name)
        if smaller is not None and base - total(smaller, members) > saved:
            best, saved = flag(name), base - total(smaller, members)
    if members > 1 and base - total(cfg, 1) > saved:
        return "the number of members (fewer --seeds or settings)"
    return best or "the sizes"


def check_fits(
    cfg: TrainConfig, spec: EnvSpec, members: int, free: int | None, place: str, host=None
) -> None:
    """Raises ``ConfigError`` when what ``members`` runs of ``cfg`` hold (``host``: as
    ``option_to_lower``) is above ``USABLE`` of ``free`` bytes (None: not known, no check),
    naming the largest item and the option to lower."""
    needs = [n for n in run_needs(cfg, spec, members) if host is None or n.host == host]
    need = sum(n.bytes for n in needs)
    if free is None or need <= USABLE * free:
        return
    largest = max(needs, key=lambda n: n.bytes)
    raise ConfigError(
        f"{'this run needs' if members == 1 else f'these {members} runs need'} "
        f"{_gib(need)} of memory but {place} has {_gib(free)} free; "
        f"the most is {largest.what}: {_gib(largest.bytes)}; lower "
        f"{option_to_lower(cfg, spec, members, host)}"
    )


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"
