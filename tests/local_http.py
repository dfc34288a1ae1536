"""A file server on 127.0.0.1 for download tests: Range requests, and servers that cut or stop answering.

Each served path has a mode: "ok"; "truncate_once" (the first answer announces the whole length, sends half
and closes); "stall" (reads the request, then says nothing); "stall_mid_body" (sends headers and half the
body, then goes silent). Stalled handlers wait at most ``STALL_LIMIT_S`` or until the server stops.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STALL_LIMIT_S = 10.0


@dataclass
class FileServer:
    """What is served (path -> bytes, path -> mode) and the requests seen, as (path, Range header or None)."""

    files: dict[str, bytes] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, content: bytes, mode: str = "ok") -> str:
        self.files[path], self.modes[path] = content, mode
        return self.url(path)


def _handler(state: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            state.requests.append((self.path, self.headers.get("Range")))
            if self.path not in state.files:
                self.send_error(404)
                return
            body, mode = state.files[self.path], state.modes.get(self.path, "ok")
            if mode == "stall":
                state.stop.wait(STALL_LIMIT_S)
                self.close_connection = True
                return
            start = 0
            asked = self.headers.get("Range", "")
            if asked.startswith("bytes=") and asked.endswith("-"):
                start = int(asked[len("bytes=") : -1])
                if start >= len(body):
                    self.send_error(416)
                    return
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if mode in ("truncate_once", "stall_mid_body"):
                self.wfile.write(body[start : start + (len(body) - start) // 2])
                self.wfile.flush()
                if mode == "truncate_once":
                    state.modes[self.path] = "ok"
                else:
                    state.stop.wait(STALL_LIMIT_S)
                self.close_connection = True
                return
            self.wfile.write(body[start:])

    return Handler


class LocalServer:
    """Context manager: a threading HTTP server bound to 127.0.0.1 on a free port, stopped on exit."""

    def __init__(self) -> None:
        self.state = FileServer()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.httpd.daemon_threads = True
        self.state.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self.state

    def __exit__(self, *exc) -> None:
        self.state.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
