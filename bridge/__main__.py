"""``python -m bridge``: see :mod:`bridge.cli`."""

from __future__ import annotations

from bridge.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
