"""`python -m dq_assets.generator`: the `dq-generate` command line."""

import sys

from dq_assets.generator.cli import main

sys.exit(main())
