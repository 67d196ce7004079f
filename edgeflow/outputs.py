"""Files the user names for output (``--report``, ``--save``, ``--jsonl``, ``--csv``): checked
before any work starts, and written so that no reader sees half a file and no planted link is
followed.

Why up front: a stream can run for hours; finding out at the end that ``--report`` points into a
folder that does not accept files loses the whole run. :func:`check_writable` answers the
question with the operating system itself (it creates and removes a file of its own in the target
folder), so it holds for root, read-only mounts and ACLs alike, and it never touches the
user's file.

Why :func:`atomic_write_text` uses ``mkstemp``: a fixed temp name (``.report.json.tmp-PID``) can be
guessed and planted as a symlink pointing at a file the writer would then overwrite; ``mkstemp``
creates a new file with ``O_EXCL`` and an unpredictable name, and ``os.replace`` swaps it in
(replacing a link at the target itself, never writing through it).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edgeflow.errors import InputError

__all__ = ["atomic_write_text", "check_writable"]


def _existing_ancestor(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_writable(path, flag: str = "output") -> Path:
    """Raise a one-line :class:`InputError` unless ``path`` can be written: it is not a folder,
    its folder exists or can be created, and that folder accepts new files. Creates nothing that
    outlives the call (a missing folder is created later, by the writer)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(f"{flag} {path} is a folder; give a file name")
    folder = path.parent if str(path.parent) else Path(".")
    base = _existing_ancestor(folder)
    if not base.is_dir():
        raise InputError(f"{flag} {path}: {base} is not a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{flag} {path} is not writable")
    try:
        fd, probe = tempfile.mkstemp(dir=base, prefix=".edgeflow-write-check-")
    except OSError as err:
        raise InputError(f"{flag} {path}: cannot write in {base} ({err.strerror or err})") from None
    os.close(fd)
    os.unlink(probe)
    return path


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` via a fresh temp file in the same folder and ``os.replace``:
    readers see the old file or the new one, never a part; the temp name is unpredictable and
    created exclusively, so a symlink planted in the folder is never followed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; a report is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def current_umask() -> int:
    """The process umask, read without changing it where Linux tells it (setting and restoring
    it would briefly apply 022 to files other threads create). Reports and artifacts both use it."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
