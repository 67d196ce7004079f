"""What an open live page (``edgeflow run --serve``) costs the stream: throughput with a viewer vs without.

One process, one model, the bundled clip decoded in a loop as fast as the model takes it (``block``
policy, so throughput is the model's pace). Three conditions, alternated round by round so drift in
the host's load hits them alike:

* ``bare``: the stream with no live page;
* ``serve-idle``: the live page's server running, nobody connected;
* ``serve-viewer``: a viewer connected for the whole round, pulling every picture and statistic the
  server pushes (a separate process with aiohttp's WebSocket client, receiving and discarding: on a
  device the browser runs on another machine, so its rendering is not the device's cost).

Throughput = results per second of wall time over the round (the stream's own ``fps``), and per
second of this process's CPU time, and the CPU time of the page's own threads (its event loop and encoding
worker, ``time.thread_time`` measured by the server itself) as a share of the process's: on a busy host wall-clock throughput swings with
other processes, CPU time does not. The cost is ``1 - serve-viewer / bare``; target < 2 %.

    python benchmarks/bench_serve.py [--seconds 20] [--rounds 3] [--threads 1] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLIP = ROOT / "edgeflow" / "data" / "sample.mp4"
CONDITIONS = ("bare", "serve-idle", "serve-viewer")

VIEWER = r"""
import asyncio, sys, time, aiohttp
url, seconds = sys.argv[1], float(sys.argv[2])
async def main():
    pictures = stats = 0
    deadline = time.monotonic() + seconds + 30
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                ws = await s.ws_connect(url)
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
        else:
            print("0 0"); return
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY: pictures += 1
            elif msg.type == aiohttp.WSMsgType.TEXT: stats += 1
            else: break
    print(pictures, stats)
asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def one_round(model, condition: str, seconds: float) -> dict:
    from edgeflow.sources import open_source
    from edgeflow.stream import Stream
    from edgeflow.watch import WatchSink

    sinks, viewer, watch = [], None, None
    if condition != "bare":
        port = free_port()
        watch = WatchSink("127.0.0.1", port)
        sinks.append(watch)
        if condition == "serve-viewer":  # connects (retrying) as soon as the server is up
            viewer = subprocess.Popen([sys.executable, "-c", VIEWER, f"ws://127.0.0.1:{port}/ws", str(seconds)],
                                      stdout=subprocess.PIPE, text=True)
    source = open_source(str(CLIP), loop=True)
    c0 = cpu_s()
    with Stream(model, source, sinks=sinks, duration=seconds, drop_policy="block") as stream:
        for _ in stream:
            pass
    page_cpu = watch.cpu_s if watch is not None else None  # the page's own account of its CPU time
    cpu = cpu_s() - c0
    report = stream.report
    row = {"condition": condition, "results": report.count, "fps": report.fps,
           "wall_s": report.duration_s, "cpu_s": cpu, "results_per_cpu_s": report.count / cpu if cpu else None,
           "inference_median_ms": report.stages["inference"].median, "sink_median_ms": report.stages["sink"].median}
    if watch is not None:
        row["pictures_taken"] = watch.pictures_taken
        row["picture_interval_s_at_end"] = watch.picture_interval  # stretched by the CPU governor when over budget
    if page_cpu is not None:
        row["page_cpu_s"] = page_cpu
        row["page_cpu_share"] = page_cpu / cpu if cpu else None
    if viewer is not None:
        out, _ = viewer.communicate(timeout=60)
        pictures, stats = (int(x) for x in (out.split() or ["0", "0"])[:2])
        row.update({"viewer_pictures": pictures, "viewer_stats_messages": stats})
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds per round (default 20)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per condition (default 3: a viewer open for a minute)")
    ap.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "bench_serve.json"))
    args = ap.parse_args(argv)

    import edgeflow

    load_before = os.getloadavg()
    model = edgeflow.load(None, threads=args.threads)
    rows = []
    try:
        one_round(model, "bare", 3.0)  # warm-up: sessions, decoder, page template
        for r in range(args.rounds):
            order = CONDITIONS if r % 2 == 0 else tuple(reversed(CONDITIONS))
            for condition in order:
                row = one_round(model, condition, args.seconds)
                row["round"] = r
                rows.append(row)
                print(f"round {r} {condition:13s} {row['fps']:.3f} results/s, {row['results_per_cpu_s']:.3f} per CPU s"
                      + (f", viewer got {row['viewer_pictures']} pictures" if "viewer_pictures" in row else ""), flush=True)
    finally:
        model.close()
    load_after = os.getloadavg()

    def med(cond, key):
        return statistics.median(r[key] for r in rows if r["condition"] == cond)

    summary = {c: {"fps": med(c, "fps"), "results_per_cpu_s": med(c, "results_per_cpu_s")} for c in CONDITIONS}
    viewer_rows = [r for r in rows if r["condition"] == "serve-viewer" and r.get("page_cpu_share") is not None]
    if viewer_rows:
        summary["serve-viewer"]["page_cpu_share"] = statistics.median(r["page_cpu_share"] for r in viewer_rows)
        summary["serve-viewer"]["viewer_pictures_per_s"] = statistics.median(r["viewer_pictures"] / r["wall_s"] for r in viewer_rows)
    base = summary["bare"]
    ratios = {c: {"wall": summary[c]["fps"] / base["fps"], "cpu": summary[c]["results_per_cpu_s"] / base["results_per_cpu_s"]}
              for c in CONDITIONS[1:]}
    per_round = [next(x for x in rows if x["round"] == r and x["condition"] == "serve-viewer")["fps"]
                 / next(x for x in rows if x["round"] == r and x["condition"] == "bare")["fps"] for r in range(args.rounds)]
    doc = {
        "what": "stream throughput with the live page's server and a connected viewer vs none (bundled model, "
                "bundled clip looped, block policy)",
        "settings": {"seconds": args.seconds, "rounds": args.rounds, "threads": args.threads, "clip": CLIP.name},
        "host": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": load_after},
        "rows": rows, "median": summary, "ratio_to_bare": ratios, "viewer_over_bare_per_round": per_round,
        "cost_percent": {"wall": 100 * (1 - ratios["serve-viewer"]["wall"]), "cpu": 100 * (1 - ratios["serve-viewer"]["cpu"]),
                         "page_threads_share_of_cpu": 100 * summary["serve-viewer"].get("page_cpu_share", float("nan"))},
        "target_cost_percent": 2.0,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({"median": summary, "ratio_to_bare": ratios, "cost_percent": doc["cost_percent"],
                      "loadavg": [load_before, load_after]}, indent=2))
    print(f"json: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
