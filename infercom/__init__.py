# SPDX-License-Identifier: GPL-3.0-or-later
"""gr-infercom core link library: pure numpy/numba building blocks of the InferCom uplink.

No GNU Radio and no torch are imported from this package (see docs/internals.md).
"""

__version__ = "0.1.0"
