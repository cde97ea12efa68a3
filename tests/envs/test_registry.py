"""The task registry: its shapes equal Gymnasium's, its MJX list the ports', and reading it
(or the config) imports no simulator; MuJoCo's warnings never reach the terminal or a
MUJOCO_LOG.TXT."""

import subprocess
import sys

import numpy as np
import pytest

from spikerl_jax.envs.gymnasium_backend import quiet_make
from spikerl_jax.envs.registry import MJX_ENVS, SPECS, SUPPORTED_ENVS, UnknownEnv, env_spec


@pytest.mark.parametrize("env_id", sorted(SUPPORTED_ENVS))
def test_spec_equals_gymnasium(env_id):
    env = quiet_make(env_id)
    spec = env_spec(env_id)
    assert spec.obs_dim == int(np.prod(env.observation_space.shape))
    assert spec.action_dim == int(np.prod(env.action_space.shape))
    np.testing.assert_array_equal(env.action_space.high, spec.action_limit)
    np.testing.assert_array_equal(env.action_space.low, -spec.action_limit)
    assert spec.max_episode_steps == env.spec.max_episode_steps
    env.close()


def test_mjx_list_is_the_ported_tasks():
    from spikerl_jax.envs.mjx_tasks import TASKS

    assert {f"{family}-v{v}" for family in TASKS for v in (4, 5)} == MJX_ENVS
    assert set(SPECS) > MJX_ENVS
    with pytest.raises(UnknownEnv, match=r"unknown env 'Cartpole-v1' \(did you mean CartPole-v1"):
        env_spec("Cartpole-v1")


def test_config_and_registry_import_no_simulator():
    code = (
        "import sys, spikerl_jax.config, spikerl_jax.envs; "
        "print(sorted(m for m in ('gymnasium', 'mujoco', 'jax') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_mujoco_warnings_go_to_logging_not_the_terminal_or_a_file(tmp_path):
    """HalfCheetah's XML makes MuJoCo warn ('settotalmass'): nothing is printed, no
    MUJOCO_LOG.TXT appears in the working directory, and the warning is logged."""
    code = (
        "import logging\n"
        "records = []\n"
        "class Keep(logging.Handler):\n"
        "    def emit(self, record): records.append(record.getMessage())\n"
        "logging.getLogger('spikerl_jax.mujoco').addHandler(Keep())\n"
        "logging.getLogger('spikerl_jax.mujoco').setLevel(logging.DEBUG)\n"
        "from spikerl_jax.envs.gymnasium_backend import quiet_make\n"
        "quiet_make('HalfCheetah-v4').reset(seed=0)\n"
        "from spikerl_jax.envs.mjx_tasks import make\n"
        "make('HalfCheetah-v5')\n"
        "assert len(records) == 1 and 'settotalmass' in records[0], records\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"JAX_PLATFORMS": "cpu", "PATH": ""},
    )
    assert proc.returncode == 0, proc.stderr
    assert "settotalmass" not in proc.stdout + proc.stderr
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_a_module_env_that_fails_on_import_or_misses_an_id_is_one_line(tmp_path, monkeypatch):
    """``--env MODULE:ID``: the module's own error with its place, and the ids the module
    registered as the hints (not the closest of Gymnasium's)."""
    from spikerl_jax.envs.registry import check_known

    (tmp_path / "raising_mod.py").write_text('raise RuntimeError("boom")\n')
    (tmp_path / "registering_mod.py").write_text(
        "import gymnasium\n"
        'gymnasium.register("MyPendulum-v0", entry_point="gymnasium.envs.classic_control:'
        'PendulumEnv")\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UnknownEnv) as e:
        check_known("raising_mod:X-v0")
    assert str(e.value) == (
        "importing 'raising_mod' for the env 'raising_mod:X-v0' failed: RuntimeError: boom "
        f"({tmp_path / 'raising_mod.py'}, line 1)"
    )
    with pytest.raises(UnknownEnv, match=r"did you mean registering_mod:MyPendulum-v0\?"):
        check_known("registering_mod:MyPendulm-v0")
