"""A small Django project served through ``WsgiToAsgi``: see ``examples/django_on_uvicorn.py``."""
