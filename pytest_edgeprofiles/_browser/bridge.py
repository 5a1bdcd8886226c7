"""A browser's DevTools for this user only: the browser on ``--remote-debugging-pipe``,
and a port of ours that relays one WebSocket client at a time to the pipe.

Chromium's ``--remote-debugging-port`` serves anyone on the machine: another local user could
find it, attach, read the test's cookies and drive the browser. A pipe has no address; the
bridge's port answers only connections whose socket belongs to this user, and serves what
chromedriver and Playwright ask: ``GET /json/version``, then the browser WebSocket it names.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import os
import queue
import re
import socket
import struct
import sys
import threading
import uuid
from typing import IO, Any

import psutil

#: Our own requests' ids, far above the small counters clients number theirs with, and within
#: the 32-bit int the browser takes (it drops a message with a larger one, unanswered).
_OWN_IDS = 2_000_000_000
_ID = re.compile(rb'\{"id":(\d+)')
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's fixed key suffix
_MOST = 256 << 20  # a client message larger than this is no CDP command
_CLOSE, _PING, _PONG = 8, 9, 10
#: Seconds a client may leave the browser's messages unread: the browser's messages to us
#: wait behind it, so one that stalls longer is cut off.
CLIENT_STALL = 30.0


class Bridge:
    """Relays between a browser's DevTools pipe (``to_browser``, ``from_browser``: our ends)
    and a WebSocket client on 127.0.0.1:``port``, path ``target``."""

    def __init__(self, to_browser: int, from_browser: int) -> None:
        self._to_browser = to_browser
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.target = f"/devtools/browser/{uuid.uuid4()}"
        self._lock = threading.Lock()  # the client, and every write to it
        self._pipe_lock = threading.Lock()  # every write to the browser, and closing its pipe
        self._client: socket.socket | None = None
        self._sessions: set[str] = set()  # the client's, detached when it goes
        self._asked: dict[int, queue.SimpleQueue[dict[str, Any] | None]] = {}
        self._ids = itertools.count(_OWN_IDS)
        self._open = True
        for run in (lambda: self._read_browser(from_browser), self._serve):
            threading.Thread(target=run, daemon=True, name="edgeprofiles-bridge").start()

    def ask(self, method: str, timeout: float) -> dict[str, Any] | None:
        """The browser's result for ``method``; None if it gave none in ``timeout`` s."""
        number = next(self._ids)
        answer: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._asked[number] = answer
        try:
            self._send({"id": number, "method": method})
            reply = answer.get(timeout=timeout)
        except (OSError, queue.Empty):
            return None
        finally:
            self._asked.pop(number, None)
        return reply.get("result") if reply else None

    def has_page(self, timeout: float = 2.0) -> bool:
        targets = (self.ask("Target.getTargets", timeout) or {}).get("targetInfos", [])
        return any(t.get("type") == "page" for t in targets)

    def close(self) -> None:
        self._open = False
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept
        self._server.close()
        with self._pipe_lock:  # never write to the number once closed: it may be reused
            if self._to_browser >= 0:
                os.close(self._to_browser)
                self._to_browser = -1

    def _send(self, message: dict[str, Any]) -> None:
        self._write(json.dumps(message).encode())

    def _write(self, data: bytes) -> None:
        with self._pipe_lock:
            if self._to_browser < 0:
                raise BrokenPipeError("the browser's pipe is closed")
            view = memoryview(data + b"\0")
            while view:
                view = view[os.write(self._to_browser, view) :]

    def _read_browser(self, fd: int) -> None:
        pending = bytearray()  # a message of megabytes comes in many reads: no copy per read
        try:
            with open(fd, "rb", buffering=0) as pipe:
                while chunk := pipe.read(1 << 16):
                    start = len(pending)
                    pending += chunk
                    while (end := pending.find(b"\0", start)) >= 0:
                        self._from_browser(bytes(pending[:end]))
                        del pending[: end + 1]
                        start = 0
        finally:  # the browser is gone
            self._drop_client()
            self.close()
            for answer in list(self._asked.values()):
                answer.put(None)

    def _from_browser(self, message: bytes) -> None:
        number = _ID.match(message)
        if number and int(number[1]) >= _OWN_IDS:
            answer = self._asked.get(int(number[1]))
            if answer:
                answer.put(json.loads(message))
            return
        with self._lock:
            if self._client is not None:
                if b'"method":"Target.attachedToTarget"' in message[:64]:
                    self._sessions.add(json.loads(message)["params"]["sessionId"])
                try:
                    self._client.sendall(_frame(1, message))
                except OSError:  # gone, or not reading: every message after it would wait
                    with contextlib.suppress(OSError):
                        self._client.shutdown(socket.SHUT_RDWR)  # its relay then drops it

    def _serve(self) -> None:
        while self._open:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # a client that goes is no error of ours
            if not _is_ours(conn):
                return  # another user's: closed unanswered
            conn.settimeout(10)
            # Each CDP message is a small write waiting for its answer: Nagle would hold it
            # back for the client's delayed ACK, 40 ms a round trip.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader = conn.makefile("rb")
            path, headers = _request(reader)
            if not self._from_here(headers):
                _reply(conn, "403 Forbidden", {"error": "only 127.0.0.1, from no web page"})
                return
            key = headers.get("sec-websocket-key")
            if path == self.target and key:
                self._connect(conn, reader, key)
            else:
                _reply(conn, *self._json(path.rstrip("/")))

    def _from_here(self, headers: dict[str, str]) -> bool:
        """As Chromium's own port checks: the Host names this port on 127.0.0.1 or localhost
        (no rebound DNS name), and no web page sent it (no Origin)."""
        hosts = {
            f"{name}{port}" for name in ("127.0.0.1", "localhost") for port in ("", f":{self.port}")
        }
        return headers.get("host", "").lower() in hosts and "origin" not in headers

    def _json(self, path: str) -> tuple[str, object]:
        """What the browser's own port answers chromedriver's ``GET``s with."""
        if path == "/json/version":
            version = self.ask("Browser.getVersion", 10) or {}
            return "200 OK", {
                "Browser": version.get("product"),
                "Protocol-Version": "1.3",
                "User-Agent": version.get("userAgent"),
                "V8-Version": version.get("jsVersion"),
                "WebKit-Version": _webkit(version),  # chromedriver requires it
                "webSocketDebuggerUrl": f"ws://127.0.0.1:{self.port}{self.target}",
            }
        if path in ("/json", "/json/list"):
            targets = (self.ask("Target.getTargets", 10) or {}).get("targetInfos", [])
            keys = {"id": "targetId", "type": "type", "title": "title", "url": "url"}
            return "200 OK", [{k: t.get(v) for k, v in keys.items()} for t in targets]
        return "404 Not Found", {}

    def _connect(self, conn: socket.socket, reader: IO[bytes], key: str) -> None:
        if not self._take(conn, key):
            _reply(conn, "409 Conflict", {"error": "the browser serves one client at a time"})
            return
        conn.settimeout(None)  # a client may say nothing for long; it must read, though
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _seconds(CLIENT_STALL))
        try:
            self._relay(conn, reader)
        finally:
            self._drop_client()

    def _take(self, conn: socket.socket, key: str) -> bool:
        accept = base64.b64encode(hashlib.sha1(key.encode() + _WS_GUID).digest()).decode()
        with self._lock:
            if self._client is not None:
                return False
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
            )
            self._client = conn  # once it has its answer: a client gone meanwhile takes none
        return True

    def _relay(self, conn: socket.socket, reader: IO[bytes]) -> None:
        message = b""
        while True:
            final, opcode, data = _read_frame(reader)
            if opcode == _CLOSE:
                with self._lock, contextlib.suppress(OSError):
                    conn.sendall(_frame(_CLOSE, data[:2]))
                return
            if opcode == _PING:
                with self._lock:
                    conn.sendall(_frame(_PONG, data))
            elif opcode != _PONG:
                message += data
                if len(message) > _MOST:
                    raise ConnectionError("a client message over the size limit")
                if final:
                    self._write(message)
                    message = b""

    def _drop_client(self) -> None:
        """The client went: what it attached is detached, as the browser does when a
        WebSocket closes, or a page opened later would wait for a debugger that is gone. The
        next client is taken only after that is sent, or it could undo the next one's."""
        with self._lock:
            client = self._client
            if client is None:
                return
            calls: list[tuple[str, dict[str, object]]] = [
                ("Target.detachFromTarget", {"sessionId": session}) for session in self._sessions
            ]
            calls.append(
                ("Target.setAutoAttach", {"autoAttach": False, "waitForDebuggerOnStart": False})
            )
            with contextlib.suppress(OSError):
                for method, params in calls:
                    self._send({"id": next(self._ids), "method": method, "params": params})
            self._client, self._sessions = None, set()
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)


def _seconds(seconds: float) -> bytes:
    """``seconds`` as ``SO_SNDTIMEO`` takes it: milliseconds on Windows, a ``timeval`` else."""
    if sys.platform == "win32":
        return struct.pack("I", int(seconds * 1000))
    return struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000))


def _webkit(version: dict[str, str]) -> str:
    """As the browser's own ``/json/version`` spells it: ``537.36 (@<revision>)``."""
    engine = re.search(r"AppleWebKit/([\d.]+)", version.get("userAgent", ""))
    return f"{engine[1] if engine else ''} ({version.get('revision', '')})"


def _request(reader: IO[bytes]) -> tuple[str, dict[str, str]]:
    """The path and headers (names lowercased) of an HTTP request."""
    line = reader.readline(8192).decode("latin-1").split()
    headers = {}
    while (header := reader.readline(8192)) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return (line[1] if len(line) > 1 and line[0] == "GET" else ""), headers


def _reply(conn: socket.socket, status: str, body: object) -> None:
    data = json.dumps(body).encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json; charset=UTF-8\r\n"
    conn.sendall(f"{head}Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)


def _read_frame(reader: IO[bytes]) -> tuple[bool, int, bytes]:
    """One client frame: whether it ends a message, its opcode and its unmasked payload."""
    head = _exactly(reader, 2)
    size = head[1] & 0x7F
    if size >= 126:
        size = int.from_bytes(_exactly(reader, 2 if size == 126 else 8), "big")
    if not head[1] & 0x80 or size > _MOST:
        raise ConnectionError("an unmasked or oversized WebSocket frame")  # RFC 6455, 5.1
    mask, data = _exactly(reader, 4), _exactly(reader, size)
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "little")
    plain = (int.from_bytes(data, "little") ^ key).to_bytes(size, "little")
    return bool(head[0] & 0x80), head[0] & 0x0F, plain


def _exactly(reader: IO[bytes], size: int) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise ConnectionError("the client closed the connection")
    return data


def _frame(opcode: int, data: bytes) -> bytes:
    size = len(data)
    if size < 126:
        head = bytes((0x80 | opcode, size))
    elif size < 1 << 16:
        head = bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big")
    return head + data


#: Linux's table of TCP sockets, with the uid that made each.
TCP_TABLE = "/proc/net/tcp"


def _is_ours(conn: socket.socket) -> bool:
    """Whether this user owns the client's end of ``conn``: its uid from ``TCP_TABLE`` on
    Linux; else the process that holds it, looked for among ours and our children first (the
    usual clients: a driver, Playwright's), then all; one whose owner we may not read is not
    ours (another user's, on macOS and Windows)."""
    peer, local = conn.getpeername()[:2], conn.getsockname()[:2]
    ours = psutil.Process()
    try:
        with open(TCP_TABLE, encoding="ascii") as table:
            for line in itertools.islice(table, 1, None):
                fields = line.split()
                # Established only: a socket its process closed shows another owner (root).
                if fields[1:4] == [_tcp_hex(peer), _tcp_hex(local), "01"]:
                    return int(fields[7]) == _user(ours)
        return False
    except OSError:
        pass
    for proc in itertools.chain([ours], ours.children(recursive=True), psutil.process_iter()):
        with contextlib.suppress(psutil.Error):
            for c in proc.net_connections("tcp4"):
                if c.laddr and c.raddr and tuple(c.laddr) == peer and tuple(c.raddr) == local:
                    return _user(proc) == _user(ours)
    return False


def _user(proc: psutil.Process) -> int | str:
    """Who runs ``proc``: its account on Windows, its uid elsewhere."""
    if sys.platform == "win32":
        return proc.username()
    return proc.uids().real


def _tcp_hex(address: tuple[str, int]) -> str:
    """``address`` as ``/proc/net/tcp`` writes it: the address as a native-order word."""
    word = int.from_bytes(socket.inet_aton(address[0]), sys.byteorder)
    return f"{word:08X}:{address[1]:04X}"
