"""Fail-open access to a backend: errors are logged and counted, never raised.

After ``failure_threshold`` consecutive failures the circuit opens: for
``retry_after`` seconds no call reaches the backend (requests go straight to
the application) so that a dead or hanging store is not waited on by every
request. Then one call is let through; success closes the circuit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from time import monotonic

from .backends.base import Backend
from .stats import Stats

logger = logging.getLogger("wsgicache")


class GuardedBackend:
    """A backend behind error counting, logging and a circuit breaker."""

    def __init__(
        self,
        alias: str,
        backend: Backend,
        stats: Stats,
        *,
        failure_threshold: int = 5,
        retry_after: float = 10.0,
    ) -> None:
        self.alias = alias
        self.backend = backend
        self.stats = stats
        self.failure_threshold = failure_threshold
        self.retry_after = retry_after
        self._failures = 0
        self._open_until = 0.0
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """False while the circuit is open (calls would be skipped)."""
        if not self._open_until:
            return True
        with self._lock:
            if monotonic() >= self._open_until:
                # Half-open: let this caller try; others keep skipping until it reports.
                self._open_until = monotonic() + self.retry_after
                return True
        self.stats.incr("skipped")
        return False

    def _succeeded(self) -> None:
        if self._failures or self._open_until:
            with self._lock:
                if self._open_until:
                    logger.warning("wsgicache: backend %r is answering again", self.alias)
                self._failures = 0
                self._open_until = 0.0

    def _failed(self, operation: str, exc: BaseException) -> None:
        self.stats.incr("errors")
        with self._lock:
            self._failures += 1
            opened = self._failures >= self.failure_threshold and (
                not self._open_until or self._failures == self.failure_threshold
            )
            if opened:
                self._open_until = monotonic() + self.retry_after
        logger.warning(
            "wsgicache: backend %r failed on %s: %s: %s",
            self.alias,
            operation,
            type(exc).__name__,
            exc,
        )
        if opened:
            logger.error(
                "wsgicache: backend %r failed %d times in a row; not used for %g s",
                self.alias,
                self._failures,
                self.retry_after,
            )

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes] | None:
        """The values found, or ``None`` when the backend could not be asked."""
        if not self.available:
            return None
        try:
            if len(keys) == 1:
                value = self.backend.get(keys[0])
                found = {} if value is None else {keys[0]: value}
            else:
                found = self.backend.get_many(keys)
        except Exception as exc:
            self._failed("get", exc)
            return None
        self._succeeded()
        return found

    def set(self, key: str, value: bytes, ttl: float, *, force: bool = False) -> bool | None:
        """Whether the value was stored; ``None`` when the backend could not be asked.

        ``force`` tries even while the circuit is open.
        """
        if not force and not self.available:
            return None
        try:
            stored = self.backend.set(key, value, ttl)
        except Exception as exc:
            self._failed("set", exc)
            return None
        self._succeeded()
        return stored is not False

    def add(self, key: str, value: bytes, ttl: float) -> bool | None:
        """Whether the key was added; ``None`` when the backend could not be asked."""
        if not self.available:
            return None
        try:
            added = self.backend.add(key, value, ttl)
        except Exception as exc:
            self._failed("add", exc)
            return None
        self._succeeded()
        return bool(added)

    def delete(self, key: str, *, force: bool = False) -> bool:
        if not force and not self.available:
            return False
        try:
            self.backend.delete(key)
        except Exception as exc:
            self._failed("delete", exc)
            return False
        self._succeeded()
        return True

    def clear(self) -> bool:
        try:
            self.backend.clear()
        except Exception as exc:
            self._failed("clear", exc)
            return False
        self._succeeded()
        return True
