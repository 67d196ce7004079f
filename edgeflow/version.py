"""The runtime's version, in a leaf module.

Why not only in ``edgeflow/__init__``: modules inside the package (the stream's run record, the
CLI, ``info``) read it from here, so nothing below the package imports the package back up.
"""

__version__ = "0.1.0"
