"""A trained run's actor outside training: policies for Gymnasium agents and evaluation."""
