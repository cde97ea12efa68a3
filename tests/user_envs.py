"""A user's own Gymnasium env, registered on import, for ``--env user_envs:PointMass-v0``
(tests/ is on the test processes' path): a point mass pushed towards the origin, with an
action space that is not symmetric (``[0, 2]``: the host backend rescales it to ``[-1, 1]``)."""

import gymnasium as gym
import numpy as np


class PointMass(gym.Env):
    """State ``(x, v)``; the action's force is ``a - 1``; reward ``-x^2``."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = gym.spaces.Box(0.0, 2.0, (1,), np.float32)
        self.state = np.zeros(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = self.np_random.uniform(-1.0, 1.0, 2)
        return self.state.copy(), {}

    def step(self, action):
        x, v = self.state
        v = v + 0.05 * (float(np.asarray(action).reshape(-1)[0]) - 1.0)
        x = x + 0.05 * v
        self.state = np.array([x, v])
        return self.state.copy(), -(x**2), bool(abs(x) > 5.0), False, {}


gym.register("PointMass-v0", entry_point=PointMass, max_episode_steps=50)
