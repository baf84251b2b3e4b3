"""Conformance matrix for WSGI/ASGI bridges (see README.md)."""
