"""Django (a WSGI app) on uvicorn through :class:`~bridge.WsgiToAsgi`.

The project in ``examples/django_site`` has the admin at ``/admin/`` (its
SQLite database is migrated at start) and static files under ``/static/``.
Run it::

    python examples/django_on_uvicorn.py        # or:
    python -m bridge serve examples.django_site.wsgi:application
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for "examples.*"

from bridge import WsgiToAsgi
from examples.django_site.wsgi import application

#: The ASGI app uvicorn serves; Django's views run in WsgiToAsgi's worker threads.
app = WsgiToAsgi(application, max_threads=8)

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
