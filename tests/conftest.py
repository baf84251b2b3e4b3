"""Shared fixtures.

Every async test runs on asyncio *and* trio: the backends are pinned here
explicitly, because anyio's pytest plugin would silently run asyncio only if
the parametrisation were left to its default.
"""

from __future__ import annotations

import pytest


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each ``@pytest.mark.anyio`` test once per backend."""
    return str(request.param)
