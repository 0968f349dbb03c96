"""shmchan's exception classes: one per C ABI error code, under shmchan.Error."""



class Error(Exception):
    """Base of every shmchan error. ``code`` is the C ABI's negative code, ``name`` its short
    name ("peer_lost"), ``message`` what went wrong."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(message or name)
        self.code = code
        self.name = name
        self.message = message


class WouldBlock(Error):
    """A non-blocking call (timeout 0) could not proceed now."""


class Timeout(Error, TimeoutError):
    """The timeout passed first."""


class InvalidRef(Error, ValueError):
    """A malformed or forged channel ref."""


class WrongDirection(Error):
    """A reader ref used to open a writer, or the reverse."""


class BadKey(Error):
    """The ref's access key does not match the channel."""


class AlreadyClaimed(Error):
    """This end of the channel is held by someone else."""


class SegmentMissing(Error):
    """The channel's shared memory is gone (or not on this host)."""


class NoSpace(Error):
    """/dev/shm cannot hold the channel."""


class PermissionDenied(Error, PermissionError):
    """The segment belongs to another user."""


class PeerLost(Error):
    """The other end's process died."""


class PeerClosed(Error):
    """The reader went away before the writer finished."""


class Aborted(Error):
    """The writer aborted the stream; ``reason`` is the writer's reason."""

    def __init__(self, code: int, name: str, message: str, reason: str = "") -> None:
        super().__init__(code, name, message)
        self.reason = reason


class Closed(Error):
    """This end was already closed."""


class TooLarge(Error, ValueError):
    """A message, frame or loan larger than the channel can hold at once."""


class Corrupt(Error):
    """The segment holds impossible values."""


class InvalidArgument(Error, ValueError):
    """A bad argument or option value."""


class SystemFailure(Error, OSError):
    """An unexpected operating-system failure."""


class EngineUnreachable(Error, ConnectionError):
    """No engine answers at the given address."""


class ProtocolError(Error):
    """The engine or a peer broke the wire protocol."""


class Forked(Error):
    """The end belongs to the parent of this forked process."""


class HeldLimit(Error):
    """The reader holds max_held items: release one first."""


class DataLost(Error):
    """Overflow drop-oldest: records were overwritten before this reader got them."""


class NoMemory(Error, MemoryError):
    """Allocation failed inside the library."""


class InternalError(Error):
    """An unexpected failure inside the library."""


_ERRORS = {
    "would_block": WouldBlock, "timeout": Timeout, "invalid_ref": InvalidRef,
    "wrong_direction": WrongDirection, "bad_key": BadKey, "already_claimed": AlreadyClaimed,
    "segment_missing": SegmentMissing, "no_space": NoSpace, "permission_denied": PermissionDenied,
    "peer_lost": PeerLost, "peer_closed": PeerClosed, "aborted": Aborted, "closed": Closed,
    "too_large": TooLarge, "corrupt": Corrupt, "invalid_argument": InvalidArgument,
    "system_error": SystemFailure, "engine_unreachable": EngineUnreachable,
    "protocol_error": ProtocolError, "forked": Forked, "held_limit": HeldLimit,
    "data_lost": DataLost,
    "no_memory": NoMemory, "internal": InternalError,
}


def _make_error(code: int, name: str, message: str, reason: str) -> Error:
    cls = _ERRORS.get(name, Error)
    if cls is Aborted:
        return Aborted(code, name, message, reason)
    return cls(code, name, message)


