"""Text replies travel gzip-compressed to clients that accept it; others get them as they are."""

from __future__ import annotations

import gzip

from api.app import create_app


def _app(sqlite_url: str, **config):
    return create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "SECRET_KEY": "x", **config})


def test_pages_scripts_and_styles_are_compressed_for_clients_that_accept_it(sqlite_url) -> None:
    client = _app(sqlite_url).test_client()
    for path in ("/", "/static/site.css", "/static/offline.js", "/privacy"):
        plain = client.get(path)
        packed = client.get(path, headers={"Accept-Encoding": "gzip, deflate, br"})
        assert plain.status_code == packed.status_code == 200, path
        assert "Content-Encoding" not in plain.headers
        assert packed.headers["Content-Encoding"] == "gzip"
        assert "Accept-Encoding" in packed.headers["Vary"]
        assert gzip.decompress(packed.get_data()) == plain.get_data()
        assert len(packed.get_data()) < 0.6 * len(plain.get_data()), path
        assert int(packed.headers["Content-Length"]) == len(packed.get_data())


def test_a_compressed_static_file_is_still_revalidated_with_its_etag(sqlite_url) -> None:
    client = _app(sqlite_url).test_client()
    first = client.get("/static/site.css", headers={"Accept-Encoding": "gzip"})
    etag = first.headers["ETag"]
    assert etag.startswith("W/")
    again = client.get("/static/site.css", headers={"Accept-Encoding": "gzip",
                                                    "If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""


def test_small_replies_and_errors_are_left_alone(sqlite_url) -> None:
    client = _app(sqlite_url).test_client()
    small = client.get("/static/tz.js", headers={"Accept-Encoding": "gzip"})  # 513 bytes
    assert small.status_code == 200 and "Content-Encoding" not in small.headers
    assert small.get_data().startswith(b"/*") or small.get_data().startswith(b"(")
    missing = client.get("/api/v1/no-such-thing", headers={"Accept-Encoding": "gzip"})
    assert missing.status_code == 404 and "Content-Encoding" not in missing.headers


def test_compression_can_be_turned_off_for_a_proxy_that_compresses(sqlite_url) -> None:
    client = _app(sqlite_url, COMPRESS=False).test_client()
    reply = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in reply.headers
