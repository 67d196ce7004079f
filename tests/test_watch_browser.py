"""The live page in a real headless Chromium (Debian's ``chromium``), driven over the DevTools protocol.

`edgeflow run --serve 127.0.0.1:0` streams synthetic:// frames in real time; Chromium loads the page; the test
reads the page's own counters (``window.edgeflowWatch``) to check that pictures arrive and change,
and the canvas pixels to check that the latency chart is drawn; then it takes a screenshot.
Skips (with the reason) where no Chromium is installed: ``.ci/run`` installs it on Debian hosts.

``EDGEFLOW_SCREENSHOT=docs/img/watch.png`` also writes the screenshot there (how the one in
docs/watch.md was made), after a longer run so the chart has history.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"]

#: What the page reports about itself (pictures shown, their frame ids, chart draws, lit chart pixels).
PROBE = """(() => {
  const W = window.edgeflowWatch || {};
  const c = document.getElementById('chart');
  let lit = 0;
  if (c && c.width && c.height) {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) if (d[i] > 90 || d[i + 1] > 90 || d[i + 2] > 90) lit++;
  }
  const img = document.getElementById('picture'), flow = document.getElementById('flowpic');
  return JSON.stringify({pictures: W.pictures || 0, ids: W.frameIds || [], draws: W.chartDraws || 0,
    history: (W.history || []).length, lit: lit, img: img ? [img.naturalWidth, img.naturalHeight] : [0, 0], flow: flow ? [flow.naturalWidth, flow.naturalHeight] : [0, 0],
    drift: document.getElementById('drift').textContent, fps: document.getElementById('fps').textContent});
})()"""


def find_browser():
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class DevTools:
    """The few DevTools-protocol calls the test needs, over aiohttp's WebSocket client."""

    def __init__(self, ws):
        self.ws, self.next_id = ws, 0

    async def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        await self.ws.send_str(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads((await self.ws.receive(timeout=60)).data)
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def evaluate(self, expression):
        res = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return res.get("result", {}).get("value")


def start_run(tmp_path, seconds):
    # synthetic:// is the bundled clip's generator (real photos moving), endless and paced like a camera
    cmd = [sys.executable, "-m", "edgeflow", "run", "--source", "synthetic://?width=320&height=240&fps=15",
           "--realtime", "--duration", str(seconds),
           "--serve", "127.0.0.1:0", "--threads", "1", "--slo-p95-ms", "1000000", "--no-status", "--quiet",
           "--report", str(tmp_path / "report.json")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, lines = time.monotonic() + 180, []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = re.match(r"serve: (http://\S+)", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    pytest.fail("edgeflow run --serve did not print its address:\n" + "".join(lines))


def start_browser(browser, profile):
    proc = subprocess.Popen([browser, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = Path(profile) / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if port_file.is_file() and port_file.read_text().strip():
            return proc, int(port_file.read_text().split()[0])
        if proc.poll() is not None:
            pytest.fail(f"{browser} exited with status {proc.returncode} before opening its DevTools port")
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"{browser} did not open its DevTools port within 60 s")


async def watch_page(devtools_port, url, want_history, screenshot):
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{devtools_port}/json/list") as resp:
            targets = await resp.json(content_type=None)
        page = next(t for t in targets if t.get("type") == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=64 * 2**20) as ws:
            dt = DevTools(ws)
            await dt.call("Emulation.setDeviceMetricsOverride", width=1280, height=860, deviceScaleFactor=1, mobile=False)
            await dt.call("Page.enable")
            await dt.call("Page.navigate", url=url)
            states, deadline = [], time.monotonic() + 150
            while time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                state = json.loads(await dt.evaluate(PROBE) or "{}")
                states.append(state)
                if len(set(state.get("ids", []))) >= 2 and state.get("history", 0) >= want_history and state.get("lit", 0) > 200:
                    break
            shot = await dt.call("Page.captureScreenshot", format="png")
            png = base64.b64decode(shot["data"])
            screenshot.write_bytes(png)
            title = await dt.evaluate("document.title")
            return states, title


def test_live_page_in_headless_chromium(tmp_path):
    pytest.importorskip("aiohttp")
    browser = find_browser()
    if browser is None:
        pytest.skip("no Chromium on this host (Debian: apt-get install chromium; .ci/run installs it)")
    target = os.environ.get("EDGEFLOW_SCREENSHOT")
    want_history = 45 if target else 4
    run, url = start_run(tmp_path, seconds=120 if target else 60)
    profile = tempfile.mkdtemp(prefix="edgeflow-chromium-", dir=tmp_path)
    chrome = None
    try:
        chrome, port = start_browser(browser, profile)
        shot = tmp_path / "watch.png"
        states, title = asyncio.run(watch_page(port, url, want_history, shot))
    finally:
        if chrome is not None:
            chrome.terminate()
            try:
                chrome.wait(10)
            except subprocess.TimeoutExpired:
                chrome.kill()
        run.send_signal(signal.SIGINT)
        try:
            run.wait(60)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait()
    last = states[-1]
    assert title == "edgeflow live"
    ids = last["ids"]
    assert len(set(ids)) >= 2, f"the picture did not update: {states[-3:]}"
    assert ids == sorted(ids), "a newer picture was followed by an older one"
    assert min(last["img"]) > 0 and min(last["flow"]) > 0, "the pictures never decoded"
    assert last["draws"] >= 2 and last["history"] >= want_history
    assert last["lit"] > 200, "the chart canvas stayed blank"
    assert last["fps"] not in ("", "-")
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert run.returncode in (0, 130), run.stderr.read()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["slo"]["met"] is True and report["input_drift"]["reference"] is True
    if target:
        Path(target).write_bytes(png)
