"""``train``: TD3 for a spiking (or ANN) actor, the whole algorithm on one screen.

    from spikerl_jax.config import preset_for
    from spikerl_jax.training.trainer import train
    summary = train(preset_for("InvertedPendulum-v4"))

The details live one module down: ``Session`` (set-up, restore, records, checkpoints, energy),
the backends (``host_loop``: Gymnasium; ``device_loop``: MJX) and ``make_learner`` (the
compiled TD3 rounds).
"""

from __future__ import annotations

from spikerl_jax.config import TrainConfig
from spikerl_jax.reporting.runlog import read_run
from spikerl_jax.reporting.sweep import sweep_rows, write_sweep_summary
from spikerl_jax.training.session import Session
from spikerl_jax.training.signals import Interrupted
from spikerl_jax.training.sweep import SweepSpec, save_spec, setting_label


def train(cfg: TrainConfig, resume: bool = False, console=None) -> dict:
    """Trains one run; returns its summary (also written to ``RUN_DIR/summary.json``).

    Writes ``config.json``, ``metrics.csv``, ``emissions.csv``, ``summary.json``,
    ``tensorboard/`` and ``checkpoints/`` into ``cfg.run_dir()``. With ``resume``, continues
    that directory's run from its latest checkpoint: with the buffer checkpointed
    (``checkpoint_buffer``) the result is identical to an uninterrupted run; without it, the
    buffer restarts empty and updates pause until it holds ``update_after`` transitions again.

    Raises:
      ConfigError: a bad configuration value (validated before anything is written), or a
        missing, corrupted or mismatched checkpoint.
      TrainingError: the losses became non-finite (the last good checkpoint stays).
      Interrupted: SIGINT or SIGTERM; a checkpoint of the last finished round was saved first.
    """
    return train_population([cfg], resume=resume, console=console)[0]


def train_population(configs: list[TrainConfig], resume: bool = False, console=None) -> list:
    """Trains the members ``configs`` (same networks and schedule; seeds and shape-keeping
    settings may differ) in one set of compiled programs; returns their summaries."""
    return train_members(configs, resume, console)[0]


def train_members(configs: list[TrainConfig], resume: bool = False, console=None):
    """The algorithm: init, then per stretch of rounds collect and learn, evaluate, record,
    checkpoint. Returns the members' summaries and the final ``RunState`` (member axis
    first)."""
    session = Session(configs, resume, console)  # validate, build, restore, open the records
    state, loop = session.state, session.loop
    with session:
        while loop.step < session.cfg.total_steps:
            target = session.next_stop(loop.step)
            # Collect and learn: env steps, replay inserts and update rounds up to `target`.
            before = loop.step
            state, loop, stats = session.backend.advance(state, loop, target, session.stop)
            session.account(before, loop, stats)  # progress; non-finite losses stop here
            improved, solved = [], False
            if session.eval_due(loop.step):
                results = session.evaluate(state, loop.step)  # deterministic episodes
                loop, improved = session.record(loop, results)  # metrics.csv, TensorBoard
                solved = session.reached_target(loop)  # --target-return: stop here
            if session.checkpoint_due(loop.step) or improved or solved or session.stop.requested:
                session.checkpoint(state, loop, best=improved)
            if session.stop.requested:
                raise session.interrupted(loop.step)
            if solved:
                break
        return session.finish(state, loop), state


def train_sweep(spec: SweepSpec, resume: bool = False, console=None) -> list[dict]:
    """Trains a sweep's members as one population and writes its summary into the root.

    Returns:
      The ranked rows of ``sweep.json`` (per setting: mean and std over seeds).
    """
    spec.validate()
    if not resume:
        save_spec(spec)
    configs = spec.members()
    try:
        train_population(configs, resume=resume, console=console)
    except Interrupted as e:  # a sweep continues from its root, not from its members' dirs
        raise e.resumed_with(f"spikerl-jax sweep --resume {spec.root}") from None
    seeds = len(spec.seeds)
    groups = {setting_label(setting): [read_run(c.run_dir())
                                       for c in configs[i * seeds : (i + 1) * seeds]]
              for i, setting in enumerate(spec.settings())}  # fmt: skip
    write_sweep_summary(spec.root, groups)
    return sweep_rows(groups)
