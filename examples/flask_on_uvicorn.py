"""A Flask app served by uvicorn through ``bridge.WsgiToAsgi``.

Run it, then open http://127.0.0.1:8000/::

    python examples/flask_on_uvicorn.py              # 127.0.0.1:8000
    python examples/flask_on_uvicorn.py 0.0.0.0 9000 # or HOST=0.0.0.0 PORT=9000

``WsgiToAsgi(flask_app)`` *is* an ASGI app: Flask runs in worker threads, and
each chunk it yields reaches the client as it is produced.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import uvicorn
from flask import Flask, Response, request

from bridge import WsgiToAsgi

flask_app = Flask(__name__)


@flask_app.get("/")
def index() -> str:
    return "Hello from Flask, served by uvicorn through bridge.WsgiToAsgi!\n"


@flask_app.get("/hello/<name>")
def hello(name: str) -> dict[str, object]:
    return {"hello": name, "query": request.args.to_dict()}


@flask_app.get("/count/<int:n>")
def count(n: int) -> Response:
    def lines() -> Iterator[str]:
        for i in range(1, n + 1):
            yield f"{i}\n"

    return Response(lines(), content_type="text/plain")


application = WsgiToAsgi(flask_app)


def main(argv: list[str]) -> None:
    """Serve on ``argv[1]``:``argv[2]``, else ``$HOST``:``$PORT``, else 127.0.0.1:8000."""
    host = argv[1] if len(argv) > 1 else os.environ.get("HOST", "127.0.0.1")
    port = int(argv[2] if len(argv) > 2 else os.environ.get("PORT", "8000"))
    uvicorn.run(application, host=host, port=port)


if __name__ == "__main__":
    main(sys.argv)
