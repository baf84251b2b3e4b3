"""The Flask app of :mod:`compat_suite.apps.flask_app` behind the matrix's adapter."""

from __future__ import annotations

from compat_suite.apps.flask_app import app
from compat_suite.matrix.variants import wrap_wsgi_app

application = wrap_wsgi_app(app)
