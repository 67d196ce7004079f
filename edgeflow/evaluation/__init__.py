"""``edgeflow eval``: methods scored on a data set (:mod:`.evaluate`), OpenCV baselines beside
them (:mod:`.baselines`), and the report they make (:mod:`.report`: tables and JSON).

The data sets themselves are :mod:`edgeflow.datasets`; the metrics, :mod:`edgeflow.flow`.
Nothing is imported here, so the CLI can read the baselines' names without loading the loop.
"""
