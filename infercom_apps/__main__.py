# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m infercom_apps ...`` = the ``infercom`` console script."""

import sys

from .cli import main

sys.exit(main())
