"""Fixtures of the end-to-end tests: real servers on 127.0.0.1, real HTTP.

A test module lists its deployments and parametrises the module-scoped ``live``
fixture with them, so each server starts once per module and deployment::

    pytestmark = pytest.mark.parametrize(
        "live", deployments("wsgi-in-asgi", ["uvicorn"], ["flask"]), indirect=True, scope="module"
    )

    def test_index(live: Live) -> None:
        assert live.client.get("/").status_code == 200

A failing test shows the tail of the server's log.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from compat_suite.deployments import Deployment, Live, deploy
from tests.e2e.harness import known_failure, skip_unless_adapter_exists


def _deployment_of(item: pytest.Item) -> Deployment | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    for value in callspec.params.values():
        if isinstance(value, Deployment):
            return value
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the documented failures of the peer adapters as xfails."""
    for item in items:
        deployment = _deployment_of(item)
        if deployment is None or not isinstance(item, pytest.Function):
            continue
        failure = known_failure(deployment, item.originalname)
        if failure is not None:
            item.add_marker(
                pytest.mark.xfail(
                    reason=f"{deployment.adapter}: {failure.reason}",
                    strict=failure.strict,
                    run=failure.run,
                )
            )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the server's log to a failing test's report."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        for value in funcargs.values():
            if isinstance(value, Live):
                report.sections.append(
                    (f"server log ({value.server.name})", value.server.log_text())
                )
    return report


@pytest.fixture(scope="module")
def live(request: pytest.FixtureRequest) -> Iterator[Live]:
    """The deployment named by the test's ``live`` parameter, started once per module."""
    deployment: Deployment = request.param
    skip_unless_adapter_exists(deployment)
    with deploy(deployment) as running:
        yield running
