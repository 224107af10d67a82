# SPDX-License-Identifier: GPL-3.0-or-later
"""5G-NR-like baseline link (TS 38.212 transport chain), pure numpy/numba; see docs/nr.md."""
