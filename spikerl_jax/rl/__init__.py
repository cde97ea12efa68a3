"""Reinforcement learning: networks, TD3 (with the proxy-target option), replay, the
observation normalizer and the policy factory."""
