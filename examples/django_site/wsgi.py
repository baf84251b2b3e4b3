"""The WSGI application of the example Django project, with static files and a migrated DB.

``StaticFilesHandler`` (from ``django.contrib.staticfiles``) serves ``/static/``
from the finders, so no collectstatic and no WhiteNoise are needed for the
example; in production a web server or WhiteNoise does this.
"""

from __future__ import annotations

import os

import django  # type: ignore[import-untyped]
from django.contrib.staticfiles.handlers import StaticFilesHandler  # type: ignore[import-untyped]
from django.core.management import call_command  # type: ignore[import-untyped]
from django.core.wsgi import get_wsgi_application  # type: ignore[import-untyped]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_site.settings")
django.setup()
call_command("migrate", interactive=False, verbosity=0)  # the temporary SQLite DB

application = StaticFilesHandler(get_wsgi_application())
