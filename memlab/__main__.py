"""`python -m memlab ...`: the memlab command line."""

import sys

from memlab.cli import main

sys.exit(main())
