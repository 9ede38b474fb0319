"""The backend contract (wsgicache.testing.BackendContract) on every built-in backend.

Memory, filesystem, memcached (one server and three), Redis (one server, a
3-master cluster, a master behind a sentinel), all against real servers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from servers import BACKEND_KINDS

from wsgicache.backends.memcached import MemcachedBackend
from wsgicache.backends.memory import MemoryBackend
from wsgicache.testing import BackendContract, BackendFactory


@pytest.fixture(params=BACKEND_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class TestBuiltinBackends(BackendContract):
    @pytest.fixture
    def backend_factory(self, backend_kind: str, make_backend: Callable[..., Any]) -> BackendFactory:
        return lambda key_prefix: make_backend(backend_kind, key_prefix)

    @pytest.fixture
    def ttl_slack(self, backend: Any) -> float:
        # memcached counts lifetimes in whole seconds on a clock that ticks once a second
        return 2.0 if isinstance(backend, MemcachedBackend) else 0.0

    @pytest.fixture
    def shared_storage(self, backend: Any) -> bool:
        return not isinstance(backend, MemoryBackend)
