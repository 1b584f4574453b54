"""Shared fixtures of the data tests: an isolated environment and a local mirror (the real MNIST
files and their copy come from tests/conftest.py).

The mirror is an HTTP server on 127.0.0.1 in a thread, serving a folder with Range support, and it
can misbehave on request: close a response early, ignore Range. It records every request.
"""

import http.server
import threading
from pathlib import Path

import pytest

class Mirror:
    """A file server: `url`, `requests` [(path, Range header)], `cut[path] = n` closes the next
    response for that path after n bytes, `ignore_range` answers every request in full."""

    def __init__(self, root: Path):
        self.root, self.requests, self.cut, self.ignore_range = root, [], {}, False
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                mirror.requests.append((self.path, self.headers.get("Range")))
                path = mirror.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = 0
                if self.headers.get("Range") and not mirror.ignore_range:
                    start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                cut = mirror.cut.pop(self.path, None)
                self.wfile.write(data[start:start + cut] if cut is not None else data[start:])
                if cut is not None:
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve():
    """`serve(folder)` starts a Mirror of that folder, closed after the test."""
    servers = []

    def start(folder: Path) -> Mirror:
        servers.append(Mirror(folder))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def mirror(serve, mnist_copy):
    """A local mirror serving a copy of the MNIST test split."""
    return serve(mnist_copy)


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def _isolated_data(isolated):
    """Every test in this folder runs with the isolated data environment (tests/conftest.py)."""
    return isolated
