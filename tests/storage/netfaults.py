"""Real-socket fault injection for the S3 tests: a loopback TCP proxy that misbehaves first."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

Fault = Callable[[socket.socket], None]


def free_port() -> int:
    """A loopback TCP port nobody listens on (the OS picks it; we close it again at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def hang_up(conn: socket.socket) -> None:
    """Close the connection before reading anything (a crashed or restarting server)."""
    conn.close()


def answer(status: int, reason: str, code: str | None) -> Fault:
    """Read one request's head and reply `status` with an S3 error document for `code` (or an
    empty body), then close: a throttling, failing or refusing server."""
    document = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>{reason}</Message><Resource>/</Resource><RequestId>1</RequestId></Error>"
    )
    body = document.encode() if code else b""
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()

    def reply(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            received = b""
            while b"\r\n\r\n" not in received and len(received) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                received += chunk
            conn.sendall(head + body)

    return reply


class FaultyProxy:
    """Listens on 127.0.0.1; applies `fault` to the first `faults` connections and relays every
    later one to `upstream` ("host:port"). Counts connections; use it as a context manager."""

    def __init__(self, upstream: str, faults: int, fault: Fault) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self._faults = faults
        self._fault = fault
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self.connections = 0
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> FaultyProxy:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()
        for sock in self._sockets:
            sock.close()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            if self.connections <= self._faults:
                self._fault(conn)
                continue
            upstream = socket.create_connection(self._upstream, timeout=5)
            for sock in (conn, upstream):
                sock.settimeout(None)
                self._sockets.append(sock)
            self._spawn(_pump, conn, upstream)
            self._spawn(_pump, upstream, conn)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
