"""`make test-aarch64`: docs/deploy_pi.md, followed as a Raspberry Pi user would, on 64-bit ARM.

Debian bookworm arm64 (the base of Raspberry Pi OS bookworm: Python 3.11, NumPy 1.24, OpenCV 4.6)
runs under qemu-user-static's binfmt handler in a cached root (scripts/aarch64/build_root.sh).

1. On this x86 host, the page's workstation lines are run as written: `edgeflow convert` (FP32,
   and INT8 with --int8-scheme s8s8, the ARM form) and `python -m pip wheel --no-deps . -w dist`.
   The `scp` line is replaced by a copy into the root's home directory.
2. In the root, the page's install block is run as written, in one bash -e session (lines marked
   "Raspberry Pi OS only" are skipped and said so: python3-picamera2 is not in Debian). The venv
   is made fresh on every run; apt packages and pip's download cache stay in the cached root.
3. Then: the OS `import cv2` and NumPy 1.x still come from the OS inside the venv (pip put no NumPy
   or OpenCV in it); `edgeflow run` streams the clip with both artifacts (no drops, exit 0);
   `edgeflow info ARTIFACT` passes; the flows of the clip's first frames match x86's (FP32 max
   |diff| <= 1e-4 px, INT8 mean end-point difference <= 0.05 px; on an x86 host without VNNI,
   whose onnxruntime int8 kernels saturate, arm64 INT8 must instead be as close to the x86 FP32
   flows as x86 INT8 is, + 0.05 px).

Skips (exit 0, reason printed) where this cannot run: not root, no aarch64 binfmt handler,
debootstrap/unshare missing. Any failed step is one line saying which, with the log's tail.
Summary JSON: $EF_AARCH64_CACHE/last.json. Options: --from-head (build from `git archive HEAD`
instead of the working tree), --frames / --fp32-frames / --run-frames (clip lengths).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = Path(os.environ.get("EF_AARCH64_CACHE", "/var/cache/edgeflow-aarch64"))
ROOTFS = CACHE / "root"
HOME = ROOTFS / "root"  # the Pi user's ~ (we run as root in the root)
FP32_TOL_MAX_ABS = 1e-4
INT8_TOL_MEAN_EPE = 0.05
#: On an x86 host without VNNI, onnxruntime's int8 kernels saturate 16-bit pair sums, so x86 INT8
#: flows are no reference for ARM's exact ones (measured on an AVX2-only EPYC: 0.13 px mean EPE
#: apart, x86 INT8 0.11 px from FP32, arm64 INT8 0.09 px). There the INT8 check asks instead that
#: arm64 INT8 be as close to the x86 FP32 flows as x86 INT8 is, within this slack (px).
INT8_VS_FP32_SLACK = 0.05


def _host_has_vnni() -> bool:
    sys.path.insert(0, str(REPO))
    from converters.quantize.int8 import has_vnni

    return has_vnni()


class Failed(Exception):
    pass


def log(msg: str) -> None:
    print(f"test-aarch64: {msg}", flush=True)


def skip_reason() -> str | None:
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"host is {platform.machine()}, this check emulates arm64 on x86_64"
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, mounts in a private namespace)"
    handler = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    if not handler.exists():
        return ("no binfmt handler for arm64 (/proc/sys/fs/binfmt_misc/qemu-aarch64 missing): "
                "apt-get install qemu-user-static binfmt-support, and binfmt_misc mounted")
    if not handler.read_text().startswith("enabled"):
        return "the arm64 binfmt handler is disabled (update-binfmts --enable qemu-aarch64)"
    for tool in ("debootstrap", "unshare", "chroot"):
        if not shutil.which(tool):
            return f"{tool} is not installed (apt-get install debootstrap util-linux)"
    return None


def run(cmd, *, cwd=None, env=None, log_to: Path | None = None, what: str, timeout: float = 1800) -> str:
    """Run with the output streamed to a log file (to watch long steps), and fail in one line
    (plus the log's tail) if it fails or overruns ``timeout``."""
    start = time.monotonic()
    log_to = log_to or WORK / "step.log"
    log_to.parent.mkdir(parents=True, exist_ok=True)
    with open(log_to, "w") as fh:
        try:
            rc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = f"timed out after {timeout:.0f} s"
    out = log_to.read_text(errors="replace")
    if rc != 0:
        tail = "\n".join(out.splitlines()[-25:])
        raise Failed(f"{what} failed (exit {rc}, {time.monotonic() - start:.0f} s, log {log_to}){':' if tail else ''}\n{tail}")
    log(f"{what}: ok ({time.monotonic() - start:.0f} s)")
    return out


def doc_blocks(section: str) -> list[list[str]]:
    """The ```sh blocks under a '## ' heading of docs/deploy_pi.md, as lists of lines."""
    text = (SRC / "docs" / "deploy_pi.md").read_text()
    part = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return [[ln for ln in b.splitlines() if ln.strip()] for b in re.findall(r"```sh\n(.*?)```", part, re.S)]


def strip_comment(line: str) -> str:
    return line.split("  #")[0].rstrip() if "  #" in line else line.rstrip()


def source_hash() -> str:
    """What the x86 artifacts depend on: the toolchain, the artifact writer, bundled weights, the
    page's convert lines (not the runtime, which the check itself exercises)."""
    h = hashlib.sha256()
    paths = [*(SRC / "converters").rglob("*"), SRC / "edgeflow" / "artifact.py", *(SRC / "edgeflow" / "data" / "models").rglob("*")]
    for p in sorted(paths):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(SRC)).encode())
            h.update(p.read_bytes())
    h.update(json.dumps(doc_blocks("1. On the workstation: convert")).encode())
    return h.hexdigest()[:16]


def fake_cpuinfo() -> Path:
    """An arm64 /proc/cpuinfo (Cortex-A76, as a Pi 5) with one entry per CPU the kernel reports."""
    entry = ("processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics "
             "fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
             "CPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n")
    path = CACHE / "cpuinfo.aarch64"
    path.write_text("".join(entry.format(i=i) for i in range(os.cpu_count() or 1)))
    return path


def in_root(script: str, *, what: str, log_name: str, timeout: float = 1800) -> str:
    return run([str(HERE / "in_root.sh"), str(ROOTFS), str(CPUINFO), "/bin/bash", "-c", script],
               log_to=WORK / log_name, what=what, timeout=timeout)


def host_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(SRC)  # the tree under test first (the .venv's editable install may point elsewhere)
    return env


def main() -> int:
    global SRC, WORK, CPUINFO
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from-head", action="store_true", help="build from `git archive HEAD`, not the working tree")
    # Under QEMU one pwc-lite 320x240 inference takes ~15 s in INT8 and ~45 s in FP32 (TCG emulates
    # NEON; 2 loaded cores), so clips are short. FP32 agrees to ~1e-6 px on any pair; INT8 differs by
    # 0 to 0.08 px per pair (rounding flips between x86's and ARM's kernels), so it gets more pairs.
    ap.add_argument("--frames", type=int, default=6, help="clip frames compared with x86 for INT8 (default 6: 5 flows)")
    ap.add_argument("--fp32-frames", type=int, default=3, help="clip frames compared for FP32 (default 3: 2 flows)")
    ap.add_argument("--run-frames", type=int, default=4, help="frames `edgeflow run` streams per artifact (default 4)")
    args = ap.parse_args()
    t0 = time.monotonic()
    why = skip_reason()
    if why:
        log(f"SKIPPED: {why}")
        return 0
    summary: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        cold = not (ROOTFS / ".edgeflow-root-ok").exists()
        t = time.monotonic()
        run([str(HERE / "build_root.sh")], what="arm64 root (debootstrap, cached)", timeout=3600)
        summary["root_build_s"] = round(time.monotonic() - t, 1)
        summary["root_cold"] = cold
        SRC = REPO
        if args.from_head:
            SRC = CACHE / "src"
            shutil.rmtree(SRC, ignore_errors=True)  # our own export from the last run
            SRC.mkdir(parents=True)
            subprocess.run(f"git -C {REPO} archive HEAD | tar -x -C {SRC}", shell=True, check=True)
        key = source_hash()
        WORK = CACHE / "work"
        WORK.mkdir(parents=True, exist_ok=True)
        CPUINFO = fake_cpuinfo()
        x86 = CACHE / f"x86-{key}"
        env = host_env()

        # 1. workstation: the page's convert lines, as written (cached per source hash)
        if not (x86 / ".done").exists():
            shutil.rmtree(x86, ignore_errors=True)  # a partial run of ours
            x86.mkdir(parents=True)
            shutil.copy(SRC / "edgeflow" / "data" / "sample.mp4", x86 / "my_clip.mp4")
            t = time.monotonic()
            for block in doc_blocks("1. On the workstation: convert"):
                for line in block:
                    run(["bash", "-euo", "pipefail", "-c", strip_comment(line)], cwd=x86, env=env,
                        log_to=WORK / "convert.log", what=f"x86: {strip_comment(line)}")
            summary["convert_s"] = round(time.monotonic() - t, 1)
            (x86 / ".done").touch()
        else:
            log(f"x86 artifacts: cached ({x86.name})")
        for old in CACHE.glob("x86-*"):  # artifacts of other source versions (ours): keep only this one
            if old != x86 and old.is_dir():
                shutil.rmtree(old)
        artifacts = {"fp32": x86 / "pwc-lite-320", "int8": x86 / "pwc-lite-320-int8"}
        for a in artifacts.values():
            if not (a / "manifest.json").is_file():
                raise Failed(f"the page's convert lines did not make {a.name} (docs/deploy_pi.md step 1 changed?)")
        quant = json.loads((artifacts["int8"] / "manifest.json").read_text()).get("quantization") or {}
        summary["int8_quantization"] = {k: quant.get(k) for k in ("cpu_scheme", "calibration", "excluded_nodes")}
        if quant.get("cpu_scheme") != "s8s8":
            raise Failed(f"the INT8 artifact's CPU graph is {quant.get('cpu_scheme')}, not the ARM form s8s8")

        # frames (decoded once, here) and the x86 reference flows
        import av  # the host .venv has PyAV (dev extra)
        import numpy as np

        frames = []
        with av.open(str(SRC / "edgeflow" / "data" / "sample.mp4")) as container:
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == args.frames:
                    break
        np.save(WORK / "frames.npy", np.stack(frames))
        counts = {"fp32": min(args.fp32_frames, len(frames)), "int8": len(frames)}
        for name, a in artifacts.items():
            run([sys.executable, str(HERE / "pairs.py"), str(a), str(WORK / "frames.npy"), str(WORK / f"x86_{name}.npz"),
                 str(counts[name])], env=env, what=f"x86 reference flows ({name})")

        # 2. the page's wheel line, as written, then "scp" = copy into the root's ~
        wheel_block = doc_blocks("2. On the Pi: install the runtime")[0]
        build = [strip_comment(ln) for ln in wheel_block if "pip wheel" in ln or "python -m build" in ln]
        if not build:
            raise Failed("docs/deploy_pi.md step 2 has no wheel-building line")
        run(["bash", "-euo", "pipefail", "-c", build[0]], cwd=SRC, env=env, log_to=WORK / "wheel.log",
            what=f"x86: {build[0]}")
        scp = [strip_comment(ln) for ln in wheel_block if ln.startswith("scp ")]
        copied = scp[0].split()[1:-1] if scp else []
        if not copied:
            raise Failed("docs/deploy_pi.md step 2 has no scp line naming the wheel and constraints file")
        for f in copied:
            if not (SRC / f).is_file():
                raise Failed(f"docs/deploy_pi.md copies {f}, which `{build[0]}` did not make / the checkout lacks")
            shutil.copy(SRC / f, HOME / Path(f).name)
        for name, a in artifacts.items():
            dest = HOME / a.name
            shutil.rmtree(dest, ignore_errors=True)  # our copy from the last run
            shutil.copytree(a, dest)
        shutil.copy(SRC / "edgeflow" / "data" / "sample.mp4", HOME / "clip.mp4")
        shutil.copy(WORK / "frames.npy", HOME / "frames.npy")
        shutil.copy(HERE / "pairs.py", HOME / "pairs.py")

        # 3. the page's install block, as written, in the arm64 root (a fresh venv each run)
        install = doc_blocks("2. On the Pi: install the runtime")[1]
        lines, skipped = [], []
        for ln in install:
            (skipped if "Raspberry Pi OS only" in ln else lines).append(ln)
        for ln in skipped:
            log(f"not run (Raspberry Pi OS only, not in Debian): {strip_comment(ln)}")
        summary["install_lines_run"] = [strip_comment(ln) for ln in lines]
        shutil.rmtree(HOME / "ef", ignore_errors=True)  # the venv this check made last time
        t = time.monotonic()
        out = in_root("set -euxo pipefail\n" + "\n".join(lines) + "\n", what="arm64: docs/deploy_pi.md install block",
                      log_name="install.log", timeout=2400)
        summary["install_s"] = round(time.monotonic() - t, 1)
        summary["edgeflow_info"] = out.split("+ edgeflow info", 1)[-1].strip().splitlines()[:40]

        # 4. checks in the venv
        act = "cd ~ && . ~/ef/bin/activate && "
        # The OS OpenCV as the file decoder too (what a venv without PyAV uses): its one-line reason
        # and two decoded frames.
        opencv_files = ("def opencv_files():\n    from edgeflow.sources.video import choose_backend\n"
                        "    cls, why = choose_backend('opencv')\n    d = cls('/root/clip.mp4', 1)\n"
                        "    shapes = [list(d.next()[0].shape) for _ in range(2)]\n    d.close()\n"
                        "    return {'reason': why, 'frames': shapes}\n")
        probe = in_root(act + "python3 - <<'EOF'\nimport json, sys, numpy, cv2, onnxruntime, av\n" + opencv_files +
                        "print('PROBE' + json.dumps({'numpy': numpy.__version__, 'numpy_file': numpy.__file__, "
                        "'cv2': cv2.__version__, 'cv2_file': cv2.__file__, 'onnxruntime': onnxruntime.__version__, "
                        "'av': av.__version__, 'python': sys.version.split()[0], "
                        "'gstreamer': 'GStreamer:                   YES' in cv2.getBuildInformation() "
                        "or 'GStreamer: YES' in ' '.join(cv2.getBuildInformation().split()), "
                        "'opencv_files': opencv_files()}))\nEOF\n"
                        "pip list --format json --path ~/ef/lib/python3.11/site-packages | sed 's/^/VENV/'",
                        what="arm64: OS cv2 and NumPy inside the venv", log_name="probe.log")
        p = json.loads(probe.split("PROBE", 1)[1].splitlines()[0])
        venv_dists = {d["name"].lower() for d in json.loads(probe.split("VENV", 1)[1].splitlines()[0])}
        summary["arm64"] = p
        summary["venv_distributions"] = sorted(venv_dists)
        if not p["numpy"].startswith("1.") or not p["numpy_file"].startswith("/usr/lib/python3/dist-packages/"):
            raise Failed(f"NumPy in the venv is {p['numpy']} from {p['numpy_file']}, not the OS's 1.x")
        if not p["cv2_file"].startswith("/usr/lib/python3/dist-packages/"):
            raise Failed(f"cv2 in the venv comes from {p['cv2_file']}, not the OS (python3-opencv)")
        ocv = p["opencv_files"]
        if "the OS build" not in ocv["reason"] or ocv["frames"] != [[240, 320, 3]] * 2:
            raise Failed(f"the OS OpenCV as video decoder: {ocv}")
        shadow = sorted(d for d in venv_dists if d == "numpy" or d.startswith("opencv"))
        if shadow:
            raise Failed(f"pip installed {shadow} into the venv over the OS packages")
        for name, a in artifacts.items():
            out = in_root(act + f"edgeflow info ~/{a.name} && edgeflow run ~/{a.name} --source ~/clip.mp4 "
                          f"--frames {args.run_frames} --no-status --report ~/run-{name}.json && python3 ~/pairs.py ~/{a.name} "
                          f"~/frames.npy ~/arm_{name}.npz {counts[name]}", what=f"arm64: edgeflow info + run + flows ({name})",
                          log_name=f"run-{name}.log", timeout=1800)
            report = json.loads((HOME / f"run-{name}.json").read_text())
            frames = report.get("frames", {})
            video = [ln for ln in out.splitlines() if ln.startswith("video:")]
            lat = report.get("latency_ms")
            summary[f"run_{name}"] = {"end": report.get("end"), "frames": frames, "video_line": video[:1],
                                      "fps": report.get("fps"),
                                      "latency_ms_median": {k: v.get("median") for k, v in lat.items() if isinstance(v, dict)}
                                      if isinstance(lat, dict) else None}
            if report.get("end", {}).get("reason") not in ("eof", "frame_limit") or frames.get("dropped_total"):
                raise Failed(f"edgeflow run ({name}) ended {report.get('end')} with frames {frames}")
            if frames.get("results", 0) < args.run_frames - 1:
                raise Failed(f"edgeflow run ({name}) gave {frames.get('results')} results for {args.run_frames} frames")

        # 5. flows vs x86
        import numpy as np

        ok = True
        exact_int8 = platform.machine().lower() not in ("x86_64", "amd64") or _host_has_vnni()
        for name in artifacts:
            ref = np.load(WORK / f"x86_{name}.npz")["flows"].astype(np.float64)
            arm = np.load(HOME / f"arm_{name}.npz")["flows"].astype(np.float64)
            diff = arm - ref
            epe = np.sqrt((diff ** 2).sum(-1))
            stats = {"pairs": int(len(ref)), "max_abs_px": float(np.abs(diff).max()), "mean_epe_px": float(epe.mean()),
                     "max_epe_px": float(epe.max()), "flow_mean_magnitude_px": float(np.sqrt((ref ** 2).sum(-1)).mean())}
            if name == "fp32":
                passed = stats["max_abs_px"] <= FP32_TOL_MAX_ABS
                limit = f"max |diff| <= {FP32_TOL_MAX_ABS}"
            elif exact_int8:
                passed = stats["mean_epe_px"] <= INT8_TOL_MEAN_EPE
                limit = f"mean EPE <= {INT8_TOL_MEAN_EPE}"
            else:  # see INT8_VS_FP32_SLACK
                fp32 = np.load(WORK / "x86_fp32.npz")["flows"].astype(np.float64)
                n = len(fp32)
                arm_err = float(np.sqrt(((arm[:n] - fp32) ** 2).sum(-1)).mean())
                x86_err = float(np.sqrt(((ref[:n] - fp32) ** 2).sum(-1)).mean())
                stats.update({"host_without_vnni": True, "arm_int8_vs_x86_fp32_px": arm_err,
                              "x86_int8_vs_x86_fp32_px": x86_err})
                passed = arm_err <= x86_err + INT8_VS_FP32_SLACK
                limit = (f"this x86 host has no VNNI, so x86 INT8 is no reference: arm64 INT8 is {arm_err:.3f} px and "
                         f"x86 INT8 {x86_err:.3f} px from x86 FP32 over {n} pairs, limit x86 + {INT8_VS_FP32_SLACK}")
            stats["passed"] = bool(passed)
            summary[f"flows_{name}"] = stats
            ok &= passed
            log(f"{name} arm64 vs x86 over {stats['pairs']} pairs: max |diff| {stats['max_abs_px']:.2e} px, mean EPE "
                f"{stats['mean_epe_px']:.2e} px (limit: {limit}): {'ok' if passed else 'FAILED'}")
        if not ok:
            raise Failed("arm64 flows differ from x86 beyond the limits above")
        summary["passed"] = True
        return_code = 0
    except Failed as exc:
        summary["passed"] = False
        summary["failure"] = str(exc)
        log(f"FAILED: {exc}")
        return_code = 1
    summary["total_s"] = round(time.monotonic() - t0, 1)
    (CACHE / "last.json").write_text(json.dumps(summary, indent=2))
    log(f"{'passed' if summary['passed'] else 'failed'} in {summary['total_s']:.0f} s (summary: {CACHE / 'last.json'})")
    return return_code


SRC = REPO
WORK = CACHE / "work"
CPUINFO = CACHE / "cpuinfo.aarch64"

if __name__ == "__main__":
    sys.exit(main())
