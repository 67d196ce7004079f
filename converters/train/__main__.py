"""``python -m converters.train ...`` is ``edgeflow train ...`` (same arguments)."""

import sys

from edgeflow.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
