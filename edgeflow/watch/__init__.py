"""The live page (``edgeflow run --serve HOST:PORT``): what the camera sees, the flow the model
makes of it, a rolling latency chart, fps, drops, temperature, input drift and SLOs, in a browser.

:class:`~edgeflow.watch.sink.WatchSink` is an ordinary sink (the stream does not know about it);
:mod:`edgeflow.watch.server` is the aiohttp application it runs on its own thread and event loop;
``page.html`` is the whole page (no external assets: devices are offline). aiohttp is the
optional ``serve`` extra: ``pip install aiohttp`` (``.[serve]`` in a checkout).
"""

from edgeflow.watch.sink import WatchSink, parse_serve

__all__ = ["WatchSink", "parse_serve"]
