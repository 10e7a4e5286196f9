"""Show frame numbers in finding messages in the user's own numbering.

Checks write messages with internal 0-based frames ("track 3 at frame 41: ..."), while the
JSON ``frames`` field and the report use the input's numbering (MOT counts from 1). A MOT
user reading "frame 41" next to ``"frames": [42, 42]`` would open the wrong frame, so every
message shown to users goes through :func:`user_message`.
"""

from __future__ import annotations

import re

__all__ = ["user_message"]

_FRAME_REF = re.compile(r"\b(frames?) (\d+)(?:(\s?[-–]\s?|\.\.)(\d+))?")


def user_message(message: str, frame_base: int) -> str:
    """``message`` with every "frame N" / "frames N-M" shifted by ``frame_base``.

    Counts ("for 38 frames", "12 frames later") are left alone: only a number *after* the
    word frame is a frame number.

    >>> user_message("track 3 at frame 41: jump (back at frame 45); for 38 frames", 1)
    'track 3 at frame 42: jump (back at frame 46); for 38 frames'
    >>> user_message("frames 10-12", 1)
    'frames 11-13'
    """
    if not frame_base:
        return message

    def shift(m: re.Match[str]) -> str:
        out = f"{m.group(1)} {int(m.group(2)) + frame_base}"
        if m.group(4) is not None:
            out += f"{m.group(3)}{int(m.group(4)) + frame_base}"
        return out

    return _FRAME_REF.sub(shift, message)
