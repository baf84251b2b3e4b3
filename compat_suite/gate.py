"""A gate the test opens and the served app waits on, across processes, without sleeps.

The test side listens on a loopback TCP port and passes the port to the app
(e.g. ``/stream?gate=43121``). The app connects and blocks reading one byte; the
test accepts that connection (which proves the app reached the gate) and sends
the byte. Closing the gate without opening it releases the app with ``False``,
so a failed test never leaves a server thread blocked.
"""

from __future__ import annotations

import socket
from types import TracebackType

import anyio

__all__ = ["APP_TIMEOUT", "Gate", "await_gate", "wait_for_gate"]

#: Seconds an app waits at a gate before giving up with an error.
APP_TIMEOUT = 30.0

_HOST = "127.0.0.1"
_OPEN = b"1"


class Gate:
    """The test's end: a listening socket the app connects to.

    :param accept_timeout: seconds :meth:`wait_for_arrival` waits for the app.
    """

    def __init__(self, accept_timeout: float = 15.0) -> None:
        self._listener = socket.create_server((_HOST, 0))
        self._listener.settimeout(accept_timeout)
        self._arrived: list[socket.socket] = []
        self.port: int = self._listener.getsockname()[1]

    def wait_for_arrival(self) -> None:
        """Block until the app is waiting at the gate.

        :raises TimeoutError: if the app does not arrive within ``accept_timeout``.
        """
        conn, _ = self._listener.accept()
        self._arrived.append(conn)

    def open(self) -> None:
        """Release every app waiting at the gate, waiting for one to arrive first if none has.

        :raises TimeoutError: if no app arrives within ``accept_timeout``.
        """
        if not self._arrived:
            self.wait_for_arrival()
        for conn in self._arrived:
            conn.sendall(_OPEN)
            conn.close()
        self._arrived.clear()

    def close(self) -> None:
        """Stop listening; apps still waiting are released with ``False``."""
        for conn in self._arrived:
            conn.close()
        self._arrived.clear()
        self._listener.close()

    def __enter__(self) -> Gate:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def wait_for_gate(port: int) -> bool:
    """The app's end, for threads: block until the test opens the gate on ``port``.

    :returns: ``True`` if the gate was opened, ``False`` if the test closed it.
    :raises OSError: if the gate cannot be reached or stays shut for :data:`APP_TIMEOUT` seconds.
    """
    with socket.create_connection((_HOST, port), timeout=APP_TIMEOUT) as conn:
        return conn.recv(1) == _OPEN


async def await_gate(port: int) -> bool:
    """The app's end, for asyncio or trio: like :func:`wait_for_gate`, without blocking the loop.

    :returns: ``True`` if the gate was opened, ``False`` if the test closed it.
    :raises TimeoutError: if the gate stays shut for :data:`APP_TIMEOUT` seconds.
    """
    with anyio.fail_after(APP_TIMEOUT):
        async with await anyio.connect_tcp(_HOST, port) as stream:
            try:
                return await stream.receive(1) == _OPEN
            except anyio.EndOfStream:
                return False
