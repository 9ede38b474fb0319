"""The test-server helpers: a missing binary skips, except under CI=true where it fails."""

from __future__ import annotations

import pytest
from servers import HOST, free_port, require_binary


def test_a_missing_binary_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require_binary("no-such-server-binary")


def test_a_missing_binary_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_binary("no-such-server-binary")


def test_servers_listen_on_loopback_only(redis_server: object, memcached_server: object) -> None:
    import socket

    assert HOST == "127.0.0.1"
    for server in (redis_server, memcached_server):
        argv = server.argv  # type: ignore[attr-defined]
        assert HOST in argv and "0.0.0.0" not in argv
    port = free_port()
    with socket.socket() as sock:
        sock.bind((HOST, port))
