"""A tiny HTTP/1.1 server on asyncio streams: one request per connection, GET and HEAD only.

It runs on the processing loop's event loop, so the endpoints read the processor's state without
locks; every answer is computed from memory and is small, so it never holds the loop for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from http import HTTPStatus

from streamer.http.probes import TEXT, Observed, Response, Routes

log = logging.getLogger(__name__)

_REQUEST_LIMIT = 16 * 1024  # bytes of request line + headers; probes and scrapers send far less
_READ_TIMEOUT_S = 5.0  # a client that does not finish its request within this is dropped


class StatusServer:
    """Serves /metrics, /healthz and /readyz of one processor on ``host:port`` (0: any free port)."""

    def __init__(
        self,
        observed: Observed,
        host: str,
        port: int,
        *,
        stall_limit: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._routes = Routes(observed, stall_limit, monotonic)
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        """The port listened on (the one picked when started with 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen; raises OSError when the address cannot be used."""
        self._server = await asyncio.start_server(
            self._handle, self._host, self._port, limit=_REQUEST_LIMIT
        )

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._clients):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            try:
                response, head_only = await self._read(reader)
            except Exception:
                log.exception("http request failed")
                response, head_only = Response(500, TEXT, b"internal error\n"), False
            writer.write(_encode(response, head_only))
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the client went away
        finally:
            self._clients.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader) -> tuple[Response, bool]:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
        except asyncio.LimitOverrunError:
            return Response(431, TEXT, b"request header too large\n"), False
        except (asyncio.IncompleteReadError, TimeoutError):
            return Response(400, TEXT, b"incomplete request\n"), False
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return Response(400, TEXT, b"bad request line\n"), False
        method, target = parts[0], parts[1]
        path = target.split("?", 1)[0]
        return self._routes.answer(method, path), method == "HEAD"


def _encode(response: Response, head_only: bool) -> bytes:
    reason = HTTPStatus(response.status).phrase
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Cache-Control: no-store",
        "Connection: close",
        *(f"{name}: {value}" for name, value in response.headers),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body
