"""``python -m station``: the same as the ``station`` console script."""

import sys

from station.cli.main import main

sys.exit(main())
