"""URLs: the admin at ``/admin/`` and one plain view at ``/``."""

from __future__ import annotations

from django.contrib import admin  # type: ignore[import-untyped]
from django.http import HttpRequest, HttpResponse  # type: ignore[import-untyped]
from django.urls import path  # type: ignore[import-untyped]


def index(request: HttpRequest) -> HttpResponse:
    # SCRIPT_NAME (the ASGI root_path) is honoured: reverse() and the admin's links use it.
    return HttpResponse(
        f"hello from django at {request.get_full_path()}", content_type="text/plain"
    )


urlpatterns = [
    path("", index),
    path("admin/", admin.site.urls),
]
