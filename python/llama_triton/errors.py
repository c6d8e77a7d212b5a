"""Exceptions: every failing C call becomes a LlamaTritonError subclass carrying the C
library's message (which names the file, the field and expected vs actual) and its status."""

STATUS_NAMES = (
    "LLT_OK",
    "LLT_ERR_INVALID_ARG",
    "LLT_ERR_IO",
    "LLT_ERR_FORMAT",
    "LLT_ERR_UNSUPPORTED",
    "LLT_ERR_NOMEM",
    "LLT_ERR_FULL",
    "LLT_ERR_STATE",
    "LLT_ERR_DEVICE",
    "LLT_ERR_NOT_FOUND",
    "LLT_ERR_CANCELLED",
)


class LlamaTritonError(Exception):
    """Base of every error this package raises on purpose.

    status: the C llt_status value (int), message: the C message (str)."""

    status = None

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    @property
    def status_name(self):
        s = self.status
        return STATUS_NAMES[s] if s is not None and 0 <= s < len(STATUS_NAMES) else None


class InvalidArgumentError(LlamaTritonError, ValueError):
    status = 1


class FileError(LlamaTritonError, OSError):
    status = 2


class FormatError(LlamaTritonError):
    status = 3


class UnsupportedError(LlamaTritonError):
    status = 4


class OutOfMemoryError(LlamaTritonError, MemoryError):
    status = 5


class CacheFullError(LlamaTritonError):
    status = 6


class StateError(LlamaTritonError):
    status = 7


class DeviceError(LlamaTritonError):
    status = 8


class NotFoundError(LlamaTritonError, LookupError):
    status = 9


class CancelledError(LlamaTritonError):
    status = 10


class ClosedError(StateError):
    """A handle was used after close() (or closed twice where that is not allowed)."""


class LibraryNotFoundError(LlamaTritonError, ImportError):
    """libllama_triton.so could not be found or loaded."""


class BatchError(LlamaTritonError):
    """generate_batch: some prompts could not run; the others did. errors[i] is prompt i's
    LlamaTritonError (None when it ran), results[i] its text (None when it did not run),
    token_counts[i] its generated tokens. status is the first failed prompt's."""

    def __init__(self, message, status=None, errors=(), results=None, token_counts=None):
        super().__init__(message, status)
        self.errors = list(errors)
        self.results = results
        self.token_counts = token_counts


class MissingSymbolError(UnsupportedError):
    """The loaded library does not export a function this binding needs (an older build)."""


_BY_STATUS = {
    cls.status: cls
    for cls in (
        InvalidArgumentError,
        FileError,
        FormatError,
        UnsupportedError,
        OutOfMemoryError,
        CacheFullError,
        StateError,
        DeviceError,
        NotFoundError,
        CancelledError,
    )
}


def error_for_status(status, message):
    """The exception object for a C status and message (an unknown status gives the base)."""
    cls = _BY_STATUS.get(int(status), LlamaTritonError)
    return cls(message or "status %d" % int(status), int(status))
