"""`autointerp serve`: the report's pages over HTTP, rendered from the run's files as they are now.

Each request first reads what the daemon appended since the last one (a stat per file when
nothing changed), so new labels and scores appear on reload, and the index picks them up by
itself every few seconds. Standard library only: `ThreadingHTTPServer`, bound to 127.0.0.1
unless told otherwise, and it answers only requests addressed to the host it was started for
(a web page cannot reach it through a rebound DNS name).
"""

from __future__ import annotations

import errno
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from autointerp.errors import UserError
from autointerp.report.data import RunView
from autointerp.report.site import Page, Site
from autointerp.store import RunDir

LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


class LiveSite:
    """A `Site` over a `RunView` that refreshes before each request (one request at a time
    reads or renders: the view is not shared across threads while it changes)."""

    def __init__(self, run: RunDir) -> None:
        self.view = RunView(run)
        self.site = Site(self.view, live=True)
        self._lock = threading.Lock()
        self.view.refresh()

    def get(self, path: str) -> Page | None:
        with self._lock:
            self.view.refresh()
            return self.site.render(path)


class _Handler(BaseHTTPRequestHandler):
    server: ReportServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        if not self.server.host_allowed(self.headers.get("Host", "")):
            self._send(HTTPStatus.FORBIDDEN, b"unexpected Host header\n", "text/plain", body)
            return
        path = unquote(urlsplit(self.path).path)
        if path in ("", "/"):
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", "/index.html")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        try:
            page = self.server.site.get(path.lstrip("/"))
        except Exception as e:  # a damaged record must not take the server down
            print(f"autointerp serve: {path}: {type(e).__name__}: {e}", file=sys.stderr)
            self._send(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                b"could not render this page\n",
                "text/plain",
                body,
            )
            return
        if page is None:
            self._send(HTTPStatus.NOT_FOUND, b"no such page\n", "text/plain", body)
        else:
            self._send(HTTPStatus.OK, page.body, page.content_type, body)

    def _send(self, status: HTTPStatus, data: bytes, kind: str, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for name, value in HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a browser's every request would flood the terminal."""


class ReportServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, run: RunDir, host: str, port: int) -> None:
        self.site = LiveSite(run)
        self.bind_host = host
        if ":" in host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), _Handler)
        except OSError as e:
            raise UserError(_bind_error(host, port, e)) from None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else str(host)
        if shown in ("0.0.0.0", "[::]"):
            shown = "127.0.0.1"
        return f"http://{shown}:{port}/"

    def host_allowed(self, header: str) -> bool:
        """Requests must name this server (DNS rebinding), unless it listens on every address."""
        if self.bind_host in ("0.0.0.0", "::", ""):
            return True
        port = self.server_address[1]
        bound = f"[{self.bind_host}]" if ":" in self.bind_host else self.bind_host
        names = {bound, *LOCAL_NAMES} if bound in LOCAL_NAMES else {bound}
        return header in {f"{n}:{port}" for n in names} or (header in names and port == 80)


def _bind_error(host: str, port: int, e: OSError) -> str:
    if e.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use; choose another with --port (or --port 0)"
    if e.errno == errno.EACCES:
        return f"not allowed to listen on port {port} of {host}; choose a port above 1023"
    if isinstance(e, socket.gaierror) or e.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on --host {host}: not an address of this machine"
    return f"cannot listen on {host}:{port}: {e.strerror or e}"
