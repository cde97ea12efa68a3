"""``TrainConfig``: a training run's whole configuration, its validation (one validator for
the command line, the Python API and config.json) and its run directory."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import tyro

from spikerl_jax.config.algorithms import ALGOS
from spikerl_jax.config.base import (
    MAX_INT,
    MAX_UPDATES,
    PJ_PER_MAC,
    PJ_PER_SYNOP,
    ConfigError,
    _finite,
    differing_fields,
    flag,
    leaf_items,
    new_run_dir,
)
from spikerl_jax.config.sections import CriticConfig, PopSANConfig, SACConfig, TD3Config
from spikerl_jax.envs.registry import MJX_ENVS, UnknownEnv, check_known, resolve
from spikerl_jax.schema import SchemaError, from_jsonable, type_problems

# Solver iterations per MJX physics step at most: the solver may run them all at every step
# (2**31 - 1 of them kept a 2,000-step run from finishing its first round in 17 minutes).
MAX_SOLVER_ITERATIONS = 1_000


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run: environment, schedule, and the networks' and the algorithm's settings."""

    env: str = "InvertedPendulum-v4"
    """A Gymnasium task with Box observations and actions: a registered id (Hopper-v4,
    Pendulum-v1; unversioned: the newest version), or MODULE:ID for an env MODULE registers."""
    total_steps: int = 20_000
    """Environment steps in total (summed over parallel envs)."""
    target_return: float | None = None
    """Stop at the first evaluation at which every member's return reaches this (e.g. 950 on
    InvertedPendulum, whose maximum is 1000), with a checkpoint and the summary written as at
    the end; summary.json's target_reached_at gives the step. None: train --total-steps."""
    seed: int = 0
    """Seeds the networks, exploration, replay sampling and the environments."""
    out: str | None = None
    """Run directory for config.json, metrics.csv and summary.json (default runs/ENV-sSEED-TIME)."""
    backend: Literal["gymnasium", "mjx"] = "gymnasium"
    """Simulator: 'gymnasium' (native MuJoCo stepped from Python; the fastest on CPUs) or
    'mjx' (MJX on the accelerator: env steps, replay inserts and updates of a whole
    evaluation interval in one compiled call; for GPUs and thousands of --num-envs)."""
    num_envs: int = 1
    """Parallel environments stepping together (gymnasium.vector, or vmapped MJX envs)."""
    devices: int | None = None
    """Data-parallel devices per process (None: all local devices). Each device owns
    --num-envs / devices envs (mjx), a replay shard and --batch-size transitions of every
    update's batch (global batch = batch size x devices, as PyTorch DDP)."""
    act_device: Literal["auto", "cpu", "accelerator"] = "auto"
    """--backend gymnasium: where the host loop's actor runs. 'cpu': a host-CPU copy of the
    actor (its parameters copied once per round), so that stepping envs is not bound by
    accelerator dispatch; 'accelerator': the training device; 'auto': 'cpu' when training
    runs on an accelerator and an actor call holds at most 64 observations (members x
    envs), else the accelerator. Without an accelerator both are the CPU."""
    mjx_iterations: int | None = None
    """--backend mjx: constraint solver iterations (None: the task XML's); fewer are faster
    and drift from native MuJoCo's dynamics; at most 1000."""
    mjx_ls_iterations: int | None = None
    """--backend mjx: solver line-search iterations (None: the task XML's); at most 1000."""
    start_steps: int = 10_000
    """Uniform random actions for this many steps before the actor acts."""
    update_after: int = 1_000
    """No gradient updates before this many steps."""
    update_every: int = 50
    """Environment steps between update rounds (and between replay/normalizer inserts)."""
    updates_per_round: int = 50
    """Gradient updates per round (a multiple of the policy delay)."""
    exploration_noise: float = 0.1
    """Std of the Gaussian noise added to the actor's action while collecting, in action units
    (CleanRL's exploration_noise is relative to the action scale: the same where it is 1)."""
    replay_size: int = 1_000_000
    """Replay buffer capacity in transitions."""
    obs_clip: float = 3.0
    """Normalized observations are clipped to +-this."""
    obs_normalization: bool = True
    """Normalize observations by their running mean and variance, for the actor and the
    critics (PopSAN). Off: raw observations, unclipped, as in Fujimoto's TD3 and the
    proxy-target paper (whose actor squashes them: --encoder-input tanh)."""
    eval_every: int = 10_000
    """Steps between deterministic evaluations."""
    eval_episodes: int = 10
    """Episodes per evaluation."""
    log_every: int = 1_000
    """Steps between rows of train.csv (and TensorBoard's train/ scalars): the training
    episodes' returns and lengths, losses, Q, steps/s and updates/s since the last row."""
    checkpoint_every: int | None = None
    """Steps between checkpoints (None: at every evaluation)."""
    keep_checkpoints: int = 3
    """Latest checkpoints kept (the best one by evaluation return is kept besides)."""
    checkpoint_buffer: bool = False
    """Save the replay buffer in checkpoints too: resuming is then exact, at the cost of disk
    (obs_dim*2 + act_dim + 2 floats per transition)."""
    progress: bool = True
    """Show a progress bar."""
    tensorboard: bool = True
    """Write TensorBoard event files to RUN_DIR/tensorboard besides metrics.csv."""
    energy: bool = True
    """Measure energy and carbon per phase (training, evaluation) with codecarbon's offline
    tracker into summary.json and emissions.csv."""
    energy_country: str = "USA"
    """The electricity grid of the carbon figures: ISO 3166 alpha-3 code (USA, FRA, DEU, ...)."""
    energy_region: str | None = None
    """A region of the grid, for USA (a state, e.g. 'california') or CAN (a province)."""
    pj_per_synop: float = PJ_PER_SYNOP
    """Estimated picojoules per synaptic operation (a spike reaching a synapse) of the
    actor's neuromorphic energy estimate (default: 32-bit float add at 45 nm, Horowitz 2014)."""
    pj_per_mac: float = PJ_PER_MAC
    """Estimated picojoules per multiply-accumulate of the same-size ANN it is compared with
    (default: 32-bit float multiply + add at 45 nm, Horowitz 2014)."""
    actor_kind: Annotated[Literal["popsan", "mlp"], tyro.conf.arg(name="actor")] = "popsan"
    """The actor: 'popsan' (the spiking PopSAN) or 'mlp' (a deterministic ReLU MLP of the same
    hidden sizes with a tanh output: the ANN baseline, trained by the same TD3)."""
    algo: Literal["td3", "ddpg", "sac"] = "td3"
    """The learning algorithm: 'td3' (TD3 as PopSAN trains its actor), 'ddpg' (PopSAN's
    DDPG: one critic, no target smoothing or policy delay; the same learning rates, batch
    and noise) or 'sac' (PopSAN's SAC: the actor gives a tanh-Gaussian's mean, a ReLU
    network its log-std; twin critics, an entropy bonus --alpha)."""
    actor: PopSANConfig = PopSANConfig()
    critic: CriticConfig = CriticConfig()
    td3: TD3Config = TD3Config()
    sac: SACConfig = SACConfig()

    def __post_init__(self):
        # ISO 3166 codes are upper case; accept them in any case.
        if isinstance(self.energy_country, str):
            object.__setattr__(self, "energy_country", self.energy_country.upper())
        # An unversioned id is its newest version (recorded so in config.json).
        if isinstance(self.env, str):
            object.__setattr__(self, "env", resolve(self.env))

    def validate(self) -> None:
        """Raises ``ConfigError`` naming the first bad value and the fix; imports no
        simulator. The one check of a run's settings, whichever way they came: the command
        line, the Python API or a config.json read back."""
        problems = type_problems(self)
        if problems:  # e.g. total_steps=3000.0 or backend="torch" from Python
            raise ConfigError("; ".join(_with_flags(p) for p in problems))
        self._check_values()
        self.actor.validate()
        self.critic.validate()
        self.td3.validate()  # before the schedule, which divides by --policy-delay
        self.sac.validate()
        ALGOS[self.algo].check(self)
        self._check_schedule()
        if self.td3.batch_size > self.replay_size:
            raise ConfigError("--batch-size cannot exceed --replay-size")
        if self.actor.drive_penalty and self.actor_kind != "popsan":
            raise ConfigError(
                "--drive-penalty acts on PopSAN's output neurons; the MLP actor "
                "has none (drop it, or use --actor popsan)"
            )

    def _check_values(self) -> None:
        try:
            check_known(self.env)
        except UnknownEnv as e:
            raise ConfigError(str(e)) from None
        positive = (
            "total_steps",
            "num_envs",
            "update_every",
            "replay_size",
            "eval_every",
            "eval_episodes",
            "keep_checkpoints",
            "checkpoint_every",
            "log_every",
            "devices",
            "mjx_iterations",
            "mjx_ls_iterations",
        )
        for name in positive:
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{flag(name)} must be positive, got {value}")
        for name in ("start_steps", "update_after", "updates_per_round"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{flag(name)} must be >= 0, got {getattr(self, name)}")
        for name, value in leaf_items(self):
            counts = value if isinstance(value, tuple) else (value,)
            big = [v for v in counts if type(v) is int and v > MAX_INT]
            if big and name != "seed":  # a seed has its own range
                raise ConfigError(
                    f"{flag(name)} {big[0]} is above 2**31 - 1 ({MAX_INT}), the int32 limit "
                    f"of sizes and counts on the device; lower {flag(name)}"
                )
        for name in ("mjx_iterations", "mjx_ls_iterations"):
            value = getattr(self, name)
            if value is not None and value > MAX_SOLVER_ITERATIONS:
                raise ConfigError(
                    f"{flag(name)} {value} is above {MAX_SOLVER_ITERATIONS} (MuJoCo's "
                    "defaults: 100 iterations, 50 line-search ones): every physics step may "
                    f"run that many; lower {flag(name)}"
                )
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"--seed must lie in [0, 2**32), got {self.seed}")
        if self.out is not None and not self.out.strip():
            raise ConfigError("--out must name a directory (it is empty)")
        for name in ("pj_per_synop", "pj_per_mac", "obs_clip"):
            _finite(name, getattr(self, name), 0.0, low_open=True)
        _finite("exploration_noise", self.exploration_noise, 0.0)
        if self.target_return is not None:
            _finite("target_return", self.target_return)

    def _check_schedule(self) -> None:
        for what, value, unit in (
            ("--update-every", self.update_every, self.num_envs),
            ("--total-steps", self.total_steps, self.update_every),
        ):
            if value % unit:
                other = "--num-envs" if unit is self.num_envs else "--update-every"
                raise ConfigError(
                    f"{what} ({value}) must be a multiple of {other} ({unit}): "
                    "a run is whole rounds of whole vector steps"
                )
        delay = ALGOS[self.algo].policy_delay(self)
        if self.updates_per_round % delay:
            raise ConfigError(
                f"--updates-per-round ({self.updates_per_round}) must be a multiple of "
                f"--policy-delay ({delay})"
            )
        rounds = self.total_steps // self.update_every
        updates = self.updates_per_round * rounds
        if updates > MAX_UPDATES:
            raise ConfigError(
                f"--updates-per-round {self.updates_per_round} over {rounds} rounds "
                f"(--total-steps / --update-every) makes {updates:.2e} gradient updates, more "
                "than a run can make (2**31 - 1, 25 days at a millisecond each); lower "
                "--updates-per-round"
            )
        if self.td3.target_actor == "proxy" and updates * self.td3.proxy_steps > MAX_UPDATES:
            raise ConfigError(
                f"--proxy-steps {self.td3.proxy_steps} per critic step over {updates} gradient "
                f"updates makes {updates * self.td3.proxy_steps:.2e} proxy steps, more than a "
                "run can make (2**31 - 1, 25 days at a millisecond each); lower --proxy-steps"
            )
        if self.backend == "mjx" and self.env not in MJX_ENVS:
            raise ConfigError(
                f"--backend mjx has no port of {self.env}; MJX ports: "
                f"{', '.join(sorted(MJX_ENVS))} (or use --backend gymnasium)"
            )
        if self.backend == "mjx" and self.act_device == "cpu":
            raise ConfigError(
                "--act-device cpu applies to --backend gymnasium (MJX acts inside its "
                "compiled program, on the training device)"
            )

    def schedule_notes(self) -> list[str]:
        """Lines for a schedule under which the policy never acts or never learns, with the
        fix (a run may still want it: the first part of one resumed later)."""
        notes, every = [], self.update_every
        if self.start_steps >= self.total_steps:
            example = max(every, self.total_steps // 10 // every * every)
            notes.append(
                f"every action is uniformly random: --start-steps ({self.start_steps}) is not "
                f"below --total-steps ({self.total_steps}); lower it, e.g. --start-steps {example}"
            )
        if self.update_after >= self.total_steps:
            notes.append(
                f"no update ever runs: --update-after ({self.update_after}) is not below "
                f"--total-steps ({self.total_steps}); lower it"
            )
        return notes

    @property
    def input_clip(self) -> float:
        """What the networks' observations are clipped to (none without normalization)."""
        return self.obs_clip if self.obs_normalization else float("inf")

    @property
    def batch_size(self) -> int:
        """Transitions per gradient step, of whichever algorithm."""
        return self.td3.batch_size

    @property
    def checkpoint_interval(self) -> int:
        return self.eval_every if self.checkpoint_every is None else self.checkpoint_every

    @classmethod
    def from_dict(cls, data) -> TrainConfig:
        """Inverts ``dataclasses.asdict`` (as written to ``config.json``), checking every
        field's type.

        Raises:
          ConfigError: one line per unknown, missing or wrongly typed field (a missing one
            is not filled in: its default may not be what the run trained with).
        """
        if isinstance(data, dict) and "algo" not in data:
            data = {**data, "algo": "td3"}  # written before --algo (f02ead7): TD3, the only one
        if isinstance(data, dict) and "sac" not in data:  # written before SAC: unused settings
            data = {**data, "sac": dataclasses.asdict(SACConfig())}
        try:
            return from_jsonable(cls, data, complete=True)
        except SchemaError as e:
            raise ConfigError("; ".join(e.problems)) from None

    def resume_mismatch(self, saved: TrainConfig) -> str | None:
        """The first setting that a resumed run may not change (``RESUME_MUTABLE`` may), as
        a line for the user, or None."""
        for name, had, mine in differing_fields(saved, self, RESUME_MUTABLE):
            return f"{flag(name)}: the run has {had!r}, this command gives {mine!r}"
        return None

    def run_dir(self) -> str:
        """The output directory: ``out``, or a new ``runs/ENV-sSEED-TIMESTAMP``
        (``new_run_dir``)."""
        return self.out if self.out is not None else new_run_dir(f"{self.env}-s{self.seed}")


# What a resumed run may change: the schedule's length, evaluation, checkpointing, display and
# logging. Anything else would make the restored state mean something else (a changed grid
# would mix carbon figures).
RESUME_MUTABLE = frozenset(
    {
        "total_steps",
        "target_return",
        "eval_every",
        "eval_episodes",
        "log_every",
        "checkpoint_every",
        "keep_checkpoints",
        "progress",
        "out",
        "tensorboard",
        "pj_per_synop",
        "pj_per_mac",
    }
)


def _with_flags(problem: str) -> str:
    """A schema problem (``td3.actor_lr: expected float, got 'fast'``) with its flag
    (``--actor-lr: expected float, got 'fast'``)."""
    path, _, rest = problem.partition(": ")
    return f"{flag(path.split('.')[-1].split('[')[0])}: {rest}"
