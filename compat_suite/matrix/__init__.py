"""The conformance matrix: servers × frameworks × adapters × scenarios.

- :mod:`~compat_suite.matrix.scenarios`: the scenarios, plain functions.
- :mod:`~compat_suite.matrix.variants`: the adapters by name (each bridge executor and backend).
- :mod:`~compat_suite.matrix.gaps`: known gaps, with reasons.
- :mod:`~compat_suite.matrix.runner`: plans rows, starts servers, runs scenarios into cells.
- :mod:`~compat_suite.matrix.report`: Markdown and HTML.

Kept import-light: the served apps import :mod:`~compat_suite.matrix.variants` only.
"""
