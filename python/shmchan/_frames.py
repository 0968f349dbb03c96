"""Frames' meta: flags and timestamps (shmchan::frame_meta)."""
from __future__ import annotations

from typing import Optional


class FrameFlags:
    """Frame flag bits (shmchan::frame_flags); bits 16-31 are the application's."""
    KEYFRAME = 1 << 0
    DISCONT = 1 << 1
    GAP = 1 << 2
    HEADER = 1 << 3
    DROPPABLE = 1 << 4
    CORRUPTED = 1 << 5
    MARKER = 1 << 6
    RESYNC = 1 << 7
    LIVE = 1 << 8
    DECODE_ONLY = 1 << 9
    SYNC_AFTER = 1 << 10
    NON_DROPPABLE = 1 << 11
    APPLICATION = 0xFFFF0000


class FrameMeta:
    """A frame's timestamps (ns), offsets, flags and user header; None means unset."""
    __slots__ = ("pts", "dts", "duration", "offset", "offset_end", "flags", "user")

    def __init__(self, pts: Optional[int] = None, dts: Optional[int] = None, duration: Optional[int] = None,
                 offset: Optional[int] = None, offset_end: Optional[int] = None, flags: int = 0,
                 user: bytes = b"") -> None:
        self.pts, self.dts, self.duration = pts, dts, duration
        self.offset, self.offset_end, self.flags, self.user = offset, offset_end, flags, user

    def _tuple(self) -> tuple:
        return (self.pts, self.dts, self.duration, self.offset, self.offset_end, self.flags, self.user)

    def __repr__(self) -> str:
        return ("FrameMeta(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FrameMeta) and self._tuple() == other._tuple()
