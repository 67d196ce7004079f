"""Training recipe for zoo models: synthetic data, PWC multi-scale loss, trainer (``edgeflow train``)."""
