"""Run a callback when this process exits, whichever way a server ends it.

``atexit`` alone is not enough. A worker started by :mod:`multiprocessing`
(granian's workers are) leaves through ``os._exit()`` once its target returns,
and ``os._exit`` skips ``atexit``. What such a child does run on the way out is
:mod:`multiprocessing`'s own exit function, which calls every
``multiprocessing.util.Finalize`` that has an exit priority. So in a
multiprocessing child we register the callback there as well; everywhere else
(gunicorn's forked workers, waitress, wsgiref, the interpreter's main process)
``atexit`` runs it.

In a multiprocessing child both ways may fire (``spawn`` children, and any
child whose target calls ``sys.exit()``, also run ``atexit``): each
registration runs its callback at most once.
"""

from __future__ import annotations

import atexit
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["register", "unregister"]

# Finalizers with a higher priority run first. Ours runs the app's lifespan
# shutdown, which may still use multiprocessing's pools (15), queues (10) and
# managers (0), so it goes before all of them.
_EXIT_PRIORITY = 50


class _Once:
    """The callback as registered: runs once, however many exits offer it."""

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.finalizer: Any = None
        self._ran = False
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            if self._ran:
                return
            self._ran = True
        self.callback()


_registered: dict[Callable[[], None], _Once] = {}
_lock = threading.Lock()


def _in_multiprocessing_child() -> bool:
    # A process that multiprocessing started has imported it; importing it
    # here otherwise would only cost start-up time.
    mp = sys.modules.get("multiprocessing")
    return mp is not None and mp.parent_process() is not None


def register(callback: Callable[[], None]) -> None:
    """Call ``callback()`` once when the process exits.

    Registering a callback that is already registered does nothing.
    """
    with _lock:
        if callback in _registered:
            return
        once = _registered[callback] = _Once(callback)
    atexit.register(once)
    if _in_multiprocessing_child():
        from multiprocessing.util import Finalize

        once.finalizer = Finalize(None, once, exitpriority=_EXIT_PRIORITY)


def unregister(callback: Callable[[], None]) -> None:
    """Forget ``callback``; a no-op if it is not registered."""
    with _lock:
        once = _registered.pop(callback, None)
    if once is None:
        return
    atexit.unregister(once)
    if once.finalizer is not None:
        once.finalizer.cancel()
