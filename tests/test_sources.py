"""Frame sources on real encoded files (H.264 .mp4/.mkv, MJPEG .avi), image folders, the
synthetic generator, and the live machinery with fake devices. Hardware sources skip when the
device or module is absent. Fast: tiny frames, a dozen of them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from edgeflow.errors import EdgeflowError, SourceError, SourceTimeout
from edgeflow.sources import Frame, create_source, open_source, parse_uri
from edgeflow.sources.live import LiveSource
from edgeflow.sources.uri import redact

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

W, H, N, FPS = 128, 96, 12, 25
RED = (slice(8, 40), slice(8, 40))  # rows, cols of a pure red square in every frame
BLUE = (slice(56, 88), slice(88, 120))


def pick_h264_encoder() -> str:
    """libx264 where PyAV's FFmpeg has it, else the generic 'h264' name, else MPEG-4 part 2."""
    for name in ("libx264", "h264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001
            continue
    pytest.skip("PyAV has no H.264 or MPEG-4 encoder")


H264 = pick_h264_encoder()


def synthetic_frame(i: int) -> np.ndarray:
    """Smooth moving gradient (compresses evenly, so a truncated file still has whole frames)
    with a red and a blue square at fixed places for the colour-order check."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    g = 128 + 60 * np.sin((x + 3 * i) / 9.0) * np.cos(y / 11.0)
    img = np.stack([g, np.roll(g, 7, axis=1), 255 - g], axis=2).clip(0, 255).astype(np.uint8)
    img[RED] = (255, 0, 0)
    img[BLUE] = (0, 0, 255)
    return img


def encode(path, codec: str, n: int = N, fps: int = FPS, fmt_options=None) -> str:
    container = av.open(str(path), "w", options=fmt_options or {})
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = W, H
    stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    if codec in ("libx264", "h264"):
        stream.options = {"g": "4", "bf": "2"}  # several keyframes and B-frames (reordered PTS)
    for i in range(n):
        for packet in stream.encode(av.VideoFrame.from_ndarray(synthetic_frame(i), format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return str(path)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    out = {
        "mp4": encode(d / "clip.mp4", H264),
        "mp4_faststart": encode(d / "fast.mp4", H264, fmt_options={"movflags": "+faststart"}),
        "mkv": encode(d / "clip.mkv", H264),
        "avi": encode(d / "clip.avi", "mjpeg"),
    }
    print(f"\nencoders used: H.264 -> {H264!r}, MJPEG -> 'mjpeg' (PyAV {av.__version__})")
    return out


def damaged(src: str, dst, how: str) -> str:
    data = bytearray(open(src, "rb").read())
    if how == "truncate":
        data = data[: len(data) // 2]
    else:  # garbage bytes in the middle
        mid = len(data) // 2
        data[mid : mid + 1500] = np.random.default_rng(7).integers(0, 256, 1500, dtype=np.uint8).tobytes()
    with open(dst, "wb") as f:
        f.write(bytes(data))
    return str(dst)


def check_frames(frames, n=N):
    assert len(frames) == n
    for i, f in enumerate(frames):
        assert isinstance(f, Frame)
        assert f.index == i
        assert f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 and f.image.flags.c_contiguous
        assert f.dropped_before == 0
    ts = [f.timestamp for f in frames]
    sensor = [f.sensor_ts for f in frames]
    assert all(b >= a for a, b in zip(ts, ts[1:]))
    assert all(b > a for a, b in zip(sensor, sensor[1:]))
    np.testing.assert_allclose(sensor, np.arange(n) / FPS + sensor[0], atol=2e-3)


def is_red(region):
    r, g, b = region.reshape(-1, 3).mean(axis=0)
    return r > 200 and g < 60 and b < 60


def is_blue(region):
    r, g, b = region.reshape(-1, 3).mean(axis=0)
    return b > 200 and r < 60 and g < 60


# ------------------------------------------------------------------------------ video files
@pytest.mark.parametrize("kind", ["mp4", "mkv", "avi"])
@pytest.mark.parametrize("backend", ["pyav", "opencv"])
def test_video_frames_size_timestamps_colour(videos, kind, backend):
    with open_source(videos[kind], backend=backend) as src:
        assert not src.is_live and src.backend == backend
        frames = list(src)
        assert src.end_reason == "eof"
        assert src.fps == pytest.approx(FPS)
        assert src.read() is None  # stays ended
    check_frames(frames)
    for f in (frames[0], frames[-1]):
        assert is_red(f.image[RED[0], RED[1]][4:-4, 4:-4]), "decoded frame is not RGB"
        assert is_blue(f.image[BLUE[0], BLUE[1]][4:-4, 4:-4])
    assert src.closed and src.end_reason == "eof"


def test_realtime_pacing(videos):
    with open_source(videos["mp4"], realtime=True) as src:
        frames = list(src)
    elapsed = frames[-1].timestamp - frames[0].timestamp
    expected = (N - 1) / FPS  # 0.44 s
    assert 0.75 * expected < elapsed < expected + 2.0  # lower bound: paced; upper: generous for a busy CI host
    with open_source(videos["mp4"]) as fast:
        frames = list(fast)
    assert frames[-1].timestamp - frames[0].timestamp < expected


def test_loop_continues_clock(videos):
    with open_source(videos["avi"], loop=True) as src:
        frames = [src.read() for _ in range(2 * N + 3)]
    assert [f.index for f in frames] == list(range(2 * N + 3))
    sensor = [f.sensor_ts for f in frames]
    assert all(b > a for a, b in zip(sensor, sensor[1:]))
    np.testing.assert_allclose(np.diff(sensor), 1 / FPS, atol=2e-3)
    np.testing.assert_array_equal(frames[N].image, frames[0].image)
    assert src.end_reason == "closed"


@pytest.mark.parametrize("kind,how", [
    ("mp4", "truncate"),  # moov box is at the end: nothing left to decode
    ("mp4_faststart", "truncate"),  # index intact: the first frames decode
    ("avi", "truncate"),
    ("mkv", "truncate"),
    ("mp4", "garbage"),
    ("avi", "garbage"),
    ("mkv", "garbage"),
])
@pytest.mark.parametrize("backend", ["pyav", "opencv"])
def test_damaged_video_ends_cleanly(videos, tmp_path, kind, how, backend):
    path = damaged(videos[kind], tmp_path / f"bad_{kind}{os.path.splitext(videos[kind])[1]}", how)
    t0 = time.monotonic()
    with open_source(path, backend=backend, threads=1) as src:
        frames = list(src)  # must not raise
        assert src.read() is None
    assert time.monotonic() - t0 < 10
    assert len(frames) < N
    assert src.end_reason.startswith("corrupt: "), src.end_reason
    assert "\n" not in src.end_reason
    for f in frames:
        assert f.image.shape == (H, W, 3)
    if backend == "pyav" and (kind, how) == ("mp4_faststart", "truncate"):
        assert len(frames) >= 1  # frames decoded before the damage are delivered
    if backend == "pyav" and (kind, how) == ("mp4", "garbage"):
        # undecodable packets are skipped, decoding resumes at the next keyframe
        assert "undecodable packet" in src.end_reason
        gap = [f for f in frames if f.dropped_before]
        assert gap and gap[0].sensor_ts == pytest.approx((gap[0].index + gap[0].dropped_before) / FPS)
        assert src.frames_dropped == sum(f.dropped_before for f in frames) <= N - len(frames)
        with open_source(path, backend=backend, threads=1, on_error="stop") as stop:
            assert len(list(stop)) < len(frames)
        assert stop.end_reason.startswith("corrupt: ")


def test_missing_and_non_video_files(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        open_source(str(tmp_path / "nope.mp4"))
    text = tmp_path / "notes.mp4"
    text.write_text("hello, not a video\n" * 20)
    with pytest.raises(SourceError, match="not a video"):
        open_source(str(text))
    for backend in ("pyav", "opencv"):
        with pytest.raises(SourceError, match="not a video"):
            open_source(str(text), backend=backend)


def test_unknown_scheme_and_options(videos):
    with pytest.raises(SourceError, match="unknown source scheme 'ftp://'.*supported: picamera2://N"):
        open_source("ftp://example.com/clip.mp4")
    with pytest.raises(SourceError, match="unknown option 'speed'.*accepted options"):
        open_source(videos["mp4"], speed=2)
    with pytest.raises(SourceError, match="realtime='maybe' is not a valid bool"):
        open_source(videos["mp4"], realtime="maybe")
    assert issubclass(SourceError, EdgeflowError)


def test_uri_parsing(tmp_path, videos):
    folder = tmp_path / "imgs"
    folder.mkdir()
    cases = {
        "picamera2://1": ("picamera2", 1),
        "csi://0?width=1920&height=1080": ("csi", 0),
        "csi://": ("csi", 0),
        "/dev/video2": ("v4l2", "/dev/video2"),
        "v4l2://3": ("v4l2", "/dev/video3"),
        "v4l2:///dev/video4": ("v4l2", "/dev/video4"),
        "rtsp://cam.local:8554/live?x=1": ("rtsp", "rtsp://cam.local:8554/live?x=1"),
        "synthetic://?width=64&frames=5": ("synthetic", ""),
        videos["mp4"]: ("video", videos["mp4"]),
        "file://" + videos["avi"]: ("video", videos["avi"]),
        str(folder): ("images", str(folder)),
        str(folder / "*.png"): ("images", str(folder / "*.png")),
    }
    for uri, (kind, location) in cases.items():
        parsed = parse_uri(uri)
        assert (parsed.kind, parsed.location) == (kind, location), uri
    assert parse_uri("csi://0?width=1920&height=1080").options == {"width": "1920", "height": "1080"}
    for bad in ("", "csi://left", "synthetic://foo", "bogus://x"):
        with pytest.raises(SourceError):
            parse_uri(bad)
    assert redact("rtsp://admin:hunter2@10.0.0.2/stream") == "rtsp://admin:***@10.0.0.2/stream"
    src = create_source("csi://0?width=640&height=480&fps=15")  # built, not opened: no hardware needed
    assert "width=640,height=480,framerate=15/1" in src.pipeline
    assert src.pipeline.startswith("nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM)")
    assert src.pipeline.endswith("appsink drop=true max-buffers=1")
    src.close()


# ----------------------------------------------------------------------------- image folders
def write_png(path, image):
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def test_image_folder_natural_order_and_skips(tmp_path, caplog):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (1, 2, 10, 11):
        img = np.full((H, W, 3), i * 10, np.uint8)
        img[RED] = (255, 0, 0)
        write_png(folder / f"img{i}.png", img)
    (folder / "img3.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"broken" * 10)  # unreadable
    (folder / "notes.txt").write_text("not an image")
    with caplog.at_level("WARNING", logger="edgeflow.sources"):
        with open_source(str(folder)) as src:
            frames = list(src)
    assert [int(f.image[-1, -1, 0]) for f in frames] == [10, 20, 100, 110]  # img1, img2, img10, img11
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert src.frames_skipped == 1 and src.skipped_paths == [str(folder / "img3.png")]
    assert [f.dropped_before for f in frames] == [0, 0, 1, 0]  # a stream counts the bad image as a drop
    assert "img3.png" in caplog.text
    assert all(is_red(f.image[RED]) for f in frames)
    assert [f.sensor_ts for f in frames] == pytest.approx([0, 1 / 30, 2 / 30, 3 / 30])
    assert src.end_reason == "eof"

    with open_source(str(folder / "img1*.png"), backend="pil") as glob_src:  # img1, img10, img11
        got = [int(f.image[0, 0, 0]) for f in glob_src]
    assert got == [10, 100, 110]


def test_image_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no images found"):
        open_source(str(empty))
    with pytest.raises(SourceError, match="no images found"):
        open_source(str(tmp_path / "*.jpg"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"nope")
    with open_source(str(bad)) as src:
        assert src.read() is None
    assert src.frames_skipped == 1 and src.end_reason.startswith("corrupt: none of the 1 images")


# ---------------------------------------------------------------------------------- synthetic
def test_synthetic_ground_truth_flow():
    synthetic = pytest.importorskip("edgeflow.synthetic")
    with open_source("synthetic://?width=64&height=48&frames=5&seed=3&fps=10") as src:
        frames = list(src)
    assert len(frames) == 5 and src.end_reason == "eof"
    assert "flow" not in frames[0].extras
    reference = synthetic.SyntheticSequence(48, 64, 3, length=5)
    for t, f in enumerate(frames):
        assert f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8
        assert f.sensor_ts == pytest.approx(t / 10)
        np.testing.assert_array_equal(f.image, reference.frame(t))
        if t:
            flow = f.extras["flow"]
            assert flow.shape == (48, 64, 2) and flow.dtype == np.float32
            assert f.extras["flow_valid"].shape == (48, 64)
            np.testing.assert_array_equal(flow, reference.flow(t - 1)[0])
    with pytest.raises(SourceError):
        open_source("synthetic://?width=4&height=4")


# ------------------------------------------------------------------------- live machinery
class FakeDevice:
    """A producer for the thin seam: counts frames, can fail opens/reads on cue."""

    def __init__(self, fail_reads_after=None, failing_opens=0, period=0.0):
        self.n = 0
        self.fail_reads_after = fail_reads_after
        self.failing_opens = failing_opens
        self.period = period
        self.open_times = []
        self.opens = 0
        self.closes = 0

    def open(self):
        self.open_times.append(time.monotonic())
        if self.opens and self.failing_opens > 0:  # the first open (at start) always works
            self.failing_opens -= 1
            raise OSError("device vanished")
        self.opens += 1
        return self

    def read(self, handle):
        if self.period:
            time.sleep(self.period)
        if self.fail_reads_after is not None and self.n >= self.fail_reads_after:
            self.fail_reads_after = None  # one disconnect
            raise OSError("read failed: device unplugged")
        self.n += 1
        return np.full((4, 4, 3), self.n % 256, np.uint8), self.n / 1000.0

    def close(self, handle):
        self.closes += 1


class FakeCamera(LiveSource):
    """A LiveSource over FakeDevice: exercises the same seam the camera modules use."""

    OPTIONS = LiveSource.LIVE_OPTIONS

    def __init__(self, device, **live):
        super().__init__("fake://0", **live)
        self.device = device

    def _device_open(self):
        return self.device.open()

    def _device_read(self, handle):
        return self.device.read(handle)

    def _device_close(self, handle):
        self.device.close(handle)


def test_live_source_has_no_thread_of_its_own():
    """One capture layer: the live source reads the device in the caller's thread (the stream's
    capture thread), so it delivers every frame the device hands over, in order, and drops none."""
    baseline = threading.active_count()
    dev = FakeDevice()
    src = FakeCamera(dev).open()
    assert threading.active_count() == baseline
    frames = [src.read(timeout=2) for _ in range(8)]
    assert threading.active_count() == baseline
    assert [int(round(f.sensor_ts * 1000)) for f in frames] == list(range(1, 9))
    assert all(f.dropped_before == 0 for f in frames) and src.frames_dropped == 0
    src.close()
    assert dev.closes == dev.opens == 1


def test_live_source_reconnects_with_backoff():
    dev = FakeDevice(fail_reads_after=5, failing_opens=3)
    src = FakeCamera(dev, backoff_initial=0.02, backoff_max=0.05, max_retries=10).open()
    deadline = time.monotonic() + 5
    while dev.n < 20 and time.monotonic() < deadline:
        src.read(timeout=2)
    src.close()
    assert dev.n >= 20, "frames did not resume after the disconnect"
    assert src.disconnects == 1 and src.reconnects == 1
    assert "device vanished" in src.last_error or "unplugged" in src.last_error
    gaps = np.diff(dev.open_times[1:])  # waits between reconnect attempts: 0.04, 0.05 (capped), 0.05
    assert len(dev.open_times) == 5
    assert gaps[0] >= 0.035 and gaps[1] >= 0.045 and gaps[2] >= 0.045
    assert dev.closes == dev.opens == 2


def test_live_source_bad_frame_is_delivered_as_invalid_not_an_end():
    class Glitchy(FakeDevice):
        def read(self, handle):
            raw, ts = super().read(handle)
            return (np.zeros((4, 4), np.float32), ts) if self.n == 2 else (raw, ts)

    src = FakeCamera(Glitchy()).open()
    frames = [src.read(timeout=2) for _ in range(3)]
    src.close()
    assert frames[1].image is None and "dtype" in frames[1].extras["invalid"]
    assert frames[0].image.shape == frames[2].image.shape == (4, 4, 3)


def test_iterable_source_passes_bad_items_on_for_the_stream_to_drop():
    from edgeflow.sources import IterableSource

    good = np.zeros((16, 16, 3), np.uint8)
    grey = np.zeros((16, 16), np.uint8)
    with IterableSource([good, None, np.zeros((16, 16, 3), np.float32), grey]) as src:
        frames = list(src)
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert frames[0].image.shape == frames[3].image.shape == (16, 16, 3)  # grey made RGB
    assert frames[2].image.dtype == np.float32  # passed on unchanged: the stream drops it
    assert src.end_reason == "eof"


def test_live_source_gives_up_after_max_retries_without_leaks():
    baseline = threading.active_count()
    dev = FakeDevice(fail_reads_after=3, failing_opens=1000)
    src = FakeCamera(dev, backoff_initial=0.01, backoff_max=0.02, max_retries=3).open()
    assert src.is_live
    frames = list(src)
    assert 1 <= len(frames) <= 3
    assert src.end_reason == "disconnected"
    assert len(dev.open_times) == 1 + 3
    src.close()
    assert threading.active_count() == baseline
    assert dev.closes == dev.opens == 1


def test_live_source_timeout_and_close_from_other_thread():
    baseline = threading.active_count()
    dev = FakeDevice(fail_reads_after=1, failing_opens=1000)
    src = FakeCamera(dev, backoff_initial=5.0, backoff_max=5.0, max_retries=-1).open()
    assert src.read(timeout=2) is not None
    with pytest.raises(SourceTimeout):  # lost, next reconnect due in 5 s: the timeout wins
        src.read(timeout=0.05)
    closer = threading.Timer(0.05, src.close)
    closer.start()
    assert src.read() is None  # woken by close() during the back-off wait
    closer.join()
    assert src.end_reason == "closed"
    assert threading.active_count() == baseline
    assert dev.closes == dev.opens == 1


def test_close_during_a_blocked_device_read_releases_once_in_the_reader():
    release = threading.Event()

    class Blocking(FakeDevice):
        def read(self, handle):
            if self.n >= 1:
                release.wait(5)
            return super().read(handle)

    dev = Blocking()
    src = FakeCamera(dev).open()
    assert src.read() is not None
    got = []
    reader = threading.Thread(target=lambda: got.append(src.read()))
    reader.start()
    while not src._reading:
        time.sleep(0.005)
    src.close()  # the device is mid-read: it must not be released under the library's feet
    assert dev.closes == 0
    release.set()
    reader.join(5)
    assert got == [None] and dev.closes == dev.opens == 1 and src.end_reason == "closed"


def test_live_pipeline_over_real_decoder(videos):
    """The RTSP seam (PyAV) on a local file: no server here, but the decoder and
    reconnect-at-end-of-stream run for real. The file 'disconnects' at its end."""
    baseline = threading.active_count()
    src = create_source("rtsp://placeholder", backoff_initial=0.01, backoff_max=0.02)
    src._url = videos["mp4"]
    with src:
        frames = [src.read(timeout=5) for _ in range(3 * N // 2)]
    assert all(f.image.shape == (H, W, 3) and is_red(f.image[RED][4:-4, 4:-4]) for f in frames)
    assert [f.index for f in frames] == list(range(len(frames)))
    assert src.reconnects >= 1 and src.frames_dropped == 0
    assert threading.active_count() == baseline


def test_no_thread_leaks_for_file_sources(videos):
    baseline = threading.active_count()
    for _ in range(3):
        with open_source(videos["mp4"]) as src:
            src.read()
    assert threading.active_count() == baseline


def test_runtime_never_imports_torch():
    code = (
        "import sys, edgeflow.sources as s\n"
        "import edgeflow.sources.video, edgeflow.sources.images, edgeflow.sources.live\n"
        "import edgeflow.sources.v4l2, edgeflow.sources.rtsp, edgeflow.sources.csi\n"
        "import edgeflow.sources.picamera2, edgeflow.sources.synthetic\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------- hardware (skip if absent)
def _read_some(uri, n=3):
    with open_source(uri, max_retries=0) as src:
        assert src.is_live
        frames = [src.read(timeout=10) for _ in range(n)]
    assert all(f.image.ndim == 3 and f.image.shape[2] == 3 and f.image.dtype == np.uint8 for f in frames)
    assert all(b.timestamp >= a.timestamp for a, b in zip(frames, frames[1:]))
    return frames


def test_v4l2_camera():
    if not os.path.exists("/dev/video0"):
        pytest.skip("no /dev/video0")
    _read_some("/dev/video0")


def test_csi_camera():
    from edgeflow.sources.opencv_capture import has_gstreamer

    if not has_gstreamer(cv2) or not os.path.exists("/usr/sbin/nvargus-daemon"):
        pytest.skip("no Jetson CSI stack (OpenCV with GStreamer + nvargus-daemon)")
    _read_some("csi://0")


def test_picamera2_camera():
    pytest.importorskip("picamera2")
    frames = _read_some("picamera2://0")
    assert all(f.sensor_ts is not None for f in frames)
    assert all(b.sensor_ts > a.sensor_ts for a, b in zip(frames, frames[1:]))


# ------------------------------------------------ camera seams against fake libraries (no hardware)
class FakeVideoCapture:
    """Stands in for cv2.VideoCapture: records how it was opened, serves BGR frames, can unplug."""

    instances: list = []
    frames_before_unplug = None
    unplugged = False

    def __init__(self, target, api, *params):
        self.target, self.api, self.props, self.n = target, api, {}, 0
        self.opened = not FakeVideoCapture.unplugged
        FakeVideoCapture.instances.append(self)

    def isOpened(self):
        return self.opened

    def set(self, prop, value):
        self.props[prop] = value
        return True

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else (self.n * 10.0 if prop == cv2.CAP_PROP_POS_MSEC else 0.0)

    def read(self):
        time.sleep(0.002)
        limit = FakeVideoCapture.frames_before_unplug
        if FakeVideoCapture.unplugged or (limit is not None and self.n >= limit):
            FakeVideoCapture.unplugged = True
            return False, None
        self.n += 1
        bgr = np.zeros((H, W, 3), np.uint8)
        bgr[RED] = (0, 0, 255)  # red, in OpenCV's BGR order
        return True, bgr

    def release(self):
        self.opened = False


@pytest.fixture
def fake_cv2_capture(monkeypatch):
    FakeVideoCapture.instances = []
    FakeVideoCapture.frames_before_unplug = None
    FakeVideoCapture.unplugged = False
    monkeypatch.setattr(cv2, "VideoCapture", FakeVideoCapture)
    return FakeVideoCapture


def test_csi_seam_builds_pipeline_for_gstreamer(fake_cv2_capture, monkeypatch):
    import edgeflow.sources.opencv_capture as ocv

    monkeypatch.setattr(ocv, "has_gstreamer", lambda _cv2: True)
    with open_source("csi://1?width=640&height=480&fps=60", max_retries=0) as src:
        frame = src.read(timeout=2)
    cap = fake_cv2_capture.instances[0]
    assert cap.api == cv2.CAP_GSTREAMER
    assert cap.target == (
        "nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM),width=640,height=480,framerate=60/1 ! "
        "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1"
    )
    # newest-frame policy: frame n (CAP_PROP_POS_MSEC = 10 n) with n >= 1, earlier ones counted as dropped
    n = round(frame.sensor_ts / 0.01)
    assert is_red(frame.image[RED]) and n >= 1 and frame.sensor_ts == pytest.approx(n * 0.01)
    assert frame.dropped_before == n - 1
    assert not cap.opened  # released on close


def test_v4l2_seam_unplug_reconnect_then_disconnected(fake_cv2_capture, monkeypatch):
    real_exists = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda p: p == "/dev/video7" or real_exists(p))
    fake_cv2_capture.frames_before_unplug = 5
    baseline = threading.active_count()
    src = open_source("v4l2://7", width=320, height=240, fps=30, fourcc="MJPG",
                      backoff_initial=0.01, backoff_max=0.02, max_retries=3)
    cap = fake_cv2_capture.instances[0]
    assert (cap.target, cap.api) == (7, cv2.CAP_V4L2)
    assert cap.props[cv2.CAP_PROP_BUFFERSIZE] == 1 and cap.props[cv2.CAP_PROP_FRAME_WIDTH] == 320
    assert cap.props[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter_fourcc(*"MJPG")
    frames = list(src)  # ends by itself: unplugged, 3 failed reconnects
    assert 1 <= len(frames) <= 5 and all(is_red(f.image[RED]) for f in frames)
    assert src.end_reason == "disconnected"
    assert len(fake_cv2_capture.instances) == 1 + 3  # start + 3 reconnect attempts
    assert not any(c.opened for c in fake_cv2_capture.instances)
    src.close()
    assert threading.active_count() == baseline


def test_picamera2_seam_with_fake_module(monkeypatch):
    import types

    log = {"released": 0, "requests": 0, "stopped": 0, "closed": 0}

    class FakeRequest:
        def __init__(self, n):
            self.n = n

        def make_array(self, name):
            assert name == "main"
            bgr = np.zeros((48, 64, 3), np.uint8)
            bgr[:, :, 0] = 255  # RGB888 is B, G, R in memory: this is a blue frame
            return bgr

        def get_metadata(self):
            return {"SensorTimestamp": 1_000_000_000 + self.n * 33_333_333, "ExposureTime": 1000}

        def release(self):
            log["released"] += 1

    class FakePicamera2:
        def __init__(self, camera_num=0):
            if camera_num != 0:
                raise IndexError("list index out of range")
            self.n = 0

        def create_video_configuration(self, main, controls, queue):
            log["config"] = (main, controls, queue)
            return {"main": main}

        def configure(self, config):
            pass

        def start(self):
            pass

        def capture_request(self, wait=None):
            time.sleep(0.005)
            self.n += 1
            log["requests"] += 1
            log["wait"] = wait
            return FakeRequest(self.n)

        def stop(self):
            log["stopped"] += 1

        def close(self):
            log["closed"] += 1

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    with open_source("picamera2://0?width=64&height=48&fps=30") as src:
        frames = [src.read(timeout=2) for _ in range(3)]
    assert log["config"] == ({"size": (64, 48), "format": "RGB888"}, {"FrameRate": 30.0}, False)
    for f in frames:
        assert f.image.shape == (48, 64, 3)
        assert f.image[..., 2].min() == 255 and f.image[..., 0].max() == 0  # blue in RGB
    assert all(b.sensor_ts > a.sensor_ts for a, b in zip(frames, frames[1:]))
    assert frames[0].sensor_ts == pytest.approx(1.0, abs=0.5)
    assert log["released"] == log["requests"] and log["stopped"] == log["closed"] == 1
    assert log["wait"] == 5.0
    with pytest.raises(SourceError, match="cannot open Raspberry Pi camera 2"):
        open_source("picamera2://2")
