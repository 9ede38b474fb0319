"""wsgicache: a WSGI middleware that caches full HTTP responses.

::

    from wsgicache import CacheMiddleware, Rule

    app.wsgi_app = CacheMiddleware(
        app.wsgi_app,
        backend="memory://",
        rules=[Rule("/recent_posts", timeout=300, tags=["posts"])],
    )
"""

from __future__ import annotations

from .errors import ConfigurationError, CorruptEntry, InvalidationError
from .invalidation import InvalidationResult
from .middleware import CacheMiddleware
from .rules import Rule

__version__ = "0.1.0"

__all__ = [
    "CacheMiddleware",
    "ConfigurationError",
    "CorruptEntry",
    "InvalidationError",
    "InvalidationResult",
    "Rule",
    "__version__",
]
