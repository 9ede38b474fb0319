"""Exceptions raised by wsgicache."""

from __future__ import annotations


class ConfigurationError(ValueError):
    """A configuration value is invalid.

    Raised at start-up, never while serving a request. The message says
    what was given and what would be valid instead.
    """


class CorruptEntry(ValueError):
    """A stored value could not be decoded as a cache entry."""
