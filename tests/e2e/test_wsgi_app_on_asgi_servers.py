"""WSGI frameworks (Flask, Django) through a WSGI-in-ASGI adapter on real ASGI servers."""

from __future__ import annotations

import hashlib

import pytest

from compat_suite.deployments import Live
from tests.e2e.harness import MiB, deployments, read_gated_stream, upload

SERVERS = ["uvicorn", "hypercorn", "hypercorn-trio", "granian-asgi"]
APPS = ["flask", "django"]

pytestmark = pytest.mark.parametrize(
    "live", deployments("wsgi-in-asgi", SERVERS, APPS), indirect=True, scope="module"
)


def test_get(live: Live) -> None:
    response = live.client.get("/")
    assert response.status_code == 200
    assert response.text == f"hello from {live.deployment.app}"
    assert response.headers["content-type"].startswith("text/plain")
    # Flask sets Content-Length; Django (without CommonMiddleware) does not.
    if live.deployment.app == "flask":
        assert response.headers["content-length"] == str(len(response.content))


def test_post_form(live: Live) -> None:
    response = live.client.post("/form", data={"name": "Ada Lovelace", "langs": ["py", "c"]})
    assert response.status_code == 200
    assert response.json() == {
        "form": {"name": ["Ada Lovelace"], "langs": ["py", "c"]},
        "files": {},
    }


def test_post_multipart_form_with_files(live: Live) -> None:
    # 700 KiB: many ASGI body messages, yet below the 1 MiB the adapter keeps
    # in memory, so the framework's parser reads the chunks as they arrived.
    data = bytes(range(256)) * (700 * 1024 // 256)
    lines = b"first line\r\n--not-the-boundary\r\n" * 5000
    response = live.client.post(
        "/form",
        data={"name": "Ada"},
        files=[("doc", ("data.bin", data)), ("doc", ("lines.txt", lines))],
    )
    assert response.status_code == 200
    assert response.json() == {
        "form": {"name": ["Ada"]},
        "files": {
            "doc": [
                ["data.bin", len(data), hashlib.sha256(data).hexdigest()],
                ["lines.txt", len(lines), hashlib.sha256(lines).hexdigest()],
            ]
        },
    }


def test_post_json(live: Live) -> None:
    document = {"hello": "wörld", "n": [1, 2, 3], "nested": {"ok": True}}
    response = live.client.post("/json", json=document)
    assert response.status_code == 200
    assert response.json() == {"json": document}


# Below the adapter's 1 MiB body_buffer_size the body stays in memory as the
# chunks it arrived in; 50 MiB goes to a temporary file.
@pytest.mark.timeout(120)
@pytest.mark.parametrize("size", [MiB - 1, 50 * MiB], ids=["in-memory", "50-mib"])
def test_upload_with_content_length(live: Live, size: int) -> None:
    upload(live.client, size)


@pytest.mark.timeout(120)
def test_upload_50_mib_chunked(live: Live) -> None:
    if live.deployment.app == "django":
        pytest.skip("Django reads CONTENT_LENGTH bytes only: a chunked body is empty by design")
    upload(live.client, 50 * MiB, chunked=True)


def test_streamed_response_arrives_before_it_ends(live: Live) -> None:
    received = read_gated_stream(live.client)
    assert received.startswith(b"first chunk\nlast chunk, gate opened")


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        pytest.param("中文", "%E4%B8%AD%E6%96%87", id="cjk"),
        pytest.param("café au lait", "caf%C3%A9%20au%20lait", id="latin1-range-and-space"),
        pytest.param("emoji-🐍", "emoji-%F0%9F%90%8D", id="astral"),
    ],
)
def test_unicode_path(live: Live, name: str, quoted: str) -> None:
    response = live.client.get(f"/unicode/{quoted}")
    assert response.status_code == 200
    assert response.json() == {"name": name, "path": f"/unicode/{name}"}


def test_query_string(live: Live) -> None:
    raw = "a=1&a=2&b=%C3%A9t%C3%A9&c=x+y&d=%26&empty="
    response = live.client.get(f"/query?{raw}")
    assert response.status_code == 200
    assert response.json() == {
        "args": {"a": ["1", "2"], "b": ["été"], "c": ["x y"], "d": ["&"], "empty": [""]},
        "raw": raw,
    }


def test_cookies_reach_the_app(live: Live) -> None:
    response = live.client.get("/cookies", headers={"Cookie": "flavour=oatmeal; lang=fr"})
    assert response.status_code == 200
    assert response.json() == {"cookies": {"flavour": "oatmeal", "lang": "fr"}}


def test_set_cookie_headers_stay_separate(live: Live) -> None:
    response = live.client.get("/set-cookie")
    assert response.status_code == 200
    set_cookies = response.headers.get_list("set-cookie")
    assert len(set_cookies) == 2, set_cookies
    assert set_cookies[0].startswith("flavour=oatmeal")
    assert set_cookies[1].startswith("session=s3cr3t")
    assert "httponly" in set_cookies[1].lower()


def test_redirect(live: Live) -> None:
    response = live.client.get("/redirect")
    assert response.status_code == 302
    assert response.headers["location"] == "/"
    followed = live.client.get("/redirect", follow_redirects=True)
    assert followed.status_code == 200
    assert followed.text == f"hello from {live.deployment.app}"


def test_head_has_headers_and_no_body(live: Live) -> None:
    get = live.client.get("/")
    response = live.client.head("/")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-type"] == get.headers["content-type"]
    assert response.headers.get("content-length") == get.headers.get("content-length")


def test_head_of_streamed_download(live: Live) -> None:
    response = live.client.head("/download/200000")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "200000"


def test_download(live: Live) -> None:
    response = live.client.get("/download/1000000")
    assert response.status_code == 200
    assert response.headers["content-length"] == "1000000"
    assert (
        hashlib.sha256(response.content).hexdigest() == hashlib.sha256(b"d" * 1000000).hexdigest()
    )


def test_not_found(live: Live) -> None:
    response = live.client.get("/no/such/route")
    assert response.status_code == 404


def test_exception_becomes_500(live: Live) -> None:
    response = live.client.get("/error")
    assert response.status_code == 500
    # The server keeps serving.
    assert live.client.get("/").status_code == 200
