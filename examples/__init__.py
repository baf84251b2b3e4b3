"""Runnable examples of bridge (see README.md).

A package, so that servers can import ``examples.<name>:application``.
"""
