"""shmchan: zero-copy shared-memory channels, from Python.

Reads are memoryviews into the ring (``numpy.frombuffer(view, dtype)`` costs no copy), writes
take any bytes-like object (buffer protocol) or fill a loaned region of the ring in place.
Blocking calls release the GIL and can be interrupted with Ctrl-C. See docs/python.md.

    import shmchan, numpy
    ch = shmchan.create_channel(capacity=8 << 20)
    send_elsewhere(json.dumps(ch.reader_ref))
    ch.writer.write(numpy.arange(1000, dtype=numpy.float32))
    ch.writer.close()

    r = shmchan.open_reader(ref)          # in the other process
    for view in r:                        # valid until the next item
        total += numpy.frombuffer(view, dtype=numpy.float32).sum()
"""
from __future__ import annotations

import asyncio
import json
import os
from typing import Any, AsyncIterator, Callable, Iterator, List, Optional

from . import _shmchan

__all__ = [
    "create_channel", "open_reader", "open_writer", "is_channel_ref", "extract_channel_refs",
    "Channel", "Reader", "Writer", "Loan", "Item", "FrameMeta", "FrameFlags", "Gap", "ReaderStatus",
    "Error", "WouldBlock", "Timeout", "InvalidRef", "WrongDirection", "BadKey", "AlreadyClaimed",
    "SegmentMissing", "NoSpace", "PermissionDenied", "PeerLost", "PeerClosed", "Aborted", "Closed",
    "TooLarge", "Corrupt", "InvalidArgument", "SystemFailure", "EngineUnreachable", "ProtocolError",
    "Forked", "HeldLimit", "DataLost", "NoMemory", "InternalError", "__version__",
]

__version__ = _shmchan.library_version

from ._errors import (Aborted, AlreadyClaimed, BadKey, Closed, Corrupt, EngineUnreachable, Error, Forked,
                      HeldLimit, DataLost, InternalError, InvalidArgument, InvalidRef, NoMemory, NoSpace, PeerClosed,
                      PeerLost, PermissionDenied, ProtocolError, SegmentMissing, SystemFailure, Timeout,
                      TooLarge, WouldBlock, WrongDirection, _make_error)

from ._fanout import Gap, ReaderStatus, _data_lost, _overflow_of, _readers_of
from ._frames import FrameFlags, FrameMeta
from ._refs import RefLike, _ref_json, extract_channel_refs, is_channel_ref

_shmchan._set_error_factory(_make_error)

_TRANSPORTS = {"auto": 0, "shm": 1, "socket": 2}


def _options(capacity: Optional[int], max_held: int, transport: str, engine: Optional[str],
             spin_us: Optional[int], prefault: bool, rmw_wakes: bool = False) -> dict:
    if transport not in _TRANSPORTS:
        raise ValueError(f"transport must be one of {sorted(_TRANSPORTS)}, not {transport!r}")
    if max_held < 1:
        raise ValueError("max_held must be at least 1")
    if capacity is not None and capacity <= 0:
        raise ValueError("capacity must be positive")
    return dict(capacity=capacity or 0, max_held=max_held, transport=_TRANSPORTS[transport],
                engine=engine, spin_us=-1 if spin_us is None else spin_us, prefault=bool(prefault),
                rmw_wakes=bool(rmw_wakes))


def _ms(timeout: Optional[float]) -> int:
    """Seconds (None: for ever) to the C ABI's milliseconds."""
    if timeout is None:
        return -1
    if timeout < 0:
        raise ValueError("timeout cannot be negative (None waits for ever)")
    return min(int(timeout * 1000), 2**31 - 1)


# --- reader ------------------------------------------------------------------------------------


class Item:
    """One thing read: kind "chunk", "frame", "message", "gap" or "end". ``data`` is a read-only
    memoryview into the ring (chunks and frames), valid until the item is released (and, with
    max_held 1, until the reader's next call); ``bytes(item.data)`` keeps a copy. ``text`` is a
    message's text; ``meta`` (and ``pts``, ``dts``, ... ) a frame's; ``gap`` a gap's Gap
    (``records`` and ``bytes`` missed before the next item, overflow "drop_oldest" only)."""
    __slots__ = ("kind", "data", "text", "meta", "gap", "_id", "_reader", "_source")

    def __init__(self, kind: str, data: Optional[memoryview], text: Optional[str],
                 meta: Optional[FrameMeta], id_: int, reader: Optional["Reader"],
                 source: Optional["Reader"] = None, gap: Optional[Gap] = None) -> None:
        self.kind, self.data, self.text, self.meta, self.gap = kind, data, text, meta, gap
        self._id, self._reader, self._source = id_, reader, source

    @property
    def intact(self) -> bool:
        """Whether the bytes read from this item so far were whole. Under overflow "drop_oldest"
        the writer never waits, so a view held while the reader fell a ring behind can be
        overwritten: check after using the bytes. Always True under "block" while the item is
        held; False once it is released (or, with max_held 1, after the reader's next call)."""
        if self.kind == "end":
            return True
        return self._source is not None and self._source._intact(self._id)

    def __getattr__(self, name: str) -> Any:
        if name in FrameMeta.__slots__:
            return getattr(self.meta, name) if self.meta is not None else (0 if name == "flags" else None)
        raise AttributeError(name)

    def release(self) -> None:
        """Gives the item's space back to the writer now (with max_held > 1, from any thread)."""
        if self.data is not None:
            try:
                self.data.release()
            except BufferError:
                pass  # still exported (a numpy array): the caller keeps it at their own risk
        if self._reader is not None and self._id:
            self._reader._release(self._id)
            self._reader = None

    def __enter__(self) -> "Item":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        if self.kind == "gap":
            return f"Item(kind='gap', gap={self.gap!r})"
        size = None if self.data is None else self.data.nbytes
        return f"Item(kind={self.kind!r}, size={size}, text={self.text!r}, meta={self.meta!r})"


_KINDS = {_shmchan.ITEM_CHUNK: "chunk", _shmchan.ITEM_MESSAGE: "message", _shmchan.ITEM_END: "end",
          _shmchan.ITEM_FRAME: "frame", _shmchan.ITEM_GAP: "gap"}


class Reader:
    """The read end. Iterating yields read-only memoryviews of the binary chunks and frames
    (valid until the next item; text messages go to ``on_message``); ``items()`` yields Item
    objects; ``async for`` works under asyncio. One thread at a time."""

    def __init__(self, native: Any, max_held: int = 1) -> None:
        self._r = native
        self._max_held = max_held
        self.on_message: Optional[Callable[[str], None]] = None

    def next(self, timeout: Optional[float] = None) -> Item:
        """The next chunk, frame, message or end (kind "end", then again "end"). Raises
        Timeout, Aborted (``.reason``), PeerLost, Corrupt, HeldLimit, ..."""
        kind, payload, id_, meta = self._r.next(_ms(timeout))
        return self._item(kind, payload, id_, meta)

    def try_next(self) -> Optional[Item]:
        """As next(), never blocking: None when nothing is there yet."""
        try:
            kind, payload, id_, meta = self._r.next(0)
        except WouldBlock:
            return None
        return self._item(kind, payload, id_, meta)

    def _item(self, kind: int, payload: Any, id_: int, meta: Optional[tuple]) -> Item:
        k = _KINDS[kind]
        held = self if self._max_held > 1 else None
        if k == "message":
            return Item(k, None, payload, None, id_, held, self)
        if k == "gap":
            return Item(k, None, None, None, id_, held, self, Gap(*payload))
        return Item(k, payload, None, FrameMeta(*meta) if meta is not None else None, id_, held, self)

    def _release(self, id_: int) -> None:
        if self._r is not None:
            self._r.release(id_)

    def _intact(self, id_: int) -> bool:
        return self._r is not None and self._r.intact(id_)

    def items(self, timeout: Optional[float] = None) -> Iterator[Item]:
        """Every item up to the end (which is not yielded), gaps included."""
        while True:
            it = self.next(timeout)
            if it.kind == "end":
                return
            yield it

    def _binary(self, it: Item) -> Optional[memoryview]:
        # The byte stream has a hole: the forms that promise every byte must not skip it.
        if it.kind == "gap":
            it.release()
            g = it.gap or Gap(0, 0)
            raise _data_lost(f"{g.records} records ({g.bytes} bytes) were overwritten before this reader "
                             "read them (overflow drop_oldest); items() yields the gap")
        if it.kind == "message":
            if self.on_message is not None:
                self.on_message(it.text or "")
            it.release()
            return None
        return it.data

    def __iter__(self) -> Iterator[memoryview]:
        """The binary views up to the end; DataLost at a gap (items() shows gaps as items)."""
        for it in self.items():
            view = self._binary(it)
            if view is not None:
                yield view

    def read_all(self, timeout: Optional[float] = None) -> bytes:
        """Every binary byte up to the end, as bytes. DataLost if the stream has a gap, or if a
        chunk was overwritten while it was copied (overflow "drop_oldest")."""
        out = bytearray()
        for it in self.items(timeout):
            view = self._binary(it)
            if view is not None:
                out += view
                if not it.intact:
                    raise _data_lost("a chunk was overwritten while it was read (overflow drop_oldest)")
                it.release()
        return bytes(out)

    def fileno(self) -> int:
        """An fd that polls readable when an item may be there (for select and asyncio)."""
        return self._r.fileno()

    async def anext(self) -> Item:
        """next() for asyncio: waits on fileno() with loop.add_reader, never blocks the loop."""
        loop = asyncio.get_running_loop()
        while True:
            it = self.try_next()
            if it is not None:
                return it
            fd = self.fileno()
            ready = loop.create_future()
            loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
            try:
                # Recheck once the reader is registered: an item that came in between would
                # not otherwise wake us.
                it = self.try_next()
                if it is not None:
                    return it
                await ready
            finally:
                loop.remove_reader(fd)
            try:
                os.read(fd, 8)  # clear the event
            except BlockingIOError:
                pass

    async def aitems(self) -> AsyncIterator[Item]:
        """items() for asyncio."""
        while True:
            it = await self.anext()
            if it.kind == "end":
                return
            yield it

    async def __aiter__(self) -> AsyncIterator[memoryview]:
        async for it in self.aitems():
            view = self._binary(it)
            if view is not None:
                yield view

    @property
    def abort_reason(self) -> str:
        """The writer's reason after Aborted ("" otherwise)."""
        return self._r.abort_reason()

    @property
    def bytes_read(self) -> int:
        return self._r.bytes_read()

    def close(self) -> None:
        """Stops reading (a writer still writing gets PeerClosed). Idempotent."""
        if self._r is not None:
            self._r.free()

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --- writer ------------------------------------------------------------------------------------


class Loan:
    """A region of the ring loaned to the writer. ``view`` is a writable memoryview of it
    (``numpy.frombuffer(loan.view, dtype)``, ``f.readinto(loan.view)``).
    ``commit(used)`` publishes the first ``used`` bytes; as a context manager it commits
    everything on a clean exit (unless already committed) and abandons on an exception. After
    commit or abandon the views must not be used."""
    __slots__ = ("_l", "view", "_frame")

    def __init__(self, native: Any, frame: bool) -> None:
        self._l = native
        self.view = memoryview(native)
        self._frame = frame

    def __len__(self) -> int:
        return self.view.nbytes

    @property
    def address(self) -> int:
        """Where the loaned bytes are in this process (to check that they are in the ring)."""
        return self._l.state()[3]

    @property
    def is_open(self) -> bool:
        return bool(self._l.state()[0])

    def _end_views(self) -> None:
        try:
            self.view.release()
        except BufferError:
            pass  # still exported elsewhere: the caller's to drop

    def commit(self, used: Optional[int] = None, *, pts: Optional[int] = None, dts: Optional[int] = None,
               duration: Optional[int] = None, offset: Optional[int] = None, offset_end: Optional[int] = None,
               flags: int = 0, user: bytes = b"", meta: Optional[FrameMeta] = None) -> None:
        """Publishes the first ``used`` bytes (default: all); a frame loan with its meta.
        A user header longer than 256 bytes raises InvalidArgument and publishes nothing: the
        loan (and its view) stays open, to commit again or abandon."""
        m = None
        if self._frame:
            m = (meta or FrameMeta(pts, dts, duration, offset, offset_end, flags, user))._tuple()
        self._l.commit(-1 if used is None else used, m)
        self._end_views()

    def abandon(self) -> None:
        """Gives the region back unpublished."""
        self._end_views()
        self._l.abandon()

    def __enter__(self) -> "Loan":
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if not self.is_open:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abandon()


class Writer:
    """The write end. One thread at a time. As a context manager it closes on a clean exit and
    aborts (with the exception as reason) on an exception."""

    def __init__(self, native: Any) -> None:
        self._w = native

    def write(self, data: Any, timeout: Optional[float] = None) -> None:
        """Copies any bytes-like object (bytes, bytearray, memoryview, numpy array) straight into
        the ring, split into records as needed; waits while the ring is full."""
        self._w.write(data, _ms(timeout))

    def loan(self, size: int, timeout: Optional[float] = None) -> Loan:
        """Zero copy: ``size`` bytes inside the ring to fill in place, then ``commit()``."""
        return Loan(self._w.loan(size, _ms(timeout), False), False)

    def frame_loan(self, size: int, timeout: Optional[float] = None) -> Loan:
        """A loan committed as one frame: ``loan.commit(used, pts=..., flags=...)``."""
        return Loan(self._w.loan(size, _ms(timeout), True), True)

    def write_frame(self, data: Any, *, pts: Optional[int] = None, dts: Optional[int] = None,
                    duration: Optional[int] = None, offset: Optional[int] = None,
                    offset_end: Optional[int] = None, flags: int = 0, user: bytes = b"",
                    meta: Optional[FrameMeta] = None, timeout: Optional[float] = None) -> None:
        """One frame with its meta, delivered whole (TooLarge beyond ``max_frame``)."""
        m = meta or FrameMeta(pts, dts, duration, offset, offset_end, flags, user)
        self._w.write_frame(data, m._tuple(), _ms(timeout))

    def send_message(self, text: str, timeout: Optional[float] = None) -> None:
        """A text message, in order with the binary data."""
        self._w.send_message(text, _ms(timeout))

    def close(self, timeout: Optional[float] = None) -> None:
        """Ends the stream cleanly."""
        self._w.close(_ms(timeout))

    def abort(self, reason: str) -> None:
        """Ends the stream as broken: the reader gets Aborted with this reason."""
        self._w.abort(reason)

    def wait_drained(self, timeout: Optional[float] = None) -> None:
        """Waits until the reader has consumed everything committed. With several readers:
        until every reader still attached has; then PeerLost if one died, PeerClosed if one
        left early (``readers()`` says which)."""
        self._w.wait_drained(_ms(timeout))

    def readers(self) -> List[ReaderStatus]:
        """The channel's readers as this writer sees them now, in the order of the reader refs:
        state ("waiting", "reading", "done", "left", "lost"), position (``released``) and pid.
        Empty on the engine's socket path."""
        return [ReaderStatus(*t) for t in self._w.readers()]

    def fileno(self) -> int:
        """An fd that polls readable when a write may make progress."""
        return self._w.fileno()

    @property
    def bytes_written(self) -> int:
        return self._w.stats()[0]

    @property
    def max_record(self) -> int:
        return self._w.stats()[1]

    @property
    def max_frame(self) -> int:
        return self._w.stats()[2]

    def free(self) -> None:
        """Gives the handle back now (an open stream is aborted, as when garbage-collected)."""
        self._w.free()

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort(f"{exc_type.__name__}: {exc}")


# --- channels ----------------------------------------------------------------------------------


class Channel:
    """A new channel: its local ``writer`` and ``reader`` and the refs (dicts, JSON-serialisable,
    iii's shape) to hand to other processes. ``reader_refs`` has one ref per reader (each with
    its own key, claimed once); ``reader_ref`` and the local ``reader`` are reader 0's."""

    def __init__(self, writer_ref: str, reader_refs: List[str], writer: Writer, reader: Reader) -> None:
        self.writer_ref: dict = json.loads(writer_ref)
        self.reader_refs: List[dict] = [json.loads(r) for r in reader_refs]
        self.reader_ref: dict = self.reader_refs[0]
        self.writer = writer
        self.reader = reader

    def __repr__(self) -> str:
        return f"Channel({self.writer_ref.get('channel_id')!r})"


def create_channel(capacity: Optional[int] = None, *, max_held: int = 1, spin_us: Optional[int] = None,
                   readers: int = 1, overflow: str = "block", prefault: bool = True,
                   rmw_wakes: bool = False) -> Channel:
    """Creates a channel in this host's shared memory (capacity: ring bytes, rounded up to a
    power of two; default 4 MiB) with ``readers`` readers (1 to 64, a ref each in
    ``reader_refs``). ``overflow`` when the ring is full: "block" (the writer waits for the
    slowest reader still attached; lossless) or "drop_oldest" (the writer never waits; a reader
    a ring behind gets a "gap" item). ``prefault=False``: the local ends do not map the whole
    ring when first used; its pages fault in as touched (many idle channels, or a process that
    must not stall on a large ring). ``rmw_wakes=True``: the local ends wake their peer with a
    read-modify-write, so that a peer sleeping on them skips its membarrier (ends that wake once
    per message or batch, as a bridge does; channel_options::rmw_wakes). Raises ValueError for a bad count or policy, NoSpace,
    InvalidArgument."""
    o = _options(capacity, max_held, "auto", None, spin_us, prefault, rmw_wakes)
    o.update(readers=_readers_of(readers), overflow=_overflow_of(overflow))
    wref, rrefs, w, r = _shmchan.create_channel(**o)
    return Channel(wref, rrefs, Writer(w), Reader(r, max_held))


def open_reader(ref: RefLike, *, max_held: int = 1, transport: str = "auto", engine: Optional[str] = None,
                spin_us: Optional[int] = None, prefault: bool = True, rmw_wakes: bool = False) -> Reader:
    """Opens the read end from a reader ref (dict or JSON) and claims it. Raises InvalidRef,
    WrongDirection, BadKey, AlreadyClaimed, SegmentMissing, EngineUnreachable, ..."""
    o = _options(None, max_held, transport, engine, spin_us, prefault, rmw_wakes)
    return Reader(_shmchan.open_reader(_ref_json(ref), **o), max_held)


def open_writer(ref: RefLike, *, transport: str = "auto", engine: Optional[str] = None,
                spin_us: Optional[int] = None, prefault: bool = True, rmw_wakes: bool = False) -> Writer:
    """Opens the write end from a writer ref (dict or JSON) and claims it."""
    o = _options(None, 1, transport, engine, spin_us, prefault, rmw_wakes)
    return Writer(_shmchan.open_writer(_ref_json(ref), **o))
