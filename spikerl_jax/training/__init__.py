"""Training: the run state, the learner's compiled pieces, the two simulator backends
(Gymnasium on the host, MJX on the device), data parallelism, checkpoints and the loop."""
