"""Per-task defaults: the paper's schedule, changed only where a task needs it."""

from __future__ import annotations

import dataclasses

from spikerl_jax.arguments import expect
from spikerl_jax.config.sections import PopSANConfig, SACConfig, TD3Config
from spikerl_jax.config.train import TrainConfig

# Changes to the paper's defaults per task family (keyed by the id before "-v").
PRESETS: dict[str, dict] = {
    # A 20k-step budget instead of 1M: a 1k random phase (the paper's 10k would be half of
    # it) and a 3x larger actor learning rate, the one of 1e-4, 3e-4 and 1e-3 that held the
    # maximum over the last evaluations (BENCHMARKS.md, "InvertedPendulum preset").
    "InvertedPendulum": dict(
        total_steps=20_000,
        start_steps=1_000,
        eval_every=5_000,
        td3=TD3Config(actor_lr=3e-4),
    ),
    "InvertedDoublePendulum": dict(total_steps=100_000, start_steps=1_000, eval_every=5_000),
    "Reacher": dict(total_steps=200_000, start_steps=1_000),
}
PAPER_STEPS = 1_000_000  # the paper's locomotion budget
LOCOMOTION = ("Hopper", "HalfCheetah", "Walker2d", "Ant", "Humanoid", "Swimmer")
# Any other task (Pendulum-v1, Pusher-v5, a user's env): a budget of 100k steps, a 5k random
# phase and an evaluation every 5k steps, TD3 as the paper's. A starting point, not tuned.
GENERIC = dict(total_steps=100_000, start_steps=5_000, eval_every=5_000)
# PopSAN on locomotion: the drive penalty, at least as good as the paper's settings on all four
# tasks of docs/learning.md (and better on Hopper, Walker2d and Ant).
LOCOMOTION_DRIVE_PENALTY = 1.0


# SAC as PopSAN's code runs it (popsan_sac/sac_cuda_norm.py): TD3's learning rates, batch,
# discount and Polyak, one policy step after every critic step, a fixed alpha of 0.2.
POPSAN_SAC = dict(td3=dict(policy_delay=1), sac=SACConfig(alpha=0.2))
# The ANN SAC baseline as CleanRL's sac_continuous_action.py: batch 256, policy lr 3e-4, Q lr
# 1e-3, two policy steps after every two critic steps, alpha learned from 1 (log alpha 0)
# towards -action dims; on locomotion tasks its 5k learning starts (random actions, then
# updates) instead of the paper's 10k random steps.
CLEANRL_SAC = dict(
    td3=dict(batch_size=256, actor_lr=3e-4, critic_lr=1e-3, policy_delay=2),
    sac=SACConfig(alpha=1.0, learn_alpha=True),
)
CLEANRL_SAC_LOCOMOTION = dict(start_steps=5_000, update_after=5_000)


def preset_for(
    env: str, actor_kind: str = "popsan", paper: bool = False, algo: str = "td3"
) -> TrainConfig:
    """The default config of ``env`` for ``actor_kind`` and ``algo``: the paper's schedule for
    its locomotion tasks (and, for PopSAN, the drive penalty, unless ``paper``), tuned
    changes for the others of ``PRESETS``, ``GENERIC`` for any other task; SAC's learning
    rule PopSAN's (``POPSAN_SAC``), or CleanRL's for the MLP actor without ``paper``
    (``CLEANRL_SAC``).

    Args:
      env: a Gymnasium id (unversioned: its newest version).
      actor_kind: ``popsan`` or ``mlp``.
      paper: the published settings of PopSAN and SpikeRL (no drive penalty), for comparisons
        like for like.
      algo: ``td3``, ``ddpg`` or ``sac``.
    """
    expect("preset_for(env)", env, str, 'a Gymnasium id, e.g. "Hopper-v4"')
    base = TrainConfig(env=env, actor_kind=actor_kind, algo=algo)  # resolves an unversioned id
    family = base.env.rpartition(":")[2].split("-v")[0]
    if family not in LOCOMOTION:
        base = dataclasses.replace(base, **PRESETS.get(family, GENERIC))
    else:
        if actor_kind == "popsan" and not paper:
            drive = PopSANConfig(drive_penalty=LOCOMOTION_DRIVE_PENALTY)
            base = dataclasses.replace(base, actor=drive)
        base = dataclasses.replace(base, total_steps=PAPER_STEPS)
    if algo != "sac":
        return base
    cleanrl = actor_kind == "mlp" and not paper
    changes = dict(CLEANRL_SAC if cleanrl else POPSAN_SAC)
    if cleanrl and family in LOCOMOTION:
        changes.update(CLEANRL_SAC_LOCOMOTION)
    rule = dataclasses.replace(base.td3, **changes.pop("td3"))
    return dataclasses.replace(base, td3=rule, **changes)
