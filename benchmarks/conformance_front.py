#!/usr/bin/env python
"""A reverse proxy behind wsgicache, for the HTTP cache conformance suite.

The proxy forwards every request to an origin server (the suite's own) and
passes its answer back; ``CacheMiddleware`` with one ``policy="http"`` rule
sits in front of it, as a shared cache would. ``conformance.sh`` starts it;
it is not part of the test suite.

Usage::

    python benchmarks/conformance_front.py --origin 127.0.0.1:8000 --port 8001 [--no-cache]
"""

from __future__ import annotations

import argparse
import http.client
from collections.abc import Callable, Iterable
from typing import Any

from wsgicache import CacheMiddleware, Rule

#: Hop-by-hop headers (RFC 9110, 7.6.1): never forwarded by a proxy; and those
#: PEP 3333 servers refuse from an application (waitress: Proxy-Authenticate & co.).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    }
)


def proxy_to(origin: str) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
    """A WSGI application that forwards each request to ``origin`` (``host:port``)."""
    host, _, port = origin.rpartition(":")

    def proxy(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        length = environ.get("CONTENT_LENGTH") or "0"
        body = environ["wsgi.input"].read(int(length)) if length.isdigit() and int(length) else None
        target = environ.get("RAW_URI") or (
            environ.get("SCRIPT_NAME", "")
            + environ.get("PATH_INFO", "")
            + (f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else "")
        )
        headers = {"Host": origin}
        for key, value in environ.items():
            if key.startswith("HTTP_") and key not in ("HTTP_HOST", "HTTP_CONNECTION"):
                name = key[5:].replace("_", "-").title()
                if name.lower() not in HOP_BY_HOP:
                    headers[name] = value
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            connection.request(environ["REQUEST_METHOD"], target, body=body, headers=headers)
            response = connection.getresponse()
            while 100 <= response.status < 200:
                # An interim response (102, 103): http.client takes it for the final one;
                # read the next response from the same buffered stream.
                following = http.client.HTTPResponse(connection.sock, method=environ["REQUEST_METHOD"])
                following.fp, response.fp = response.fp, None  # the interim one no longer owns it
                following.begin()
                response = following
            data = response.read()
            # A proxy drops hop-by-hop fields and those its Connection field names (RFC 9110 7.6.1).
            nominated = {
                name.strip().lower()
                for key, value in response.getheaders()
                if key.lower() == "connection"
                for name in value.split(",")
            }
            passed = [
                (k, v)
                for k, v in response.getheaders()
                if k.lower() not in HOP_BY_HOP and k.lower() not in nominated
            ]
        finally:
            connection.close()
        if (
            environ["REQUEST_METHOD"] != "HEAD"
            and response.status not in (204, 304)
            and not any(k.lower() == "content-length" for k, _ in passed)
        ):
            passed.append(("Content-Length", str(len(data))))
        start_response(f"{response.status} {response.reason}", passed)
        return [data]

    return proxy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--origin", required=True, help="host:port of the origin server")
    parser.add_argument("--port", type=int, required=True, help="port to serve on (127.0.0.1)")
    parser.add_argument("--no-cache", action="store_true", help="serve the bare proxy (the baseline)")
    arguments = parser.parse_args()
    app: Any = proxy_to(arguments.origin)
    if not arguments.no_cache:
        app = CacheMiddleware(app, backend="memory://", rules=[Rule("/<path:p>", policy="http")])
    import waitress  # type: ignore[import-untyped]

    waitress.serve(app, host="127.0.0.1", port=arguments.port, threads=8, _quiet=True)


if __name__ == "__main__":
    main()
