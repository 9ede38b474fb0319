"""The core knows nothing of WSGI: a second adapter (ASGI) can reuse it as it is."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import wsgicache

PACKAGE = Path(wsgicache.__file__).parent

#: The modules of the core: planning, the cache, coalescing and the HTTP decisions.
CORE = [
    "request",
    "plan",
    "cache",
    "coalescing",
    "decisions",
    "freshness",
    "validation",
    "variants",
    "ranges",
    "http",
    "keys",
    "rules",
    "storage",
    "guard",
    "invalidation",
]

#: Modules that speak WSGI: the adapter and its plumbing.
ADAPTER = {"middleware", "response", "body", "wsgiref"}


def imported_modules(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[-1] if node.level else (node.module or "").split(".")[0])
            if node.level and not node.module:
                names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_wsgi_adapter_code(module: str) -> None:
    source = (PACKAGE / f"{module}.py").read_text()
    assert not imported_modules(source) & ADAPTER
    tree = ast.parse(source)
    constants = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)}
    identifiers = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    identifiers |= {node.arg for node in ast.walk(tree) if isinstance(node, ast.arg)}
    assert not constants & {"wsgi.input", "wsgi.errors", "wsgi.file_wrapper"}
    assert "start_response" not in identifiers


def test_the_adapter_is_the_only_module_that_calls_the_application() -> None:
    callers = [path.stem for path in PACKAGE.glob("*.py") if "self.app(" in path.read_text()]
    assert callers == ["middleware"]
