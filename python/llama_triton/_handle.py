"""Ownership of C handles: close() frees once; closing twice or using a closed handle raises
ClosedError instead of reaching the C library with a dangling pointer."""

from ._lib import lib
from .errors import ClosedError


class Handle:
    """Base of every object that owns (or borrows) a C handle.

    _free_name: the C function that frees the handle (None for borrowed handles, which
    belong to `_owner` and die with it)."""

    _free_name = None

    def __init__(self, ptr=None, owner=None):
        self._ptr = ptr
        self._owner = owner   # the Handle that owns a borrowed pointer, kept alive by this ref
        self._closed = ptr is None

    @property
    def closed(self):
        return self._closed or (self._owner is not None and self._owner.closed)

    @property
    def _h(self):
        """The live C pointer; raises ClosedError after close()."""
        if self.closed:
            raise ClosedError("%s is closed" % type(self).__name__, 7)
        return self._ptr

    def close(self):
        """Frees the C object. A second close() raises ClosedError."""
        if self._closed:
            raise ClosedError("%s is already closed" % type(self).__name__, 7)
        ptr, self._ptr, self._closed = self._ptr, None, True
        self._release(ptr)

    def _release(self, ptr):
        if self._free_name and self._owner is None and ptr:
            lib().fn(self._free_name)(ptr)

    def __enter__(self):
        self._h  # noqa: B018  refuse to enter a closed handle
        return self

    def __exit__(self, *exc):
        if not self._closed:
            self.close()

    def __del__(self):
        try:
            if not self._closed:
                self.close()
        except Exception:  # interpreter shutdown: the library may already be gone
            pass
