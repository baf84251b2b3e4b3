"""The FastAPI app of :mod:`compat_suite.apps.fastapi_app` behind the matrix's adapter."""

from __future__ import annotations

from compat_suite.apps.fastapi_app import app
from compat_suite.matrix.variants import wrap_asgi_app

application = wrap_asgi_app(app)
