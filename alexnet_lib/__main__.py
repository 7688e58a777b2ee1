"""``python -m alexnet_lib``: see :mod:`alexnet_lib.cli`."""

from .cli import main

raise SystemExit(main())
