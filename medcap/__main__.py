"""`python -m medcap ...` entry point."""

import sys

from medcap.cli import main

if __name__ == "__main__":
    sys.exit(main())
