"""Small real HTTP servers on 127.0.0.1 for the SDK's transport tests.

``Recorder`` answers every request with a health document and keeps what each request carried
(method, path, headers, body, the client's port) and how many were in flight at once; it can answer
late (to provoke a client's timeout), refuse the first requests with a status of its choice
(to provoke a retry), or drop a connection's second request unanswered (as a
server closing an idle keep-alive connection just as a request arrives). ``Scripted`` sends
canned bytes, for framings the taskqueue server never uses (chunked with trailers, a body
ended by closing, gzip, an informational 1xx before the answer, an answer in pieces).
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HEALTH = {"status": "ok", "version": "0", "database": "sqlite", "workers": 0, "tasks": {}}
HEALTH_BYTES = json.dumps(HEALTH).encode()


@dataclass
class Seen:
    """One request the recorder received."""

    method: str
    path: str
    headers: dict[str, str]
    client_port: int
    body: bytes = b""


@dataclass
class Recorder:
    """The running recorder: its URL, what it saw, and how it misbehaves."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    delay: float = 0.0
    #: Close a connection, unanswered, when its second request arrives (with a reset, if
    #: ``reset``).
    drop_second: bool = False
    reset: bool = False
    #: Statuses to answer the first requests with, in order (a 429 or 503 with
    #: ``Retry-After: 1``), before the health document.
    refusals: list[int] = field(default_factory=list)
    #: The body of every answer (JSON).
    answer: bytes = HEALTH_BYTES
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def headers(self) -> dict[str, str]:
        """The headers of the last request, by lower-case name."""
        return self.seen[-1].headers

    def client_ports(self) -> set[int]:
        """The client-side ports of the connections requests came on."""
        return {s.client_port for s in self.seen}


def handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    """The request handler class of a :class:`Recorder`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the taskqueue server does

        def setup(self) -> None:
            super().setup()
            self.requests_here = 0

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            self.requests_here += 1
            headers = {k.lower(): v for k, v in self.headers.items()}
            port = self.client_address[1]
            recorder.seen.append(Seen(self.command, self.path, headers, port, body))
            if recorder.drop_second and self.requests_here == 2:
                if recorder.reset:  # RST instead of FIN
                    linger = struct.pack("ii", 1, 0)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.close_connection = True
                return
            with recorder.lock:
                refusal = recorder.refusals.pop(0) if recorder.refusals else None
            if refusal is not None:
                error = b'{"error":{"code":"busy","message":"try again"}}'
                self.send_response(refusal)
                self.send_header("Content-Type", "application/json")
                self.send_header("Retry-After", "1")
                self.send_header("Content-Length", str(len(error)))
                self.end_headers()
                self.wfile.write(error)
                return
            with recorder.lock:
                recorder.in_flight += 1
                recorder.max_in_flight = max(recorder.max_in_flight, recorder.in_flight)
            try:
                if recorder.delay:
                    time.sleep(recorder.delay)
            finally:
                with recorder.lock:
                    recorder.in_flight -= 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(recorder.answer)))
            self.end_headers()
            self.wfile.write(recorder.answer)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


#: A self-signed certificate for 127.0.0.1 (valid until 2126) and its key, for https tests.
TLS = Path(__file__).resolve().parent / "tls"


@contextmanager
def serving(recorder: Recorder, tls: bool = False) -> Iterator[Recorder]:
    """Run ``recorder`` on a free port of 127.0.0.1 (over TLS with ``tls``) until the block
    ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(recorder))
    server.daemon_threads = True
    scheme = "http"
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(TLS / "cert.pem", TLS / "key.pem")
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    recorder.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@dataclass
class Scripted:
    """A server that answers each connection's first request with ``answer`` (sent in
    ``pieces`` writes, a short pause apart), then closes the connection."""

    answer: bytes
    pieces: int = 1
    url: str = ""
    requests: list[bytes] = field(default_factory=list)

    def _serve_one(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                more = conn.recv(65536)
                if not more:
                    return
                data += more
            self.requests.append(data)
            size = -(-len(self.answer) // self.pieces)
            for start in range(0, len(self.answer), size):
                conn.sendall(self.answer[start : start + size])
                time.sleep(0.02)

    @contextmanager
    def running(self) -> Iterator[Scripted]:
        """Serve on a free port of 127.0.0.1 until the block ends."""
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                conn.settimeout(10)
                self._serve_one(conn)

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(10)
            listener.close()
