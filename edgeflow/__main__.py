import sys

from edgeflow.cli import main

sys.exit(main())
