"""`python -m cairn.cli ARGS` runs the `cairn` command (tests and benches start it so)."""
import sys

from cairn.cli.main import main

sys.exit(main())
