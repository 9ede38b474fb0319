"""A settings module for CacheMiddleware.from_config (used by tests/test_config.py)."""

from wsgicache import Rule

BACKENDS = {
    "default": {"BACKEND": "memory", "OPTIONS": {"max_entries": 100}, "TIMEOUT": 120, "KEY_PREFIX": "site1"},
    "pages": {"LOCATION": "memory://?max_entries=50"},
}
RULES = [
    Rule("/admin/<path:rest>", cache=False),
    Rule("/page/<name>", backend="pages", timeout=30),
    Rule("/<path:rest>"),
]
KEY_PREFIX = "v2"
CACHE_HEADER = "X-Site-Cache"
OPTIONS = {"max_entry_bytes": 4096}
NOT_A_SETTING = "ignored: only upper-case known names are read"
