"""A Django app configured in code; ``django_app:application`` serves it on ASGI servers.

No database and no templates: ``DEBUG=False``, so ``/error`` and unknown paths
get Django's own plain 500 and 404 pages (the exception never reaches the adapter).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator

import django  # type: ignore[import-untyped]
from django.conf import settings  # type: ignore[import-untyped]

settings.configure(
    DEBUG=False,
    SECRET_KEY="compat-suite-not-secret",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    DATABASES={},
    TEMPLATES=[],
    USE_TZ=True,
    # Server errors go to stderr, the server's captured log.
    LOGGING={
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": {"class": "logging.StreamHandler"}},
        "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
    },
)
django.setup()

from django.core.wsgi import get_wsgi_application  # type: ignore[import-untyped]  # noqa: E402 (needs settings)
from django.http import (  # type: ignore[import-untyped]  # noqa: E402
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import path  # type: ignore[import-untyped]  # noqa: E402

from compat_suite.adapters import wsgi_to_asgi  # noqa: E402
from compat_suite.apps import CHUNK_SIZE, size_and_digest  # noqa: E402
from compat_suite.gate import wait_for_gate  # noqa: E402


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello from django", content_type="text/plain; charset=utf-8")


def pid(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"pid": os.getpid()})


def form_echo(request: HttpRequest) -> HttpResponse:
    # Each uploaded file as [file name, size, sha256]: Django's multipart
    # parser reads wsgi.input through read(), in 64 KiB pieces.
    files = {
        name: [[f.name, *size_and_digest(f.read())] for f in request.FILES.getlist(name)]
        for name in request.FILES
    }
    form = {k: request.POST.getlist(k) for k in request.POST}
    return JsonResponse({"form": form, "files": files})


def json_echo(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"json": json.loads(request.body)})


def upload(request: HttpRequest) -> HttpResponse:
    # request.read in bounded pieces: the body is never held whole.
    digest = hashlib.sha256()
    size = 0
    while chunk := request.read(CHUNK_SIZE):
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse({"bytes": size, "sha256": digest.hexdigest()})


def stream(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    gate = int(request.GET["gate"])

    def body() -> Iterator[bytes]:
        yield b"first chunk\n"
        opened = wait_for_gate(gate)
        yield f"last chunk, gate {'opened' if opened else 'closed'}, {request.path}\n".encode()

    return StreamingHttpResponse(body(), content_type="text/plain")


def download(request: HttpRequest, size: int) -> StreamingHttpResponse:
    def body() -> Iterator[bytes]:
        block = b"d" * CHUNK_SIZE
        remaining = size
        while remaining > 0:
            yield block[:remaining] if remaining < CHUNK_SIZE else block
            remaining -= CHUNK_SIZE

    response = StreamingHttpResponse(body(), content_type="application/octet-stream")
    response["Content-Length"] = str(size)
    return response


def unicode_path(request: HttpRequest, name: str) -> HttpResponse:
    return JsonResponse({"name": name, "path": request.path})


def query(request: HttpRequest) -> HttpResponse:
    return JsonResponse(
        {
            "args": {k: request.GET.getlist(k) for k in request.GET},
            "raw": request.META.get("QUERY_STRING", ""),
        }
    )


def cookies(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"cookies": dict(request.COOKIES)})


def set_cookie(request: HttpRequest) -> HttpResponse:
    response = JsonResponse({"ok": True})
    response.set_cookie("flavour", "oatmeal")
    response.set_cookie("session", "s3cr3t", httponly=True)
    return response


def to_index(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect("/")


def error(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom from django")


urlpatterns = [
    path("", index),
    path("pid", pid),
    path("form", form_echo),
    path("json", json_echo),
    path("upload", upload),
    path("stream", stream),
    path("download/<int:size>", download),
    path("unicode/<str:name>", unicode_path),
    path("query", query),
    path("cookies", cookies),
    path("set-cookie", set_cookie),
    path("redirect", to_index),
    path("error", error),
]

app = get_wsgi_application()
application = wsgi_to_asgi(app)
