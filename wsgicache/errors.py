"""Exceptions raised by wsgicache."""

from __future__ import annotations


class ConfigurationError(ValueError):
    """A configuration value is invalid.

    Raised at start-up, never while serving a request. The message says
    what was given and what would be valid instead.
    """


class CorruptEntry(ValueError):
    """A stored value could not be decoded as a cache entry."""


class TransientBackendError(ConnectionError):
    """A backend could not answer for a reason that is not the shard's own failure.

    Raised by backends for conditions that pass by themselves within about a
    second and say nothing about the health of the shard the key lives on,
    such as a Redis Cluster answering ``CLUSTERDOWN`` or ``TRYAGAIN`` while
    another node fails over. The middleware treats the call as failed (a
    miss, counted in ``errors``) but does not count it towards opening the
    circuit breaker of that shard.
    """


class InvalidationError(RuntimeError):
    """An invalidation was not acknowledged by every backend (``invalidate(strict=True)``).

    The invalidation is still kept in the process and re-applied until a
    backend acknowledges it; ``result`` is the
    :class:`~wsgicache.middleware.InvalidationResult`.
    """

    def __init__(self, message: str, result: object) -> None:
        super().__init__(message)
        self.result = result
