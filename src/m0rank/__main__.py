"""``python -m m0rank`` is the ``m0rank`` command."""

import sys

from m0rank.cli.main import main

sys.exit(main())
