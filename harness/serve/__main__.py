"""`python -m harness.serve`: the command line lives in harness.serve.cli."""

import sys

from harness.serve.cli import main

sys.exit(main())
