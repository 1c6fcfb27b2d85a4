"""Roomcast's exception tree.

::

    RoomcastError                 base of everything we raise on purpose
    ├── ConfigurationError        invalid settings; entry points print one line and exit 2
    ├── DependencyUnavailable     Redis / database / storage cannot be reached (HTTP 503)
    ├── InvalidInput              the caller sent something we refuse (HTTP 400/422)
    │   └── InvalidObjectKey      a storage key with '..', an absolute path or control characters
    ├── NotFound                  the thing does not exist or is not visible to the caller (404)
    ├── Forbidden                 known caller, action not allowed (403)
    ├── Conflict                  state does not allow it now (409)
    └── StorageError              storage adapter failures, translated at the adapter edge
        ├── ObjectNotFound        no object at that key (also a NotFound)
        └── StorageUnavailable    transient: retry later (also a DependencyUnavailable)

Every error carries a stable ``code`` (snake_case) documented in docs/protocol.md and the API
docs; messages say what to do about it.
"""

from __future__ import annotations


class RoomcastError(Exception):
    """Base class; ``code`` is stable and machine-readable."""

    code: str = "roomcast_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigurationError(RoomcastError):
    code = "configuration_error"


class DependencyUnavailable(RoomcastError):
    code = "dependency_unavailable"

    def __init__(self, dependency: str, message: str) -> None:
        super().__init__(f"{dependency}: {message}")
        self.dependency = dependency


class InvalidInput(RoomcastError):
    code = "invalid_input"


class InvalidObjectKey(InvalidInput):
    code = "invalid_object_key"


class NotFound(RoomcastError):
    code = "not_found"


class Forbidden(RoomcastError):
    code = "forbidden"


class Conflict(RoomcastError):
    code = "conflict"


class StorageError(RoomcastError):
    code = "storage_error"


class ObjectNotFound(StorageError, NotFound):
    code = "object_not_found"


class StorageUnavailable(StorageError, DependencyUnavailable):
    code = "storage_unavailable"

    def __init__(self, message: str) -> None:
        DependencyUnavailable.__init__(self, "storage", message)
