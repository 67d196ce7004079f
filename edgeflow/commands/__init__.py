"""One module per CLI sub-command; see :mod:`edgeflow.cli` for the interface."""
