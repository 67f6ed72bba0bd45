"""``python -m ablate``."""

import sys

from ablate.cli import main

sys.exit(main())
