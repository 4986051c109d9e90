"""uvicorn's httptools protocol with a size cap and a deadline on each request head.

Out of the box uvicorn's httptools protocol accepts request heads of any size (httptools keeps
an unfinished header line to itself, so 200 MB of headers is 200 MB of worker memory) and sets
no deadline for one (a client trickling a header line a second holds a connection forever).
This subclass adds, per request:

- a cap on the size of the head (request target and header lines, default 32 KiB) and on its
  number of header lines (default 100): past either it answers ``431`` and closes;
- a deadline for the complete head (default 10 s) from the first byte of the request; on a
  keep-alive connection from the first byte after the previous request, the idle time before
  being uvicorn's ``timeout_keep_alive``. When it passes it answers ``408`` and closes.

The same size caps apply to the trailer section of a chunked body (header lines after the last
chunk, which would otherwise be buffered without limit too); as the app has the request by
then, going over just drops the connection. A connection that sends nothing at all is closed
after ``timeout_keep_alive`` (uvicorn arms that timer only after a response). Bodies and
everything else are uvicorn's and the app's business.

The size of a header section is known two ways, both never more than the true size: from the
parser callbacks (the target, each complete header line), and from whole socket reads that fall
inside the section (which covers the unfinished line httptools holds unseen). So nothing under
the cap is refused, and no more than the cap and a read or two is ever buffered.

After a refusal nothing more is parsed. The response is followed by a half-close, and what the
client still sends is read and dropped for ``refusal_linger`` seconds before closing: closing a
socket with unread data makes the kernel reset the connection, and the reset can destroy the
response before the client reads it.
"""

from __future__ import annotations

import json
import logging
from asyncio import TimerHandle
from http import HTTPStatus
from typing import Any, Literal, Self, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("gateway.http")

_LINE_OVERHEAD = len(b": \r\n")  # around each header name and value on the wire


def _refusal(status: HTTPStatus, error: str) -> tuple[bytes, bytes]:
    """The status line, and what follows the server's default headers (Date)."""
    body = json.dumps({"error": error}).encode()
    rest = (
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n"
        # Every response carries it (see gateway.edge), so browser wallets can read this one too.
        "access-control-allow-origin: *\r\n"
        "\r\n"
    )
    return f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode(), rest.encode() + body


_TOO_LARGE = _refusal(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Request headers are too large")
_TOO_SLOW = _refusal(HTTPStatus.REQUEST_TIMEOUT, "Request headers took too long")


def _check_limits(max_head_bytes: int, max_header_lines: int, head_timeout: float) -> None:
    if max_head_bytes <= 0 or max_header_lines <= 0 or not head_timeout > 0:
        raise ValueError("request head limits must be positive")


class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing request heads too large (431) or too slow (408).

    Give the class, or one made by `with_limits`, to ``uvicorn.Config(http=...)``. The limits
    can also be given to the constructor.
    """

    max_head_bytes: int = 32 * 1024
    max_header_lines: int = 100
    head_timeout: float = 10.0
    refusal_linger: float = 2.0

    @classmethod
    def with_limits(
        cls,
        *,
        max_head_bytes: int | None = None,
        max_header_lines: int | None = None,
        head_timeout: float | None = None,
    ) -> type[Self]:
        """A subclass with other defaults, for ``uvicorn.Config(http=...)``."""
        head_bytes = cls.max_head_bytes if max_head_bytes is None else max_head_bytes
        lines = cls.max_header_lines if max_header_lines is None else max_header_lines
        timeout = cls.head_timeout if head_timeout is None else head_timeout
        _check_limits(head_bytes, lines, timeout)
        limits = {"max_head_bytes": head_bytes, "max_header_lines": lines, "head_timeout": timeout}
        return cast("type[Self]", type(cls.__name__, (cls,), limits))

    def __init__(
        self,
        *args: Any,
        max_head_bytes: int | None = None,
        max_header_lines: int | None = None,
        head_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        if max_head_bytes is not None:
            self.max_head_bytes = max_head_bytes
        if max_header_lines is not None:
            self.max_header_lines = max_header_lines
        if head_timeout is not None:
            self.head_timeout = head_timeout
        _check_limits(self.max_head_bytes, self.max_header_lines, self.head_timeout)
        # Where the parser is: between requests, in a head, in a body, or just past a chunk-size
        # line (chunk data follows, or after the last chunk the trailer section).
        self._stage: Literal["idle", "head", "body", "chunk"] = "idle"
        self._sections = 0  # heads and chunks begun on this connection
        self._section_bytes = 0  # of the current head or trailers, from parser callbacks
        self._section_reads = 0  # of the current head or trailers, from reads wholly inside it
        self._section_lines = 0
        self._head_timer: TimerHandle | None = None
        self._close_timer: TimerHandle | None = None  # a silent new connection; refusal linger
        self._refused = False
        super().__init__(*args, **kwargs)

    # -- connection ----------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._close_timer = self.loop.call_later(
            self.config.timeout_keep_alive, self._close_quietly
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # answered already: drop the rest unparsed
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        stage, sections = self._stage, self._sections
        super().data_received(data)
        if self._refused:
            return
        if self.transport.is_closing():  # uvicorn answered 400 and is closing it
            self._cancel_timers()
            return
        unmoved = stage == self._stage and sections == self._sections
        if unmoved and stage in ("head", "chunk"):
            # The whole read lies inside a head, or trailers, begun by an earlier one.
            self._section_reads += len(data)
            if self._section_reads > self.max_head_bytes:
                self._over_limit("over %d bytes", self.max_head_bytes)
                return
        if self._head_timer is None and (self._stage == "head" or (unmoved and stage == "idle")):
            # A head has begun, or bytes before one (blank lines) came: start the clock.
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    # After a refusal httptools still parses the rest of that read (with the callbacks below
    # turned off), and uvicorn may react to what it finds there: not any more.

    def send_400_response(self, msg: str) -> None:
        if not self._refused:
            super().send_400_response(msg)

    def handle_websocket_upgrade(self) -> None:
        if not self._refused:
            super().handle_websocket_upgrade()

    # -- parser callbacks ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._refused:
            return
        self._new_section("head")
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        self._section_bytes += len(url)
        if self._section_bytes > self.max_head_bytes:
            self._over_limit("over %d bytes", self.max_head_bytes)
            return
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._section_bytes += len(name) + len(value) + _LINE_OVERHEAD
        self._section_lines += 1
        if self._section_lines > self.max_header_lines:
            self._over_limit("over %d header lines", self.max_header_lines)
            return
        if self._section_bytes > self.max_head_bytes:
            self._over_limit("over %d bytes", self.max_head_bytes)
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._stage = "body"
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()

    def on_chunk_header(self) -> None:  # uvicorn has none: nothing to pass on
        if not self._refused:
            self._new_section("chunk")

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        self._stage = "body"
        super().on_body(body)

    def on_chunk_complete(self) -> None:  # uvicorn has none: nothing to pass on
        if not self._refused:
            self._stage = "body"

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._stage = "idle"
        super().on_message_complete()

    def _new_section(self, stage: Literal["head", "chunk"]) -> None:
        self._stage = stage
        self._sections += 1
        self._section_bytes = self._section_reads = self._section_lines = 0

    # -- refusing ------------------------------------------------------------------------------

    def _over_limit(self, reason: str, *args: object) -> None:
        if self._stage == "head":
            self._refuse(_TOO_LARGE, "request head " + reason, *args)
        else:  # trailers: the app has the request already, so all there is left is to hang up
            self._refuse(None, "request trailers " + reason, *args)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._refused and not self.transport.is_closing():
            self._refuse(_TOO_SLOW, "request head not complete within %gs", self.head_timeout)

    def _refuse(self, response: tuple[bytes, bytes] | None, reason: str, *args: object) -> None:
        self._refused = True
        self._cancel_timers()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown client"
        log.info("refused a request from %s: " + reason, client, *args)
        if response is None:
            self.transport.close()
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # An earlier (pipelined) request is still being answered and a response now would
            # land inside that one: close once it is done instead.
            self.cycle.keep_alive = False
            return
        status_line, rest = response
        default_headers = [b"%s: %s\r\n" % pair for pair in self.server_state.default_headers]
        self.transport.write(b"".join([status_line, *default_headers, rest]))
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self._close_timer = self.loop.call_later(self.refusal_linger, self._close_quietly)

    def _close_quietly(self) -> None:
        self._close_timer = None
        self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._close_timer = None
