"""Django's own ASGI handler (same settings and views as :mod:`compat_suite.apps.django_app`).

Django's ``ASGIHandler`` raises on the lifespan scope, so the adapter must keep
serving after a failed lifespan (SPEC E5). Served behind the matrix's adapter.
"""

from __future__ import annotations

from typing import cast

from django.core.asgi import get_asgi_application  # type: ignore[import-untyped]

import compat_suite.apps.django_app  # noqa: F401  (configures settings, defines the views)
from bridge.types import ASGIApp
from compat_suite.matrix.variants import wrap_asgi_app

app = cast("ASGIApp", get_asgi_application())
application = wrap_asgi_app(app)
