"""User-facing errors.

Anything a user can cause (a missing file, a tampered artifact, a wrong frame size, an unsafe
pickle) raises :class:`EdgeflowError` with a one-line message that says what to do. The CLI prints
that line and exits non-zero instead of showing a traceback.
"""


class EdgeflowError(Exception):
    """A problem the user can fix; ``str(err)`` is a single actionable line."""


class ArtifactError(EdgeflowError):
    """The artifact directory is missing, incomplete, tampered with or of an unknown format."""


class InputError(EdgeflowError):
    """A frame, file or argument does not have the expected shape, type or content."""


class SourceError(EdgeflowError):
    """A frame source cannot be opened or read: unknown URI, missing file, absent camera."""


class SourceTimeout(SourceError):
    """``Source.read(timeout=...)`` got no frame in time; the source is still open, read again."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (or its type name): libraries like onnxruntime
    raise pages of context, and our errors are one line."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
