"""Shared pytest configuration. Helpers for tests live in tests/helpers.py."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _wsgicache_logs_visible(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wsgicache")
