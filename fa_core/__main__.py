"""Entry point of ``python -m fa_core``."""

import sys

from .cli import main

sys.exit(main())
