"""Known gaps: what a server (or WSGI itself) cannot carry, with the reason.

A failing cell that matches a gap is reported as ``gap`` with this reason, for
every adapter alike: the limit is the server's, not the adapter's. Patterns
are names or ``"*"``. A gap never turns a passing cell into anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compat_suite.matrix.runner import Row

__all__ = ["KNOWN_GAPS", "Gap", "known_gap"]


@dataclass(frozen=True)
class Gap:
    """A documented limit; ``"*"`` matches anything.

    ``seen`` (when not empty) must occur in the failure's text, so that only
    the documented symptom is excused, never a different failure of the same cell.
    """

    reason: str
    server: str = "*"
    framework: str = "*"
    adapter: str = "*"
    scenario: str = "*"
    seen: str = ""

    def matches(self, row: Row, scenario: str, detail: str = "") -> bool:
        """Whether this gap explains a failure of ``scenario`` on ``row`` that said ``detail``."""
        if self.seen and self.seen not in detail:
            return False
        return all(
            pattern in ("*", value)
            for pattern, value in (
                (self.server, row.server),
                (self.framework, row.framework),
                (self.adapter, row.adapter),
                (self.scenario, scenario),
            )
        )


#: Every known gap, most specific first.
KNOWN_GAPS: tuple[Gap, ...] = (
    Gap(
        "the server answers 400 to raw 8-bit bytes in the request target (RFC 9112 allows "
        "only visible ASCII there), so the request never reaches the adapter",
        scenario="query-8bit",
        seen="saw (400",
    ),
    Gap(
        "gunicorn's sync worker (one worker here) serves one request at a time",
        server="gunicorn-sync",
        scenario="concurrency",
    ),
    Gap(
        "gunicorn's sync worker closes the connection after every response (no keep-alive)",
        server="gunicorn-sync",
        scenario="keep-alive",
    ),
    Gap(
        "wsgiref.simple_server speaks HTTP/1.0 and closes the connection after every response",
        server="wsgiref",
        scenario="keep-alive",
    ),
    Gap(
        "wsgiref.simple_server does not decode chunked request bodies (no Content-Length, "
        "no wsgi.input_terminated), so the app sees an empty body (SPEC D1)",
        server="wsgiref",
        scenario="chunked-upload",
    ),
    Gap(
        "Django's WSGIRequest reads CONTENT_LENGTH bytes only and ignores "
        "wsgi.input_terminated: a chunked upload (no Content-Length) is empty to Django views",
        framework="django",
        scenario="chunked-upload",
    ),
    Gap(
        "Django's ASGIHandler consumes a synchronous StreamingHttpResponse iterator whole "
        "before sending it (Django warns about it), so nothing streams",
        framework="django-asgi",
        scenario="streaming",
    ),
    Gap(
        "the WSGI server merges repeated request headers its own way before the adapter "
        "sees them (gunicorn and waitress join Cookie with ',', granian with ';', cheroot "
        "keeps the last one); HTTP/1.1 clients send one Cookie header anyway",
        framework="asgi",
        scenario="cookies",
    ),
    Gap(
        "cheroot keeps only the last of repeated request headers",
        server="cheroot",
        scenario="duplicate-headers",
    ),
    Gap(
        "cheroot leaves %2F encoded in PATH_INFO (other WSGI servers decode it, CGI-style)",
        server="cheroot",
        scenario="percent-slash",
    ),
    Gap(
        "wsgiref.simple_server answers HTTP/1.0 without Content-Length: closing the connection "
        "is how that body ends, so an aborted response looks complete to the client",
        server="wsgiref",
        scenario="error-after-headers",
    ),
    Gap(
        "granian's WSGI interface ends the chunked response cleanly when the iterator raises, "
        "so the client cannot tell the abort (the adapter did raise, SPEC D9)",
        server="granian-wsgi",
        scenario="error-after-headers",
    ),
    Gap(
        "`python -m cheroot` leaves SIGTERM to Python's default (exit at once): no atexit "
        "handler runs, and cheroot has no hook that calls the app's close()",
        server="cheroot",
        scenario="lifespan-shutdown",
    ),
    Gap(
        "Django's ASGIHandler needs asyncio (asgiref's sync_to_async); it cannot run on "
        "AsgiToWsgi's trio loop",
        framework="django-asgi",
        adapter="bridge-trio",
    ),
    Gap(
        "executor='greenlet' runs the app on the event loop's thread: an app that blocks "
        "outside the adapter's own I/O (here a plain socket read) holds every request; "
        "by design (WsgiToAsgi docstring), scale with server workers",
        adapter="bridge-greenlet",
        scenario="concurrency",
    ),
    Gap(
        "executor='greenlet' runs the app on the loop's thread: while the test app blocks "
        "on its gate (a plain socket read) daphne's reactor cannot flush the first chunk",
        server="daphne",
        adapter="bridge-greenlet",
        scenario="streaming",
    ),
    Gap(
        "executor='greenlet' runs the app on the loop's thread: while the test app blocks "
        "on its gate (a plain socket read) daphne's reactor cannot serve the request",
        server="daphne",
        adapter="bridge-greenlet",
        scenario="disconnect",
    ),
    *(
        Gap(
            "granian's ASGI send() drops the body with no OSError once the client is gone "
            "(ASGI 2.3, emmett-framework/granian#650); receive() reports http.disconnect "
            "only later (a native ASGI app on a loaded machine streamed 62.5 MiB to a "
            "client that had left in 5 runs of 12). The greenlet executor, with no "
            "thread hop per chunk, can queue the whole 16 MiB before that, or (when the "
            "client left while the test app blocked the loop on its gate) never hear of it. "
            "tests/e2e/test_disconnect.py shows the first without the gate, most often on a "
            "loaded machine (the iterable is still closed once, after 245 of 257 chunks)",
            server="granian-asgi",
            adapter="bridge-greenlet",
            scenario="disconnect",
            seen=seen,
        )
        # Both symptoms, and only these: everything produced, or never closed.
        for seen in ("iteration stopped before the end", "'gate_opened': True}")
    ),
)


def known_gap(row: Row, scenario: str, detail: str = "") -> Gap | None:
    """The first gap that explains a failure of ``scenario`` on ``row`` saying ``detail``."""
    for gap in KNOWN_GAPS:
        if gap.matches(row, scenario, detail):
            return gap
    return None
