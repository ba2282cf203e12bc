"""``python -m minidl.assignments``: see :mod:`minidl.assignments.cli`."""

import sys

from minidl.assignments.cli import main

sys.exit(main())
