"""A Flask app, served through a WSGI-in-ASGI adapter as ``flask_app:application``.

``PROPAGATE_EXCEPTIONS`` is on, so ``/error`` lets the exception leave the WSGI
app and the *adapter* must turn it into a 500 (PEP 3333 §Error Handling).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

from flask import Flask, Response, jsonify, redirect, request, stream_with_context
from werkzeug.wrappers import Response as WerkzeugResponse

from compat_suite.adapters import wsgi_to_asgi
from compat_suite.apps import CHUNK_SIZE, size_and_digest
from compat_suite.gate import wait_for_gate

app = Flask(__name__)
app.config["PROPAGATE_EXCEPTIONS"] = True


@app.get("/")
def index() -> Response:
    return Response("hello from flask", content_type="text/plain; charset=utf-8")


@app.get("/pid")
def pid() -> Response:
    return jsonify(pid=os.getpid())


@app.post("/form")
def form_echo() -> Response:
    # Each uploaded file as [file name, size, sha256]: Werkzeug's multipart
    # parser reads wsgi.input itself through read() (wsgi.input_terminated
    # spares it Werkzeug's LimitedStream, which would use readinto()).
    files = {
        name: [[f.filename, *size_and_digest(f.read())] for f in request.files.getlist(name)]
        for name in request.files
    }
    return jsonify(form=request.form.to_dict(flat=False), files=files)


@app.post("/json")
def json_echo() -> Response:
    return jsonify(json=request.get_json())


@app.post("/upload")
def upload() -> Response:
    # request.stream, read in bounded pieces: the body is never held whole.
    digest = hashlib.sha256()
    size = 0
    while chunk := request.stream.read(CHUNK_SIZE):
        digest.update(chunk)
        size += len(chunk)
    return jsonify(bytes=size, sha256=digest.hexdigest())


@app.get("/stream")
def stream() -> Response:
    gate = int(request.args["gate"])

    def body() -> Iterator[bytes]:
        yield b"first chunk\n"
        # Reading request inside the generator needs stream_with_context.
        opened = wait_for_gate(gate)
        yield f"last chunk, gate {'opened' if opened else 'closed'}, {request.path}\n".encode()

    return Response(stream_with_context(body()), content_type="text/plain")


@app.get("/download/<int:size>")
def download(size: int) -> Response:
    def body() -> Iterator[bytes]:
        block = b"d" * CHUNK_SIZE
        remaining = size
        while remaining > 0:
            yield block[:remaining] if remaining < CHUNK_SIZE else block
            remaining -= CHUNK_SIZE

    return Response(
        body(),
        content_type="application/octet-stream",
        headers={"Content-Length": str(size)},
    )


@app.get("/unicode/<name>")
def unicode_path(name: str) -> Response:
    return jsonify(name=name, path=request.path)


@app.get("/query")
def query() -> Response:
    return jsonify(
        args=request.args.to_dict(flat=False),
        raw=request.query_string.decode("latin-1"),
    )


@app.get("/cookies")
def cookies() -> Response:
    return jsonify(cookies=request.cookies.to_dict())


@app.get("/set-cookie")
def set_cookie() -> Response:
    response = jsonify(ok=True)
    response.set_cookie("flavour", "oatmeal")
    response.set_cookie("session", "s3cr3t", httponly=True)
    return response


@app.get("/redirect")
def to_index() -> WerkzeugResponse:
    return redirect("/", code=302)


@app.get("/error")
def error() -> Response:
    raise RuntimeError("boom from flask")


application = wsgi_to_asgi(app)
