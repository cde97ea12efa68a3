"""Gymnasium's MuJoCo tasks on MJX, term for term, and ``make(env_id, **options)``.

Each class follows ``gymnasium/envs/mujoco/<task>_v5.py`` and, with ``version="v4"``, the v4
file where it differs: the healthy reward on the terminating step (v4 pays it, v5 does not),
Walker2d's XML, Ant's observation (v4: no contact forces) and contact cost (v5 only),
Humanoid's observation (v5 drops the world body's rows and the free joint's actuator forces)
and contact cost (v5 only), InvertedPendulum's and InvertedDoublePendulum's alive reward
(v5: 0 on the terminating step) and InvertedDoublePendulum's observation (v4: all constraint
forces). Defaults are Gymnasium's; any task attribute listed in ``options`` can be changed
with ``make(env_id, name=value)``.

Not ported: Reacher (its goal is a separate state), HumanoidStandup and Pusher.

Humanoid's XML asks for the PGS solver, which MJX does not implement; the MJX port uses
Newton (MuJoCo's default and MJX's closest supported solver). Contacts are then resolved by a
different algorithm, so Humanoid trajectories follow Gymnasium's only while the solvers agree
(tests compare against Gymnasium's Humanoid with its solver switched to Newton, and measure
the PGS difference separately).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from spikerl_jax.envs.mjx_task import Task, _legged_reward
from spikerl_jax.envs.registry import MJX_ENVS


class _PlanarWalker(Task):
    """Hopper and Walker2d: forward velocity of the root's x + healthy reward - control."""

    frame_skip = 4
    forward_reward_weight = 1.0
    ctrl_cost_weight = 1e-3
    healthy_reward = 1.0
    reset_noise_scale = 5e-3
    options = ("forward_reward_weight", "ctrl_cost_weight", "healthy_reward", "reset_noise_scale")
    reward_terms = ("reward_forward", "reward_ctrl", "reward_survive")

    def observation(self, data):
        return jnp.concatenate([data.qpos[1:], jnp.clip(data.qvel, -10.0, 10.0)])

    def is_healthy(self, data) -> jax.Array:
        raise NotImplementedError

    def terminated(self, data):
        return ~self.is_healthy(data)

    def reward(self, before, after, action):
        forward = self.forward_reward_weight * (after.qpos[0] - before.qpos[0]) / self.dt
        healthy = self.healthy_reward_paid(self.is_healthy(after), self.healthy_reward)
        ctrl = self.ctrl_cost_weight * jnp.sum(jnp.square(action))
        terms = {"reward_forward": forward, "reward_ctrl": -ctrl, "reward_survive": healthy}
        return forward + healthy - ctrl, terms


class Hopper(_PlanarWalker):
    xml_file = "hopper.xml"

    def is_healthy(self, data):
        z, angle = data.qpos[1], data.qpos[2]
        state = jnp.concatenate([data.qpos, data.qvel])[2:]
        return (
            jnp.all((state > -100.0) & (state < 100.0)) & (z > 0.7) & (angle > -0.2) & (angle < 0.2)
        )


class Walker2d(_PlanarWalker):
    def __init__(self, version: str = "v5", **kwargs):
        # v4 used walker2d.xml; v5 fixed its feet (walker2d_v5.xml: equal friction).
        self.xml_file = "walker2d.xml" if version == "v4" else "walker2d_v5.xml"
        super().__init__(version, **kwargs)

    def is_healthy(self, data):
        z, angle = data.qpos[1], data.qpos[2]
        return (z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0)


class _Runner(Task):
    """HalfCheetah and Swimmer: forward velocity of the root's x - control, no termination."""

    forward_reward_weight = 1.0
    reset_noise_scale = 0.1
    skipped_qpos: int  # leading qpos entries left out of the observation (root position)
    options = ("forward_reward_weight", "ctrl_cost_weight", "reset_noise_scale")
    reward_terms = ("reward_forward", "reward_ctrl")

    def observation(self, data):
        return jnp.concatenate([data.qpos[self.skipped_qpos :], data.qvel])

    def reward(self, before, after, action):
        forward = self.forward_reward_weight * (after.qpos[0] - before.qpos[0]) / self.dt
        ctrl = self.ctrl_cost_weight * jnp.sum(jnp.square(action))
        return forward - ctrl, {"reward_forward": forward, "reward_ctrl": -ctrl}


class HalfCheetah(_Runner):
    xml_file = "half_cheetah.xml"
    frame_skip = 5
    ctrl_cost_weight = 0.1
    qvel_noise = "normal"
    skipped_qpos = 1


class Swimmer(_Runner):
    xml_file = "swimmer.xml"
    frame_skip = 4
    ctrl_cost_weight = 1e-4
    skipped_qpos = 2  # x and y


class Ant(Task):
    xml_file = "ant.xml"
    frame_skip = 5
    forward_reward_weight = 1.0
    ctrl_cost_weight = 0.5
    contact_cost_weight = 5e-4
    healthy_reward = 1.0
    reset_noise_scale = 0.1
    qvel_noise = "normal"
    options = (
        "forward_reward_weight",
        "ctrl_cost_weight",
        "contact_cost_weight",
        "healthy_reward",
        "reset_noise_scale",
    )
    reward_terms = ("reward_forward", "reward_ctrl", "reward_contact", "reward_survive")

    def contact_forces(self, data):
        return jnp.clip(data._impl.cfrc_ext, -1.0, 1.0)

    def observation(self, data):
        parts = [data.qpos[2:], data.qvel]
        if self.version == "v5":  # v4's default (use_contact_forces=False) leaves them out
            parts.append(self.contact_forces(data)[1:].ravel())
        return jnp.concatenate(parts)

    def is_healthy(self, data):
        state = jnp.concatenate([data.qpos, data.qvel])
        return jnp.all(jnp.isfinite(state)) & (data.qpos[2] >= 0.2) & (data.qpos[2] <= 1.0)

    def terminated(self, data):
        return ~self.is_healthy(data)

    def reward(self, before, after, action):
        torso = 1  # Gymnasium's main body ("torso"): its frame's position, data.xpos
        x_velocity = (after.xpos[torso, 0] - before.xpos[torso, 0]) / self.dt
        forward = self.forward_reward_weight * x_velocity
        healthy = self.healthy_reward_paid(self.is_healthy(after), self.healthy_reward)
        ctrl = self.ctrl_cost_weight * jnp.sum(jnp.square(action))
        contact = jnp.zeros(())
        if self.version == "v5":
            contact = self.contact_cost_weight * jnp.sum(jnp.square(self.contact_forces(after)))
        return _legged_reward(forward, healthy, ctrl, contact)


class Humanoid(Task):
    xml_file = "humanoid.xml"
    frame_skip = 5
    forward_reward_weight = 1.25
    ctrl_cost_weight = 0.1
    contact_cost_weight = 5e-7
    contact_cost_max = 10.0
    healthy_reward = 5.0
    reset_noise_scale = 1e-2
    options = (
        "forward_reward_weight",
        "ctrl_cost_weight",
        "contact_cost_weight",
        "contact_cost_max",
        "healthy_reward",
        "reset_noise_scale",
    )
    reward_terms = ("reward_forward", "reward_ctrl", "reward_contact", "reward_survive")

    def __init__(self, version: str = "v5", solver: str | None = "newton", **kwargs):
        super().__init__(version, solver=solver, **kwargs)  # the XML's PGS is not in MJX

    def observation(self, data):
        impl = data._impl
        if self.version == "v4":
            rows = [impl.cinert, data.cvel, data.qfrc_actuator, impl.cfrc_ext]
        else:
            rows = [impl.cinert[1:], data.cvel[1:], data.qfrc_actuator[6:], impl.cfrc_ext[1:]]
        return jnp.concatenate([data.qpos[2:], data.qvel, *(r.ravel() for r in rows)])

    def is_healthy(self, data):
        return (data.qpos[2] > 1.0) & (data.qpos[2] < 2.0)

    def terminated(self, data):
        return ~self.is_healthy(data)

    def mass_center_x(self, data):
        mass = self.mjx_model.body_mass
        return jnp.sum(mass * data.xipos[:, 0]) / jnp.sum(mass)

    def reward(self, before, after, action):
        x_velocity = (self.mass_center_x(after) - self.mass_center_x(before)) / self.dt
        forward = self.forward_reward_weight * x_velocity
        healthy = self.healthy_reward_paid(self.is_healthy(after), self.healthy_reward)
        ctrl = self.ctrl_cost_weight * jnp.sum(jnp.square(after.ctrl))
        contact = jnp.zeros(())
        if self.version == "v5":
            contact = jnp.minimum(
                self.contact_cost_weight * jnp.sum(jnp.square(after._impl.cfrc_ext)),
                self.contact_cost_max,
            )
        return _legged_reward(forward, healthy, ctrl, contact)


class InvertedPendulum(Task):
    xml_file = "inverted_pendulum.xml"
    frame_skip = 2
    reset_noise_scale = 0.01
    options = ("reset_noise_scale",)
    reward_terms = ("reward_survive",)

    def observation(self, data):
        return jnp.concatenate([data.qpos, data.qvel])

    def terminated(self, data):
        obs = self.observation(data)
        return ~jnp.all(jnp.isfinite(obs)) | (jnp.abs(obs[1]) > 0.2)

    def reward(self, before, after, action):
        alive = self.healthy_reward_paid(~self.terminated(after), 1.0)
        return alive, {"reward_survive": alive}


class InvertedDoublePendulum(Task):
    xml_file = "inverted_double_pendulum.xml"
    frame_skip = 5
    healthy_reward = 10.0
    reset_noise_scale = 0.1
    qvel_noise = "normal"
    options = ("healthy_reward", "reset_noise_scale")
    reward_terms = ("reward_survive", "distance_penalty", "velocity_penalty")

    def observation(self, data):
        constraint = jnp.clip(data.qfrc_constraint, -10.0, 10.0)
        return jnp.concatenate(
            [
                data.qpos[:1],
                jnp.sin(data.qpos[1:]),
                jnp.cos(data.qpos[1:]),
                jnp.clip(data.qvel, -10.0, 10.0),
                constraint if self.version == "v4" else constraint[:1],
            ]
        )

    def terminated(self, data):
        return data.site_xpos[0, 2] <= 1.0

    def reward(self, before, after, action):
        x, y = after.site_xpos[0, 0], after.site_xpos[0, 2]
        distance = 0.01 * x**2 + (y - 2.0) ** 2
        v1, v2 = after.qvel[1], after.qvel[2]
        velocity = 1e-3 * v1**2 + 5e-3 * v2**2
        alive = self.healthy_reward_paid(~self.terminated(after), self.healthy_reward)
        terms = {
            "reward_survive": alive,
            "distance_penalty": -distance,
            "velocity_penalty": -velocity,
        }
        return alive - distance - velocity, terms


TASKS: dict[str, type[Task]] = {
    "Hopper": Hopper,
    "HalfCheetah": HalfCheetah,
    "Walker2d": Walker2d,
    "Ant": Ant,
    "Humanoid": Humanoid,
    "InvertedPendulum": InvertedPendulum,
    "InvertedDoublePendulum": InvertedDoublePendulum,
    "Swimmer": Swimmer,
}


def make(env_id: str, **options) -> Task:
    """The MJX port of a Gymnasium id, e.g. ``make("Hopper-v4")`` or
    ``make("Ant-v5", ctrl_cost_weight=0.1, iterations=4)``.

    Raises:
      ValueError: an id without an MJX port (the message lists those that have one).
    """
    if env_id not in MJX_ENVS:
        raise ValueError(
            f"no MJX port of {env_id!r}; MJX ports: {', '.join(sorted(MJX_ENVS))} (use the "
            "gymnasium backend for the others)"
        )
    family, version = env_id.rsplit("-", 1)
    return TASKS[family](version, **options)
