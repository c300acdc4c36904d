"""A TCP proxy for outage tests: clients connect through it; ``cut()`` drops every
connection and ``refuse`` turns new ones away, simulating a broker outage. ``accepted``,
``refused`` and what ``cut()`` returns let a test check that the outage hit someone."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """Forwards a local port to the broker; :meth:`cut` drops every connection."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.refuse = False
        self.accepted = 0
        self.refused = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            self.refused += 1
            writer.close()
            return
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    def cut(self) -> int:
        """Drop every open connection; how many connection ends (2 per connection) were
        still open."""
        open_ends = [writer for writer in self.writers if not writer.transport.is_closing()]
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()
        return len(open_ends)

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
