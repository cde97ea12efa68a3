"""Runs in groups: runs that differ only in their seed (or in output, logging and evaluation
settings) form one group, labelled by what tells the groups apart (``plot``, sweep tables).
"""

from __future__ import annotations

from spikerl_jax.reporting.runs import RunRecord

NOT_GROUPING = {
    "seed",
    "out",
    "progress",
    "tensorboard",
    "energy",
    "energy_country",
    "energy_region",
    "pj_per_synop",
    "pj_per_mac",
    "eval_every",
    "eval_episodes",
    "checkpoint_every",
    "keep_checkpoints",
    "checkpoint_buffer",
    "log_every",
}


def flat_config(config: dict) -> dict:
    """A config.json's leaf settings by name, sections flattened (as the command line
    flattens them), lists as tuples. Read as written, so that runs of older versions (other
    sections, fewer fields) still group and plot."""
    flat = {}
    for name, value in config.items():
        if isinstance(value, dict):
            flat.update(flat_config(value))
        else:
            flat[name] = tuple(value) if isinstance(value, list) else value
    return flat


# The settings ``variant`` puts in words.
VARIANT_KEYS = {"actor_kind", "drive_penalty", "target_actor"}


def variant(config: dict) -> str:
    """A run's actor and learning rule in words: ``PopSAN``, ``MLP``, ``PopSAN, drive
    penalty 1, proxy target``."""
    flat = flat_config(config)
    words = ["MLP" if flat.get("actor_kind") == "mlp" else "PopSAN"]
    if flat.get("drive_penalty") and words[0] == "PopSAN":
        words.append(f"drive penalty {flat['drive_penalty']:g}")
    if flat.get("target_actor") == "proxy":
        words.append("proxy target")
    return ", ".join(words)


def group_runs(runs: list[RunRecord]) -> dict[str, list[RunRecord]]:
    """Groups runs by their learning-relevant config; labels name what tells groups apart.

    A label is ``key=value`` for each setting that differs between groups (the env first
    where the tasks differ), or the group's variant where nothing does.
    """
    keys = [{k: v for k, v in flat_config(r.config).items() if k not in NOT_GROUPING} for r in runs]
    distinct: list[dict] = []
    for key in keys:
        if key not in distinct:
            distinct.append(key)
    varying = sorted(
        {k for d in distinct for k in d if any(d.get(k) != o.get(k) for o in distinct)} - {"env"}
    )
    envs = {key["env"] for key in keys}
    groups: dict[str, list[RunRecord]] = {}
    for key, run in zip(keys, runs, strict=True):
        parts = [key["env"]] if len(envs) > 1 else []
        if not varying or set(varying) & VARIANT_KEYS:
            parts.append(variant(run.config))
        parts += [f"{k}={key.get(k)}" for k in varying if k not in VARIANT_KEYS]
        groups.setdefault(" ".join(parts), []).append(run)
    return groups
