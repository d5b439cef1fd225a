"""`python -m tg_magic.cli`: the same as the `tg-magic` command."""

import sys

from . import main

sys.exit(main())
