"""Several readers of one channel (docs/readers.md): the options that make them, what a reader
is told when it was lapped (a gap), and what the writer sees of each reader."""
from __future__ import annotations

from typing import Any, NamedTuple

from . import _shmchan
from ._errors import DataLost, _make_error

MAX_READERS = 64

# The names are the C++ overflow_policy's (the CLI spells the second "drop-oldest").
_OVERFLOWS = {"block": _shmchan.OVERFLOW_BLOCK, "drop_oldest": _shmchan.OVERFLOW_DROP_OLDEST}


def _readers_of(readers: Any) -> int:
    # bool is an int to Python, but readers=True is a mistake, not one reader.
    if isinstance(readers, bool) or not isinstance(readers, int):
        raise TypeError(f"readers must be an int, not {type(readers).__name__}")
    if not 1 <= readers <= MAX_READERS:
        raise ValueError(f"readers must be between 1 and {MAX_READERS}, not {readers}")
    return readers


def _overflow_of(overflow: Any) -> int:
    if overflow not in _OVERFLOWS:
        raise ValueError(f"overflow must be one of {sorted(_OVERFLOWS)}, not {overflow!r}")
    return _OVERFLOWS[overflow]


class Gap(NamedTuple):
    """What a reader of a ``drop_oldest`` channel missed before its next item: the writer
    overwrote whole records it had not read."""
    records: int
    bytes: int


def _data_lost(what: str) -> DataLost:
    """The DataLost that reading "everything" raises on a gap or an overwritten view, as C++
    read_all answers errc::data_lost."""
    err = _make_error(_shmchan.E_DATA_LOST, "data_lost", what, "")
    assert isinstance(err, DataLost)
    return err


class ReaderStatus(NamedTuple):
    """One reader as the writer sees it (``Writer.readers()``, shmchan::reader_status).

    ``state``: "waiting" (its ref not used yet), "reading", "done" (closed after releasing
    everything committed), "left" (closed early) or "lost" (its process died).
    ``released``: ring bytes it released so far (record headers included), its position; the
    reader furthest behind holds the ring under ``block``. ``pid``: for display only."""
    state: str
    released: int
    pid: int
