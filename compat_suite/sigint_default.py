"""``python -m compat_suite.sigint_default MODULE [ARG ...]``: ``python -m MODULE [ARG ...]``
with Python's own SIGINT handler in place.

A process started with SIGINT ignored hands that on to every child it starts
(a shell starts its background jobs that way), and a Python child then keeps
ignoring SIGINT instead of raising ``KeyboardInterrupt``. waitress stops
gracefully only on SIGINT (rule 2 of :mod:`compat_suite.servers`): started by
a matrix run in the background, it ignored the stop, was killed after the
grace period, and never ran ``atexit`` (so no lifespan shutdown). Servers
whose stop signal is SIGINT are launched through this module.
"""

from __future__ import annotations

import runpy
import signal
import sys


def main(argv: list[str]) -> None:
    """Restore SIGINT's default Python handler, then run ``argv[0]`` as ``__main__``."""
    if not argv:
        sys.exit("usage: python -m compat_suite.sigint_default MODULE [ARG ...]")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.argv = list(argv)  # the module sees its own argv, as under "python -m"
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
