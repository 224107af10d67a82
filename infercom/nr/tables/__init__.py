# SPDX-License-Identifier: GPL-3.0-or-later
"""Data tables of the NR baseline (generated; see :mod:`infercom.nr.make_tables`)."""
