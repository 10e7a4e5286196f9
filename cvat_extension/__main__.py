"""``python -m cvat_extension`` is ``cvat-track``."""

from __future__ import annotations

import sys

from cvat_extension.adapters.cli.main import main

sys.exit(main())
