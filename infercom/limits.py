# SPDX-License-Identifier: GPL-3.0-or-later
"""The link's limits and sizes, defined once.

What the frame header (:mod:`infercom.header`) can carry bounds everything else: the link configuration
(:class:`infercom.link.LinkConfig`), the source coder (:mod:`infercom.source`), the power profiles
(:mod:`infercom.power`), the ZeroMQ schema (:mod:`infercom.protocol`) and image validation all take their
limits from this table, so they cannot drift apart (a drift would be a wire-format bug). This module imports
nothing but numpy, so every other module can import it.

The header's bit layout (``infercom.header._FIELDS``) is checked against :data:`FIELD_RANGES` when the header
module is imported: each range must fit its field's bits, and all but ``frame_len_log2`` fill them exactly.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PROFILES", "CHANNELS", "MAX_TX_ID", "MAX_IMAGE_ID", "MAX_ATTEMPT", "MAX_FRAMES", "MAX_BLOCK",
           "MAX_PLANES", "MAX_SIDE", "DESIGN_SNR_MIN_DB", "DESIGN_SNR_MAX_DB", "MAX_KEY_ID",
           "MIN_FRAME_LEN_LOG2", "MAX_FRAME_LEN_LOG2", "MIN_SPS", "MAX_SPS", "FIELD_RANGES", "check_field",
           "check_channels"]

#: power profile names, in the order of their header / wire code (index = code)
PROFILES = ("importance", "equal")
#: colour channels an image may have
CHANNELS = (1, 3)

#: transmitter id 0..MAX_TX_ID
MAX_TX_ID = 255
#: image sequence number 0..MAX_IMAGE_ID (per transmitter; wraps)
MAX_IMAGE_ID = 4095
#: attempt number 0..MAX_ATTEMPT (0 = first transmission), so at most MAX_ATTEMPT + 1 attempts
MAX_ATTEMPT = 15
#: frames per image: frame_idx 0..MAX_FRAMES-1
MAX_FRAMES = 4096
#: block size bh, bw: 1..MAX_BLOCK
MAX_BLOCK = 8
#: bit planes sent: 1..MAX_PLANES (a value has 8 bits)
MAX_PLANES = 8
#: image height and width: 1..MAX_SIDE pixels
MAX_SIDE = 4096
#: design Es/N0 of the importance profile, integer dB, inclusive
DESIGN_SNR_MIN_DB = -16
DESIGN_SNR_MAX_DB = 15
#: interleaver key id 0..MAX_KEY_ID (0 = the public default key)
MAX_KEY_ID = 15
#: data symbols per frame = 2**frame_len_log2, frame_len_log2 in MIN..MAX
MIN_FRAME_LEN_LOG2 = 4
MAX_FRAME_LEN_LOG2 = 16
#: samples per symbol of the sample-level waveform the receiver takes (infercom.frame.FrameFormat)
MIN_SPS = 2
MAX_SPS = 16

#: inclusive (low, high) of every integer header field
FIELD_RANGES = {
    "tx_id": (0, MAX_TX_ID),
    "image_id": (0, MAX_IMAGE_ID),
    "attempt": (0, MAX_ATTEMPT),
    "frame_idx": (0, MAX_FRAMES - 1),
    "bh": (1, MAX_BLOCK),
    "bw": (1, MAX_BLOCK),
    "planes": (1, MAX_PLANES),
    "design_snr_db": (DESIGN_SNR_MIN_DB, DESIGN_SNR_MAX_DB),
    "key_id": (0, MAX_KEY_ID),
    "height": (1, MAX_SIDE),
    "width": (1, MAX_SIDE),
    "frame_len_log2": (MIN_FRAME_LEN_LOG2, MAX_FRAME_LEN_LOG2),
}


def check_field(name: str, value, what: str = "") -> int:
    """``value`` as an int if it is an integer (not a bool) within ``FIELD_RANGES[name]``; else ValueError
    ``"<what> <name> must be an integer in lo..hi, got <value>"``."""
    lo, hi = FIELD_RANGES[name]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"{what + ' ' if what else ''}{name} must be an integer in {lo}..{hi}, got {value!r}")
    return int(value)


def check_channels(value, what: str = "") -> int:
    """``value`` as an int if it is an integer (not a bool) in :data:`CHANNELS`; else ValueError
    ``"<what> channels must be 1 or 3, got <value>"``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value not in CHANNELS:
        raise ValueError(f"{what + ' ' if what else ''}channels must be 1 or 3, got {value!r}")
    return int(value)
