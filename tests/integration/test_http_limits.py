"""Limits on request heads (gateway.http_protocol), against a real uvicorn server over sockets.

One server for the module, in a thread with its own uvloop loop, as in production; the head
deadline is cut to HEAD_TIMEOUT and the idle timeout to KEEP_ALIVE to keep the file fast.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from uvicorn.server import ServerState

from gateway.http_protocol import HeadLimitedHttpToolsProtocol
from gateway.serving import uvicorn_config

HEAD_TIMEOUT = 1.0
KEEP_ALIVE = 1  # uvicorn's timeout_keep_alive, in whole seconds


class _Tracked(HeadLimitedHttpToolsProtocol):
    """Remembers every connection's protocol, to check no timer outlives its connection."""

    made: ClassVar[list[HeadLimitedHttpToolsProtocol]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.made.append(self)


@dataclass
class Running:
    port: int
    served: list[str] = field(default_factory=list)  # paths the app was given (and lost)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    served: list[str] = []

    async def echo(request: Request) -> PlainTextResponse:
        served.append(request.url.path)
        try:
            body = await request.body()
        except ClientDisconnect:
            served.append(request.url.path + ":disconnected")
            raise
        return PlainTextResponse("ok:" + body.decode())

    async def disconnected(request: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse("gone", status_code=499)  # never sent: the client is gone

    app = Starlette(
        routes=[Route("/{path:path}", echo, methods=["GET", "POST"])],
        exception_handlers={ClientDisconnect: disconnected},
    )
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        loop="uvloop",
        http=_Tracked.with_limits(head_timeout=HEAD_TIMEOUT),
        lifespan="off",
        log_config=None,
        timeout_keep_alive=KEEP_ALIVE,
    )
    userver = uvicorn.Server(config)
    thread = threading.Thread(target=userver.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not userver.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    port = userver.servers[0].sockets[0].getsockname()[1]
    try:
        yield Running(port, served)
    finally:
        userver.should_exit = True
        thread.join(10)
    assert not thread.is_alive()
    assert _Tracked.made
    for protocol in _Tracked.made:
        assert protocol._head_timer is None and protocol._close_timer is None


@pytest.fixture(autouse=True)
def _quiet_server(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Refusals are routine: nothing on the server side may warn or fail over them."""
    yield
    records = caplog.get_records("setup") + caplog.get_records("call")
    assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == []


# -- a raw HTTP client -------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def read_response(sock: socket.socket, buffer: bytearray | None = None) -> Response:
    """One response (with Content-Length). `buffer` carries bytes read past it to the next."""
    buf = bytearray() if buffer is None else buffer
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {bytes(buf)!r}"
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    length = int(headers["content-length"])
    buf[:] = rest
    while len(buf) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a response body"
        buf += chunk
    body = bytes(buf[:length])
    del buf[:length]
    return Response(int(status_line.split()[1]), headers, body)


def closed_by_server(sock: socket.socket) -> bool:
    """Nothing more arrives, then end of stream."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def get(path: str, *headers: str) -> bytes:
    return (
        "\r\n".join([f"GET {path} HTTP/1.1", "Host: gateway.test", *headers]) + "\r\n\r\n"
    ).encode()


def assert_refused(response: Response, status: int, error: str) -> None:
    assert response.status == status
    assert response.headers["content-type"] == "application/json"
    assert response.headers["connection"] == "close"
    assert json.loads(response.body) == {"error": error}


def chunked_post(path: str) -> bytes:
    """A chunked POST up to its last chunk: the trailer section comes next."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n0\r\n"
    ).encode()


def wait_for(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 2
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def trickle(sock: socket.socket, pieces: list[bytes], every: float) -> float:
    """Send the pieces `every` seconds apart; stop early if the server answers. Returns when the
    first piece went out."""
    started = time.monotonic()
    for i, piece in enumerate(pieces):
        if i:
            readable, _, _ = select.select([sock], [], [], every)
            if readable:
                break
        sock.sendall(piece)
    return started


# -- normal traffic ----------------------------------------------------------------------------


def test_serving_runs_the_limited_protocol() -> None:
    assert uvicorn_config().http is HeadLimitedHttpToolsProtocol


def test_a_normal_request_and_a_keep_alive_second(server: Running) -> None:
    with server.connect() as sock:
        sock.sendall(get("/first"))
        first = read_response(sock)
        sock.sendall(get("/second"))
        second = read_response(sock)
    assert (first.status, first.body, second.status, second.body) == (200, b"ok:", 200, b"ok:")
    assert server.served[-2:] == ["/first", "/second"]


def test_pipelined_requests_with_bodies_and_trailers(server: Running) -> None:
    post = b"POST /posted HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 5\r\n\r\nhello"
    chunked = (
        b"POST /chunked HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Checksum: 1\r\n\r\n"
    )
    with server.connect() as sock:
        sock.sendall(post + chunked + get("/after"))
        buffer = bytearray()
        responses = [read_response(sock, buffer) for _ in range(3)]
    assert [(r.status, r.body) for r in responses] == [
        (200, b"ok:hello"),
        (200, b"ok:abcde"),
        (200, b"ok:"),
    ]


def test_a_head_just_under_the_cap_in_pieces_is_served(server: Running) -> None:
    # ~30 KiB in one header line that arrives in three reads: counted once, not refused.
    value = b"a" * (10 * 1024)
    pieces = [b"GET /big-but-fine HTTP/1.1\r\nHost: gateway.test\r\nX-Big: " + value, value]
    with server.connect() as sock:
        trickle(sock, [*pieces, value + b"\r\n\r\n"], every=0.05)
        response = read_response(sock)
    assert response.status == 200


# -- too large -----------------------------------------------------------------------------------


def test_40_kib_of_headers_is_431_and_closed(server: Running) -> None:
    filler = [f"X-Filler-{i}: {'a' * 1000}" for i in range(40)]
    with server.connect() as sock:
        sock.sendall(get("/too-large", *filler))
        assert_refused(read_response(sock), 431, "Request headers are too large")
        assert closed_by_server(sock)
    assert "/too-large" not in server.served
    # The server goes on serving.
    with server.connect() as sock:
        sock.sendall(get("/after-431"))
        assert read_response(sock).status == 200


def test_150_header_lines_is_431(server: Running) -> None:
    with server.connect() as sock:
        sock.sendall(get("/many-lines", *(f"X-H-{i}: {i}" for i in range(150))))
        assert_refused(read_response(sock), 431, "Request headers are too large")
        assert closed_by_server(sock)
    assert "/many-lines" not in server.served


def test_an_endless_header_line_is_cut_off(server: Running) -> None:
    # One header line that never ends: httptools holds it unseen, so only the bytes read count.
    with server.connect() as sock:
        sock.sendall(b"GET /endless HTTP/1.1\r\nHost: gateway.test\r\nX-Endless: ")
        sent = 0
        while not select.select([sock], [], [], 0)[0] and sent < 8 * 1024 * 1024:
            sock.sendall(b"a" * 65536)
            sent += 65536
        assert_refused(read_response(sock), 431, "Request headers are too large")
        assert closed_by_server(sock)
    assert sent < 8 * 1024 * 1024


def test_garbage_after_a_refused_head_gets_no_second_answer(
    server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    with server.connect() as sock:
        sock.sendall(
            get("/many-lines", *(f"X-H-{i}: {i}" for i in range(150))) + b"NONSENSE\r\n\r\n"
        )
        buffer = bytearray()
        assert_refused(read_response(sock, buffer), 431, "Request headers are too large")
        assert closed_by_server(sock) and not buffer
    # uvicorn notes the nonsense (fair enough), and nothing else goes wrong.
    assert wait_for(lambda: "Invalid HTTP request received." in caplog.text)
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warned == ["Invalid HTTP request received."]
    caplog.clear()


def test_a_refused_head_asking_for_an_upgrade_is_not_upgraded(server: Running) -> None:
    upgrade = ["Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13"]
    lines = [*upgrade, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]
    with server.connect() as sock:
        sock.sendall(get("/ws", *lines, *(f"X-H-{i}: {i}" for i in range(150))))
        assert_refused(read_response(sock), 431, "Request headers are too large")
        assert closed_by_server(sock)


def test_a_long_target_is_431(server: Running) -> None:
    with server.connect() as sock:
        sock.sendall(get("/" + "p" * 40_000))
        assert_refused(read_response(sock), 431, "Request headers are too large")


def test_too_many_trailer_lines_drop_the_connection(server: Running) -> None:
    with server.connect() as sock:
        trailers = b"".join(b"X-T-%d: %d\r\n" % (i, i) for i in range(150))
        sock.sendall(chunked_post("/trailer-lines") + trailers + b"\r\n")
        assert closed_by_server(sock)
    assert wait_for(lambda: "/trailer-lines:disconnected" in server.served)


def test_an_endless_trailer_line_drops_the_connection(server: Running) -> None:
    with server.connect() as sock:
        sock.sendall(chunked_post("/endless-trailer") + b"X-Endless: ")
        sent = 0
        with pytest.raises(OSError):  # the server hangs up while we are still sending
            while sent < 8 * 1024 * 1024:
                sock.sendall(b"a" * 65536)
                sent += 65536
    assert wait_for(lambda: "/endless-trailer:disconnected" in server.served)


# -- too slow ------------------------------------------------------------------------------------


def test_a_trickled_head_is_408_and_closed(server: Running) -> None:
    pieces = [b"GET /slowloris HTTP/1.1\r\n"] + [b"X-Drip-%d: x\r\n" % i for i in range(20)]
    with server.connect() as sock:
        started = trickle(sock, pieces, every=0.25)
        response = read_response(sock)
        assert closed_by_server(sock)
        elapsed = time.monotonic() - started
    assert_refused(response, 408, "Request headers took too long")
    assert HEAD_TIMEOUT - 0.1 < elapsed < HEAD_TIMEOUT + 1.0
    assert "/slowloris" not in server.served


def test_a_slow_head_inside_the_deadline_is_served(server: Running) -> None:
    # The deadline is per request and idle time does not count: the second head ends more than
    # HEAD_TIMEOUT after the first response, but itself takes less.
    pieces = [b"GET /slow-but-fine HTTP/1.1\r\n", b"Host: gateway.test\r\n", b"X-Late: 1\r\n\r\n"]
    with server.connect() as sock:
        sock.sendall(get("/first"))
        first = read_response(sock)
        time.sleep(0.7)
        trickle(sock, pieces, every=0.2)
        second = read_response(sock)
    assert (first.status, second.status) == (200, 200)
    assert server.served[-1] == "/slow-but-fine"


def test_blank_lines_or_silence_do_not_hold_a_connection(server: Running) -> None:
    def blank_lines() -> tuple[Response, bool]:
        with server.connect() as sock:
            trickle(sock, [b"\r\n"] * 20, every=0.25)
            return read_response(sock), closed_by_server(sock)

    def silence() -> tuple[float, bool]:
        with server.connect() as sock:
            started = time.monotonic()
            closed = closed_by_server(sock)
            return time.monotonic() - started, closed

    with ThreadPoolExecutor(2) as pool:
        scenarios: list[Callable[[], Any]] = [blank_lines, silence]
        (response, closed), (silent_for, silent_closed) = pool.map(lambda f: f(), scenarios)
    assert_refused(response, 408, "Request headers took too long")
    assert closed and silent_closed
    assert KEEP_ALIVE - 0.1 < silent_for < KEEP_ALIVE + 1.0


def test_limits_by_subclass_or_constructor() -> None:
    limited = HeadLimitedHttpToolsProtocol.with_limits(max_header_lines=7)
    assert issubclass(limited, HeadLimitedHttpToolsProtocol)
    assert (limited.max_header_lines, limited.max_head_bytes) == (7, 32 * 1024)
    with pytest.raises(ValueError, match="positive"):
        HeadLimitedHttpToolsProtocol.with_limits(head_timeout=0)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    loop = asyncio.new_event_loop()
    try:
        made = functools.partial(limited, head_timeout=2.5)(
            config=uvicorn.Config(app, log_config=None),
            server_state=ServerState(),
            app_state={},
            _loop=loop,
        )
        assert (made.max_header_lines, made.head_timeout, made.max_head_bytes) == (7, 2.5, 32768)
        with pytest.raises(ValueError, match="positive"):
            limited(config=made.config, server_state=ServerState(), app_state={}, max_head_bytes=-1)
    finally:
        loop.close()
