"""Settings of the example Django project (not for production: the key is public).

The database is SQLite in a fresh temporary directory, removed when the
process exits (or the file ``BRIDGE_EXAMPLE_DB`` names, kept), migrated when
``examples.django_site.wsgi`` is imported.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path


def _database() -> str:
    chosen = os.environ.get("BRIDGE_EXAMPLE_DB")
    if chosen:
        return chosen
    # A directory of our own, so the SQLite journal files go with it.
    directory = tempfile.mkdtemp(prefix="bridge-django-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return str(Path(directory) / "db.sqlite3")


BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "bridge-example-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "examples.django_site.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _database(),
    }
}
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
