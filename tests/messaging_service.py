"""A messaging service's webhook (DingTalk, WeCom, ...) as the tests stand it in: the
service is outside Dealflow, so a local HTTP server takes the notices that Apprise posts
to a ``json://`` URL naming it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness.ports import free_port


class Service:
    """A messaging service's webhook on a free local port: it keeps each notice posted
    to it, or answers 503 while ``down``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.notices: list[tuple[str, dict[str, Any]]] = []
        self.down = False
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if service.down:
                    self.send_response(503)
                else:
                    service.notices.append((self.path, json.loads(body)))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def posted_to(self, path: str) -> list[dict[str, Any]]:
        return [notice for where, notice in self.notices if where == f"/{path}"]


@contextmanager
def running_service() -> Iterator[Service]:
    """A ``Service`` taking notices until the block ends."""
    service = Service()
    service.thread.start()
    try:
        yield service
    finally:
        service.server.shutdown()
        service.server.server_close()
