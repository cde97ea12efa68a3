"""The env step's physics loop (``envs.mjx_physics``) against MJX's own ``mjx.step`` and
MuJoCo's native position integration, on a small chain with every joint type; and the
forward traced once per auto-resetting env step.

The tasks' physics against Gymnasium's native MuJoCo is tests/envs/test_mjx_tasks.py.
"""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from spikerl_jax.envs.mjx_env import EpisodeWrapper
from spikerl_jax.envs.mjx_physics import INTEGRATION_STATE, make_integrate_positions, mjx, simulate
from spikerl_jax.envs.mjx_tasks import make

# A free body, a ball-jointed link and a link with a hinge and a slide; no contacts, so that
# MJX's unrolled reference step compiles in seconds.
CHAIN = """
<mujoco>
  <option timestep="0.01" integrator="{integrator}"><flag contact="disable"/></option>
  <worldbody>
    <body pos="0 0 0.3">
      <freejoint/>
      <geom type="sphere" size="0.1" mass="1"/>
      <body pos="0.2 0 0">
        <joint type="ball"/>
        <geom type="capsule" fromto="0 0 0 0.2 0 0" size="0.03" mass="0.3"/>
        <body pos="0.2 0 0">
          <joint name="hinge" type="hinge" axis="0 1 0" damping="0.1"/>
          <joint name="slide" type="slide" axis="1 0 0"/>
          <geom type="capsule" fromto="0 0 0 0.15 0 0" size="0.03" mass="0.2"/>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator><motor joint="hinge"/><motor joint="slide"/></actuator>
</mujoco>
"""


def chain(integrator: str) -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_string(CHAIN.format(integrator=integrator))


def test_positions_integrate_as_mujocos_mj_integrate_pos():
    model = chain("RK4")
    integrate = jax.jit(make_integrate_positions(model.jnt_type), static_argnums=2)
    rng = np.random.default_rng(0)
    for _ in range(5):
        qpos = rng.normal(size=model.nq)
        for q in (3, 7):  # the free joint's and the ball joint's quaternions, unit
            qpos[q : q + 4] /= np.linalg.norm(qpos[q : q + 4])
        qvel = 3.0 * rng.normal(size=model.nv)
        expected = qpos.copy()
        mujoco.mj_integratePos(model, expected, qvel, 0.01)
        got = integrate(jnp.asarray(qpos, jnp.float32), jnp.asarray(qvel, jnp.float32), 0.01)
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("integrator", ["RK4", "Euler"])
def test_physics_loop_matches_mjx_step(integrator):
    """10 env steps of 3 physics steps each, with the next episode's forward alongside."""
    m = mjx.put_model(chain(integrator), impl="jax")
    rng = np.random.default_rng(1)
    start = mjx.make_data(m).replace(
        qvel=jnp.asarray(rng.normal(size=m.nv), jnp.float32), ctrl=jnp.array([0.3, -0.2])
    )
    blank = mjx.make_data(m).replace(qvel=jnp.asarray(rng.normal(size=m.nv), jnp.float32))

    def reference(data):
        def physics_step(d, _):
            return mjx.step(m, d), None

        return jax.lax.scan(physics_step, data, None, length=3)[0]

    def env_steps(step):
        def run(data):
            return jax.lax.scan(lambda d, _: (step(d),) * 2, data, None, length=10)[1]

        return jax.jit(run)

    got = env_steps(lambda d: simulate(m, d, 3, blank)[0])(start)
    expected = env_steps(reference)(start)
    # Float rounding only (XLA fuses the two programs differently), relative to each field's
    # scale; accelerations are the most sensitive (the chain's mass matrix is ill-conditioned).
    for field, tolerance in (("qpos", 1e-5), ("qvel", 1e-5), ("qacc_warmstart", 1e-4), ("time", 0)):
        a, b = np.asarray(getattr(got, field)), np.asarray(getattr(expected, field))
        atol = tolerance * np.abs(b).max()
        np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=field)
    _, fresh = jax.jit(lambda d: simulate(m, d, 3, blank))(start)
    forwarded = jax.jit(mjx.forward)(m, blank)
    for a, b in zip(jax.tree.leaves(fresh), jax.tree.leaves(forwarded), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)  # every field
    if integrator == "Euler":  # MJX's integrator writes only the fields the loop selects
        stepped, forwarded = jax.jit(lambda d: (simulate(m, d, 1)[0], mjx.forward(m, d)))(start)
        for name in set(mjx.Data.__dataclass_fields__) - set(INTEGRATION_STATE) - {"_impl"}:
            a, b = np.asarray(getattr(stepped, name)), np.asarray(getattr(forwarded, name))
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_an_auto_resetting_env_step_traces_the_forward_once(monkeypatch):
    calls = []
    forward = mjx.forward

    def counting(m, d):
        calls.append(1)
        return forward(m, d)

    monkeypatch.setattr(mjx, "forward", counting)
    env = EpisodeWrapper(make("InvertedPendulum-v4"), episode_length=10)
    state = jax.eval_shape(env.reset, jax.random.key(0))
    calls.clear()
    jax.make_jaxpr(env.step)(state, jnp.zeros(env.action_size))
    assert len(calls) == 1
