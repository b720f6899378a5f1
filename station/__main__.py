"""``python -m station``: the same as the ``station`` console script."""

import sys

from station.cli.main import main

if __name__ == "__main__":  # not when a bench run's process (spawn) imports it
    sys.exit(main())
