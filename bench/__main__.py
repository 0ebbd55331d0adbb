"""`python -m bench [--quick] [--profile] ...`: see `bench.cli`."""

import sys

from bench.cli import main

sys.exit(main())
