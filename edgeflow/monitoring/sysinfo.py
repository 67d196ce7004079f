"""What the device is and how it is doing: model, CPU, memory, SoC temperatures and clocks.

Read from procfs/sysfs only (no vendor tools), so it works the same on a Jetson, a Pi and a
laptop, and silently reports nothing where a file does not exist. ``root`` lets tests point the
readers at a fake tree.
"""

from __future__ import annotations

import glob
import os
import platform
from pathlib import Path
from typing import Optional

__all__ = ["rss_bytes", "rss_source", "device_model", "cpu_model", "thermal", "cpu_clocks_mhz", "gpu_clocks_mhz",
           "snapshot"]


def _read(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as fh:
            return fh.read(4096).decode("utf-8", "replace").replace("\x00", "").strip()
    except OSError:
        return None


def _psutil():
    try:
        import psutil

        return psutil
    except ImportError:
        return None


def rss_source() -> str:
    """Where :func:`rss_bytes` reads: ``psutil``, or what to install to get it."""
    return "psutil" if _psutil() is not None else "none (pip install psutil)"


def rss_bytes() -> Optional[int]:
    """Resident set size of this process from psutil (the ``metrics`` extra), None without it.

    psutil only: a /proc reader beside it was a second code path for the same number (issue 16).
    """
    psutil = _psutil()
    if psutil is None:
        return None
    try:
        return int(psutil.Process().memory_info().rss)
    except Exception:  # psutil present but unable (sandbox)
        return None


def device_model(root: str = "/") -> Optional[str]:
    """Board name from the device tree (``Raspberry Pi 5 Model B``, ``NVIDIA Jetson Orin Nano ...``)."""
    return _read(os.path.join(root, "proc/device-tree/model"))


def cpu_model(root: str = "/") -> str:
    text = _read(os.path.join(root, "proc/cpuinfo")) or ""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        for line in text.splitlines():
            k, _, v = line.partition(":")
            if k.strip() == key and v.strip():
                return v.strip()
    return platform.processor() or platform.machine()


def thermal(root: str = "/") -> dict:
    """``{zone type: degrees C}`` from /sys/class/thermal/thermal_zone*/temp (millidegrees)."""
    out = {}
    for zone in sorted(glob.glob(os.path.join(root, "sys/class/thermal/thermal_zone*")), key=_natural):
        raw = _read(os.path.join(zone, "temp"))
        if raw is None:
            continue
        try:
            value = int(raw) / 1000.0
        except ValueError:
            continue
        name = _read(os.path.join(zone, "type")) or os.path.basename(zone)
        key, i = name, 1
        while key in out:
            i += 1
            key = f"{name}#{i}"
        out[key] = value
    return out


def cpu_clocks_mhz(root: str = "/") -> dict:
    """``{cpuN: MHz}`` from cpufreq scaling_cur_freq (kHz)."""
    out = {}
    pattern = os.path.join(root, "sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")
    for path in sorted(glob.glob(pattern), key=_natural):
        raw = _read(path)
        try:
            out[Path(path).parent.parent.name] = int(raw) / 1000.0
        except (TypeError, ValueError):
            continue
    return out


def gpu_clocks_mhz(root: str = "/") -> dict:
    """Jetson GPU clock(s) from devfreq ``cur_freq`` (Hz)."""
    out = {}
    patterns = ("sys/devices/gpu.0/devfreq/*/cur_freq", "sys/devices/platform/gpu.0/devfreq/*/cur_freq",
                "sys/devices/platform/bus@0/*.gpu/devfreq/*/cur_freq")
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(root, pattern))):
            raw = _read(path)
            try:
                out[Path(path).parent.name] = int(raw) / 1e6
            except (TypeError, ValueError):
                continue
    return out


def snapshot(root: str = "/") -> dict:
    """Temperatures and clocks right now; empty dicts where the device exposes nothing."""
    return {"temperature_c": thermal(root), "cpu_mhz": cpu_clocks_mhz(root), "gpu_mhz": gpu_clocks_mhz(root)}


def _natural(path: str):
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]
