"""`make test-numpy1`: the runtime wheel under NumPy 1.x gives the same flows as under NumPy 2.

Devices keep NumPy 1.x (Raspberry Pi OS bookworm: 1.24, JetPack 6: 1.21.5 / 1.26 in the venv)
while the development .venv has NumPy 2, so code that only works on 2.x would pass every other
test. This builds the wheel (`pip wheel --no-deps .`), installs it with the Pi's extra and
constraints file plus NumPy 1.26 (the oldest line with Python 3.11 wheels and still numpy<2) into a
venv cached in /var/cache/edgeflow-numpy1 (or .ef_cache/ where that is not writable), then with real onnxruntime sessions:

* `edgeflow info` and `edgeflow run` on the bundled clip (exit 0, no drops);
* the bundled model's flows for the clip's first frames, compared with the same flows computed
  here under NumPy 2 (max |diff| <= 1e-5 px: same onnxruntime build, so only NumPy differs).

Exit 1 with one line on any failure. The venv is reused; the wheel is reinstalled every run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The venv lives outside the checkout by default (like the aarch64 root) so CI's fresh clone finds it
# warm (16 s instead of ~6 min); EF_NUMPY1_CACHE moves it, and an unwritable default falls back to .ef_cache.
_DEFAULT = Path(os.environ.get("EF_NUMPY1_CACHE", "/var/cache/edgeflow-numpy1"))
CACHE = _DEFAULT if os.access(_DEFAULT.parent, os.W_OK) else REPO / ".ef_cache"
VENV = CACHE / "numpy1-venv"
NUMPY1 = os.environ.get("EF_NUMPY1", "numpy==1.26.4")
FRAMES = 6
TOL = 1e-5


def sh(cmd, what, **kw) -> str:
    start = time.monotonic()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if r.returncode:
        tail = "\n".join(r.stdout.splitlines()[-20:])
        print(f"test-numpy1: FAILED: {what} (exit {r.returncode})\n{tail}", flush=True)
        sys.exit(1)
    print(f"test-numpy1: {what}: ok ({time.monotonic() - start:.0f} s)", flush=True)
    return r.stdout


def main() -> int:
    import av
    import numpy as np

    t0 = time.monotonic()
    CACHE.mkdir(parents=True, exist_ok=True)
    work = CACHE / "numpy1"
    work.mkdir(exist_ok=True)
    dist = work / "dist"
    sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO), "-w", str(dist)],
       "pip wheel --no-deps .")
    name = json.loads(sh([sys.executable, "-c", "import tomllib, json; p=tomllib.load(open('pyproject.toml','rb'))['project'];"
                          "print(json.dumps([p['name'], p['version']]))"], "project name", cwd=REPO).strip())
    wheel = dist / f"{name[0].replace('-', '_')}-{name[1]}-py3-none-any.whl"
    py = VENV / "bin" / "python"
    if not py.exists():
        base = getattr(sys, "_base_executable", sys.executable)
        sh([base, "-m", "venv", str(VENV)], "venv")
    sh([str(py), "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", str(wheel)], "install the wheel")
    sh([str(py), "-m", "pip", "install", "-q", f"{wheel}[pi]", NUMPY1, "-c", str(REPO / "constraints" / "pi.txt")],
       f"install its dependencies with {NUMPY1} (pi extra, constraints/pi.txt)")
    version = sh([str(py), "-c", "import numpy, onnxruntime; print(numpy.__version__, onnxruntime.__version__)"],
                 "versions", cwd=work).split()
    if not version[0].startswith("1."):
        print(f"test-numpy1: FAILED: the venv has NumPy {version[0]}, not 1.x")
        return 1
    env = {"PATH": f"{VENV / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    sh([str(VENV / "bin" / "edgeflow"), "info"], "edgeflow info", cwd=work, env=env)
    clip = REPO / "edgeflow" / "data" / "sample.mp4"
    sh([str(VENV / "bin" / "edgeflow"), "run", "--source", str(clip), "--frames", "8", "--no-status", "--report",
        str(work / "run.json")], "edgeflow run (bundled model, bundled clip)", cwd=work, env=env)
    report = json.loads((work / "run.json").read_text())
    if report["frames"].get("dropped_total") or report["frames"].get("results", 0) < 7:
        print(f"test-numpy1: FAILED: edgeflow run under NumPy 1 gave {report['frames']}")
        return 1
    frames = []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == FRAMES:
                break
    np.save(work / "frames.npy", np.stack(frames))
    artifact = REPO / "edgeflow" / "data" / "pwc-lite"
    pairs = REPO / "scripts" / "aarch64" / "pairs.py"
    sh([str(py), str(pairs), str(artifact), str(work / "frames.npy"), str(work / "numpy1.npz")], "flows under NumPy 1",
       cwd=work, env=env)
    sh([sys.executable, str(pairs), str(artifact), str(work / "frames.npy"), str(work / "numpy2.npz")],
       "flows under NumPy 2 (.venv)", cwd=work, env={**os.environ, "PYTHONPATH": str(REPO)})
    a, b = np.load(work / "numpy1.npz"), np.load(work / "numpy2.npz")
    diff = float(np.abs(a["flows"].astype(np.float64) - b["flows"]).max())
    ok = diff <= TOL
    print(f"test-numpy1: NumPy {a['numpy']} vs {b['numpy']} (onnxruntime {version[1]}): {len(a['flows'])} flows, max |diff| "
          f"{diff:.2e} px (limit {TOL}): {'ok' if ok else 'FAILED'}; {time.monotonic() - t0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
