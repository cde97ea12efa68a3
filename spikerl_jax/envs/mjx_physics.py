"""An env step's physics with MuJoCo's forward dynamics traced once.

``mjx.step`` with the RK4 integrator (every Gymnasium MuJoCo task but HalfCheetah) traces
``mjx.forward`` four times per physics step (RK4's three intermediate stages unrolled), and an
auto-resetting env step traces it once more for the next episode's first state. The forward
is most of what XLA compiles in an MJX program. Here the ``frame_skip`` physics steps run as
one rolled loop of forward evaluations, each followed by its integrator stage, selected
arithmetically so that the loop has no branches, and the next episode's forward runs as one
more iteration of the same loop: one traced forward per env step. The integrator's arithmetic
is RK4's (MuJoCo's ``mj_RungeKutta``, MJX's ``rungekutta4``) term for term, so the results
agree with ``mjx.step`` to float rounding (tests/envs/test_mjx_physics.py).
"""

from __future__ import annotations

import contextlib
import io

import jax
import jax.numpy as jnp
import numpy as np

# mujoco.mjx prints "Failed to import warp" at import when the optional Warp backend is not
# installed; only its JAX implementation is used here.
with contextlib.redirect_stdout(io.StringIO()):
    from mujoco import mjx

# RK4's Butcher tableau: stage s + 1 starts from the state advanced by A_DIAG[s] times stage
# s's derivative, at time C[s] * dt; the step sums the stages' derivatives weighted by B.
A_DIAG = np.array([0.5, 0.5, 1.0, 0.0], np.float32)  # the last stage starts no other
C = np.array([0.5, 0.5, 1.0, 0.0], np.float32)
B = np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6], np.float32)

# Integrators of one forward per physics step, as MJX applies them after it.
ONE_STAGE = {mjx.IntegratorType.EULER: mjx.euler, mjx.IntegratorType.IMPLICITFAST: mjx.implicit}


def _where(pred, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


# MuJoCo's integration state (``mjSTATE_INTEGRATION``: time, the physics state, controls,
# mocap poses, user data): every field an integrator stage writes is one of them.
INTEGRATION_STATE = (
    "time", "qpos", "qvel", "act", "history", "qacc_warmstart", "plugin_state",
    "ctrl", "qfrc_applied", "xfrc_applied", "eq_active", "mocap_pos", "mocap_quat", "userdata",
)  # fmt: skip


def integration_state(data: mjx.Data) -> dict[str, jax.Array]:
    """``data``'s integration state (``INTEGRATION_STATE``)."""
    return {name: getattr(data, name) for name in INTEGRATION_STATE}


def quat_integrate(quat: jax.Array, omega: jax.Array, dt) -> jax.Array:
    """``quat`` (4,) rotated by the angular velocity ``omega`` (3,, local frame) for ``dt``:
    ``quat * (cos(|omega| dt / 2), sin(|omega| dt / 2) omega / |omega|)``, renormalized."""
    speed = jnp.linalg.norm(omega)
    axis = omega / (speed + 1e-6 * (speed == 0.0))
    half = 0.5 * (dt * speed)
    w2, v2 = jnp.cos(half), axis * jnp.sin(half)
    w1, v1 = quat[0], quat[1:]
    out = jnp.concatenate([(w1 * w2 - v1 @ v2)[None], w1 * v2 + w2 * v1 + jnp.cross(v1, v2)])
    return out / jnp.linalg.norm(out)


def make_integrate_positions(jnt_type: np.ndarray):
    """``integrate(qpos (nq,), qvel (nv,), dt) -> qpos``: positions advanced by velocities,
    joint by joint (slide and hinge coordinates linearly, free and ball joints' quaternions
    on the sphere)."""
    linear_q, linear_v, quats = [], [], []  # quats: (qpos index, qvel index) of each
    qi = vi = 0
    for kind in jnt_type:
        if kind == mjx.JointType.FREE:
            linear_q += [qi, qi + 1, qi + 2]
            linear_v += [vi, vi + 1, vi + 2]
            quats.append((qi + 3, vi + 3))
            qi, vi = qi + 7, vi + 6
        elif kind == mjx.JointType.BALL:
            quats.append((qi, vi))
            qi, vi = qi + 4, vi + 3
        else:
            linear_q.append(qi)
            linear_v.append(vi)
            qi, vi = qi + 1, vi + 1
    linear_q, linear_v = np.array(linear_q, np.int32), np.array(linear_v, np.int32)

    def integrate(qpos, qvel, dt):
        out = qpos.at[linear_q].set(qpos[linear_q] + dt * qvel[linear_v])
        for q, v in quats:
            out = out.at[q : q + 4].set(quat_integrate(qpos[q : q + 4], qvel[v : v + 3], dt))
        return out

    return integrate


def _rk4_stage(m: mjx.Model, integrate):
    """``stage(f, s, base, sums) -> (data, base, sums)``: what follows RK4's ``s``-th forward
    ``f`` of a physics step (``s`` in 0..3): stage 0 records the step's start ``base`` (qpos,
    qvel, act, time); every stage adds its derivatives to ``sums`` (qvel, qacc, act_dot)
    with weight ``B[s]``; stages 0-2 return the next stage's state, stage 3 the advanced one."""
    dt = m.opt.timestep

    def stage(f, s, base, sums):
        first, last = s == 0, s == 3
        base = _where(first, (f.qpos, f.qvel, f.act, f.time), base)
        derivatives = (f.qvel, f.qacc, f.act_dot)
        b = jnp.asarray(B)[s]
        sums = tuple(
            jnp.where(first, 0.0, total) + b * x for total, x in zip(sums, derivatives, strict=True)
        )
        qpos0, qvel0, act0, time0 = base
        a = jnp.asarray(A_DIAG)[s]
        velocity, qacc, act_dot = (
            jnp.where(last, total, a * x) for total, x in zip(sums, derivatives, strict=True)
        )
        data = f.replace(
            qpos=integrate(qpos0, velocity, dt),
            qvel=qvel0 + qacc * dt,
            # act_dot integrates plainly in the stages; the advanced step has no activations
            # (na == 0 is checked), as MuJoCo's clamped activation update would need them.
            act=act0 + act_dot * dt,
            time=jnp.where(last, time0 + dt, time0 + jnp.asarray(C)[s] * dt),
            qacc_warmstart=jnp.where(last, f.qacc, f.qacc_warmstart),
        )
        return data, base, sums

    return stage


def simulate(m: mjx.Model, data: mjx.Data, frame_skip: int, fresh: mjx.Data | None = None):
    """``frame_skip`` physics steps of ``data`` (its ``ctrl`` set), as ``mjx.step`` in a
    ``lax.scan`` computes them; and ``fresh``'s forward (``mjx.forward``), if given.

    Returns:
      ``(data, fresh)``: the stepped data, and the forwarded ``fresh`` (``None`` if not given).
    """
    if m.opt.integrator == mjx.IntegratorType.RK4:
        if m.na:
            raise ValueError("RK4 with activation states (na > 0) is not supported")
        stages = 4
        stage = _rk4_stage(m, make_integrate_positions(np.asarray(m.jnt_type)))
        # The step's start and derivative sums, which stage 0 overwrites: any values of their
        # shapes. Taken from ``data`` (not zeros) so that under ``vmap`` every loop carry is
        # batched from the start: ``lax.scan``'s batching rule then batches the loop body
        # once, not once more per carry that turns batched (seconds of tracing MJX).
        extra = ((data.qpos, data.qvel, data.act, data.time), (data.qvel, data.qacc, data.act_dot))
    else:
        stages, extra = 1, ()
        integrator = ONE_STAGE[m.opt.integrator]

        def stage(f, s, *extra):
            return integrator(m, f), *extra

    iterations = stages * frame_skip

    def body(carry, k):
        data, _, extra = carry
        if fresh is None:
            stepped, *extra = stage(mjx.forward(m, data), k % stages, *extra)
            return (stepped, None, tuple(extra)), None
        resetting = k == iterations
        f = mjx.forward(m, _where(resetting, fresh, data))
        stepped, *extra = stage(f, k % stages, *extra)
        # The reset iteration keeps its forward as it is (the next episode's first data), and
        # the data it started from moves to the other slot: selects of the few fields a stage
        # writes, not of every field of both slots (each select of a field is a kernel that
        # XLA compiles).
        stepped = f.replace(**_where(resetting, integration_state(f), integration_state(stepped)))
        return (stepped, data, tuple(extra)), None

    # The other slot starts as any value of its shape (``data``: batched under vmap, as above).
    previous = None if fresh is None else data
    length = iterations + (fresh is not None)
    (data, previous, _), _ = jax.lax.scan(body, (data, previous, extra), jnp.arange(length))
    return (data, None) if fresh is None else (previous, data)
