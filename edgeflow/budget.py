"""The thread budget: how many cores this process may really use, and how to spend them.

Why it exists: on the 2- and 4-core boards this project targets, onnxruntime's defaults (one
intra-op thread per core, workers that spin-wait between parallel sections and after each run)
hold every core, so the thread that decodes the camera or the file competes with the model for
a core it needs for a few milliseconds per frame, and a model waiting for a 10 fps camera keeps
burning CPU (power and heat, then thermal throttling). ``os.cpu_count()`` is no guide either: a
container or ``taskset`` may give the process fewer cores than the machine has.

So the budget is decided once, from the cores the process may run on (CPU affinity) and the CPU
time it may use (cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``):

* ``threads``: onnxruntime intra-op threads. Default: every usable core. Capturing a 320x240
  frame (decode, convert) is a few milliseconds against tens for the model, so on an otherwise
  idle device the model's parallelism is worth more than a core kept for capture (issue 20: the
  bare graph at 2 threads on an idle 2-core host, 24.7-29.4 fps). On a host busy with other work
  fewer threads deliver more (docs/streaming.md has the measurements): ``--threads``.
* ``spinning``: ``"run"`` (the default, ``--spin auto``): workers spin inside a run, where it pays
  (many short parallel sections), and are stopped as soon as the run returns
  (``session.force_spinning_stop``), so the decoder gets the core between runs and an idle model is
  idle. ``"on"`` is onnxruntime's default (spin after runs too); ``"off"`` never spins
  (``session.intra_op.allow_spinning = 0``), which measured slower inside runs. With one thread
  there is nothing to spin.
* ``capture``: where decoding and frame preparation run: ``"thread"``, the stream's one capture
  thread beside inference (decoding, colour conversion, resize/pad and float conversion), so the
  inference thread runs only the model. ``decode_threads``: FFmpeg threads for a video file the
  stream opens: 1 up to 4 usable cores (frame threads would only add more threads competing with
  inference for small frames), FFmpeg's own choice above.

Overrides: ``threads`` and ``spin`` arguments (``--threads``, ``--spin auto|on|off``), and the
``EDGEFLOW_THREADS`` environment variable for threads.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from edgeflow.errors import InputError

SPIN_CHOICES = ("auto", "on", "off", "run")
#: spinning values written to reports: "run" = spin inside a run only, stop when it returns.
SPIN_MODES = ("run", "on", "off")


@dataclass(frozen=True)
class ThreadBudget:
    """What was decided, and from what (every field goes into the stream report)."""

    threads: int  # onnxruntime intra-op threads
    spinning: str  # "run" | "on" | "off"
    cores_seen: int  # usable cores (affinity and cgroup quota)
    affinity: int  # cores in the affinity mask
    quota: Optional[float]  # cgroup CPU quota in cores, None when unlimited
    capture: str = "thread"
    decode_threads: int = 1  # FFmpeg threads for video files opened by the stream (0 = FFmpeg's choice)
    source: str = "auto"  # "auto" or what overrode it ("threads=", "spin=", "EDGEFLOW_THREADS")

    def to_dict(self) -> dict:
        return asdict(self)

    def session_config(self) -> dict:
        """onnxruntime session config entries for this budget."""
        return session_config(self.spinning)


def session_config(spinning: str) -> dict:
    """onnxruntime session config entries for a spinning mode (see the module docstring)."""
    if spinning not in SPIN_MODES:
        raise InputError(f"spinning must be one of {', '.join(SPIN_MODES)}, got {spinning!r}")
    if spinning == "off":
        return {"session.intra_op.allow_spinning": "0", "session.inter_op.allow_spinning": "0"}
    if spinning == "run":
        return {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "1"}
    return {"session.intra_op.allow_spinning": "1"}


def affinity_cores() -> int:
    """Cores this process may be scheduled on (``taskset``, cpusets), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def cgroup_quota(root: str | os.PathLike = "/sys/fs/cgroup", proc_cgroup: str | os.PathLike = "/proc/self/cgroup"
                 ) -> Optional[float]:
    """The CPU quota of this process's cgroup in cores (``2.5`` = 250 ms per 100 ms), or ``None``.

    cgroup v2: ``<root>/<path>/cpu.max`` holds ``"max 100000"`` or ``"<quota> <period>"``; every
    ancestor may limit too, so the smallest quota on the way up counts. cgroup v1:
    ``cpu.cfs_quota_us`` (``-1`` = none) and ``cpu.cfs_period_us`` in the ``cpu`` controller's
    hierarchy. Unreadable files mean no known limit.
    """
    root = Path(root)
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        lines = []
    v2_path, v1_path = None, None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            v2_path = path
        elif "cpu" in controllers.split(","):
            v1_path = path
    limits = []
    if v2_path is not None:
        limits += _v2_limits(root, v2_path)
    if v1_path is not None or not limits:
        for base in (root / "cpu,cpuacct", root / "cpu"):
            if base.is_dir():
                limits += _v1_limits(base, v1_path or "/")
                break
    return min(limits) if limits else None


def _walk_up(base: Path, path: str):
    """``base/path``, then each ancestor up to ``base`` itself."""
    parts = [p for p in path.strip("/").split("/") if p and p not in (".", "..")]
    for i in range(len(parts), -1, -1):
        yield base.joinpath(*parts[:i])


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _v2_limits(root: Path, path: str) -> list:
    limits = []
    for d in _walk_up(root, path):
        text = _read(d / "cpu.max")
        if not text:
            continue
        fields = text.split()
        if len(fields) >= 2 and fields[0] != "max":
            try:
                quota, period = float(fields[0]), float(fields[1])
            except ValueError:
                continue
            if quota > 0 and period > 0:
                limits.append(quota / period)
    return limits


def _v1_limits(base: Path, path: str) -> list:
    limits = []
    for d in _walk_up(base, path):
        quota, period = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
        try:
            q, p = float(quota), float(period)
        except (TypeError, ValueError):
            continue
        if q > 0 and p > 0:
            limits.append(q / p)
    return limits


def usable_cores(affinity: Optional[int] = None, quota: Optional[float] = None) -> int:
    """``min(affinity, ceil(quota))``, at least 1: a quota of 1.5 cores still runs on 2."""
    affinity = affinity_cores() if affinity is None else affinity
    cores = affinity if quota is None else min(affinity, max(1, math.ceil(quota - 1e-9)))
    return max(1, int(cores))


def decide(threads: Optional[int] = None, spin: str = "auto", *, affinity: Optional[int] = None,
           quota: Optional[float] = ..., env: Optional[dict] = None) -> ThreadBudget:
    """The budget for this process. ``threads``/``spin`` override the automatic choice;
    ``affinity``/``quota`` are for tests (default: read from the system)."""
    if spin not in SPIN_CHOICES:
        raise InputError(f"spin must be one of {', '.join(SPIN_CHOICES)}, got {spin!r}")
    env = os.environ if env is None else env
    affinity = affinity_cores() if affinity is None else int(affinity)
    quota = cgroup_quota() if quota is ... else quota
    cores = usable_cores(affinity, quota)
    overrides = []
    if threads is None and env.get("EDGEFLOW_THREADS", "0").strip() not in ("", "0"):
        try:
            threads = int(env["EDGEFLOW_THREADS"])
        except ValueError:
            raise InputError(f"EDGEFLOW_THREADS must be a whole number, got {env['EDGEFLOW_THREADS']!r}") from None
        overrides.append("EDGEFLOW_THREADS")
    elif threads is not None:
        overrides.append(f"threads={threads}")
    if threads is not None and int(threads) < 1:
        raise InputError(f"threads must be >= 1, got {threads}")
    n = cores if threads is None else int(threads)
    if spin == "auto":
        spinning = "run"
    else:
        spinning = spin
        overrides.append(f"spin={spin}")
    if n == 1 and spinning != "off":
        spinning = "off"  # no workers: nothing spins, say so
    return ThreadBudget(threads=n, spinning=spinning, cores_seen=cores, affinity=affinity,
                        quota=None if quota is None else round(float(quota), 3),
                        decode_threads=1 if cores <= 4 else 0, source=",".join(overrides) or "auto")
