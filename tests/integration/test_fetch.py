"""Fetching against real local HTTP(S) servers and real files: caps, retries, redirects, the SSRF guard."""
from __future__ import annotations

import base64
import os
import socket
import threading

import pytest

from sidepath.core.errors import DecodeError, FetchError
from sidepath.decoders import DecodeSpec, Fetcher, decode_media
from tests.fixtures.media import MediaServer, make_image


def fetcher_for(server, **kw):
    opts = dict(allow_hosts=server.allow_hosts, timeout_s=2.0, retries=2, backoff_s=0.01)
    opts.update(kw)
    return Fetcher(**opts)


def test_fetches_a_body_and_counts_its_bytes(media_server):
    body = os.urandom(300_000)
    url = media_server.add("/clip.bin", body)
    got = fetcher_for(media_server).fetch(url)
    assert got.data == body and got.size == len(body)
    assert media_server.hits["/clip.bin"] == 1


def test_connections_are_pooled(media_server):
    url = media_server.add("/a", b"x" * 1000)
    fetcher = fetcher_for(media_server)
    for _ in range(5):
        fetcher.fetch(url)
    assert media_server.hits["/a"] == 5
    assert media_server.connections == 1


def test_404_is_not_retried(media_server):
    url = media_server.url("/missing.mp4")
    with pytest.raises(FetchError, match=r"^HTTP 404 for http://127\.0\.0\.1:\d+/missing\.mp4$") as info:
        fetcher_for(media_server).fetch(url)
    assert media_server.hits["/missing.mp4"] == 1
    assert info.value.stage == "fetch" and not info.value.retriable


def test_500_then_200_is_retried(media_server):
    url = media_server.add_sequence("/flaky", [(500, b"oops"), (503, b"busy"), (200, b"finally")])
    assert fetcher_for(media_server, retries=3).fetch(url).data == b"finally"
    assert media_server.hits["/flaky"] == 3


def test_retries_give_up_with_the_count(media_server):
    url = media_server.add_sequence("/down", [(502, b"")])
    with pytest.raises(FetchError, match=r"HTTP 502 for .*/down \(gave up after 3 attempts\)"):
        fetcher_for(media_server, retries=2).fetch(url)
    assert media_server.hits["/down"] == 3


@pytest.mark.parametrize("partial", [False, True], ids=["reset-before-answer", "reset-mid-body"])
def test_connection_reset_is_retried(media_server, partial):
    body = os.urandom(200_000)
    url = media_server.add_reset("/reset", body, failures=1, partial=partial)
    assert fetcher_for(media_server).fetch(url).data == body
    assert media_server.hits["/reset"] == 2


def test_slow_server_times_out(media_server):
    url = media_server.add_slow("/slow", b"late", delay_s=5)
    with pytest.raises(FetchError, match=r"timed out after 0.3 s fetching .*/slow; .*decode.timeout_s"):
        fetcher_for(media_server, timeout_s=0.3, retries=0).fetch(url)


def test_slow_drip_is_cut_by_the_deadline(media_server):
    url = media_server.add_drip("/drip", b"x" * 100, chunk=1, every_s=0.1)
    with pytest.raises(FetchError, match=r"took longer than 0.5 s \(got \d+ bytes so far\)"):
        fetcher_for(media_server, deadline_s=0.5).fetch(url)


def test_declared_oversized_body_is_refused_before_reading(media_server):
    url = media_server.add("/big", b"x" * 5000)
    with pytest.raises(FetchError, match=r"is 5000 bytes, over decode.max_bytes=4096; raise decode.max_bytes"):
        fetcher_for(media_server, max_bytes=4096).fetch(url)
    assert media_server.hits["/big"] == 1          # refused for good, not retried


def test_endless_body_is_cut_at_the_cap(media_server):
    url = media_server.add_endless("/endless")
    with pytest.raises(FetchError, match=r"sent more than decode.max_bytes=1000000 bytes"):
        fetcher_for(media_server, max_bytes=1_000_000).fetch(url)
    assert media_server.hits["/endless"] == 1


def test_redirects_are_followed(media_server):
    target = media_server.add("/real", b"content")
    first = media_server.add_redirect("/r1", "/r2", status=301)
    media_server.add_redirect("/r2", target, status=307)
    assert fetcher_for(media_server).fetch(first).data == b"content"
    assert media_server.hits["/r1"] == media_server.hits["/r2"] == media_server.hits["/real"] == 1


def test_redirect_loop_is_refused(media_server):
    url = media_server.add_redirect("/loop", "/loop")
    with pytest.raises(FetchError, match=r"too many redirects \(more than 5\)"):
        fetcher_for(media_server).fetch(url)
    assert media_server.hits["/loop"] == 6


def test_default_guard_refuses_loopback(media_server):
    url = media_server.add("/x", b"secret")
    with pytest.raises(FetchError, match=r"^host 127.0.0.1 is a loopback address; add it to decode.allow_hosts"):
        Fetcher().fetch(url)
    assert not media_server.contacted


def test_redirect_to_a_forbidden_address_never_reaches_it(media_server, canary_server):
    url = media_server.add_redirect("/jump", canary_server.url("/latest/meta-data/"))
    with pytest.raises(FetchError, match=r"host 127.0.0.2 is a loopback address; add it to decode.allow_hosts"):
        fetcher_for(media_server).fetch(url)
    assert media_server.hits["/jump"] == 1
    assert not canary_server.contacted


def test_redirect_to_another_scheme_is_refused(media_server):
    url = media_server.add_redirect("/ftp", "ftp://127.0.0.1/file")
    with pytest.raises(FetchError, match="unsupported URL scheme 'ftp'"):
        fetcher_for(media_server).fetch(url)


def test_host_name_resolving_to_a_forbidden_address_is_refused(canary_server):
    fetcher = Fetcher(resolver=lambda host, port: ["127.0.0.2"])
    with pytest.raises(FetchError, match=r"host media.test resolves to a loopback address;") as caught:
        fetcher.fetch(f"http://media.test:{canary_server.port}/x")
    assert "(127.0.0.2)" in caught.value.detail and "127.0.0.2" not in str(caught.value)
    assert not canary_server.contacted


def test_unknown_host_name_is_not_retried():
    calls = []

    def nxdomain(host, port):
        calls.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(FetchError, match=r"^cannot resolve host 'nowhere.test': Name or service not known$"):
        Fetcher(resolver=nxdomain, retries=3, backoff_s=0.01).fetch("http://nowhere.test/a.mp4")
    assert calls == ["nowhere.test"]


def test_connects_to_the_checked_address_so_dns_rebinding_fails(media_server, canary_server):
    # the first answer is allowed; a second lookup would swap in the forbidden canary
    answers = iter([["127.0.0.1"], ["127.0.0.2"], ["127.0.0.2"]])
    lookups = []

    def rebinding(host, port):
        lookups.append(host)
        return next(answers)

    media_server.add("/v", b"from the checked address")
    canary_server.add("/v", b"from the rebound address")
    fetcher = Fetcher(allow_hosts=["127.0.0.1"], resolver=rebinding)
    got = fetcher.fetch(f"http://rebind.test:{media_server.port}/v")
    assert got.data == b"from the checked address"
    assert lookups == ["rebind.test"]                # resolved once, then connected to that address
    assert media_server.requests[-1][1]["Host"] == f"rebind.test:{media_server.port}"
    assert not canary_server.contacted


def test_https_verifies_the_name_while_connecting_to_the_checked_address(tls_files):
    with MediaServer("127.0.0.1", tls=tls_files) as server:
        server.add("/secure", b"tls body")
        fetcher = Fetcher(allow_hosts=["localhost", "127.0.0.1"], ca_certs=str(tls_files.cert), retries=0)
        assert fetcher.fetch(f"https://localhost:{server.port}/secure").data == b"tls body"
        # the certificate is for localhost: another name on the same address must fail verification
        other = Fetcher(allow_hosts=["127.0.0.1", "wrong.test"], ca_certs=str(tls_files.cert), retries=0,
                        resolver=lambda host, port: ["127.0.0.1"])
        with pytest.raises(FetchError, match=r"^TLS error fetching https://wrong.test:\d+/secure"):
            other.fetch(f"https://wrong.test:{server.port}/secure")


def test_fetcher_is_thread_safe(media_server):
    bodies = {f"/f{i}": os.urandom(50_000 + i) for i in range(8)}
    for path, body in bodies.items():
        media_server.add(path, body)
    fetcher = fetcher_for(media_server, pool_size=4)
    errors = []

    def work(path):
        try:
            for _ in range(5):
                assert fetcher.fetch(media_server.url(path)).data == bodies[path]
        except Exception as exc:   # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- local files and inline data ----------------------------------------------------------------
def test_local_files_only_under_roots(tmp_path):
    root, outside = tmp_path / "media", tmp_path / "private"
    root.mkdir()
    outside.mkdir()
    (root / "a.jpg").write_bytes(b"jpeg-bytes")
    (outside / "secret.txt").write_bytes(b"secret")
    fetcher = Fetcher(file_roots=[str(root)])
    assert fetcher.fetch(str(root / "a.jpg")).read() == b"jpeg-bytes"
    assert fetcher.fetch((root / "a.jpg").as_uri()).read() == b"jpeg-bytes"
    assert fetcher.fetch("a.jpg").read() == b"jpeg-bytes"                    # relative to the root
    with pytest.raises(FetchError, match=r"is outside decode.file_roots"):
        fetcher.fetch(str(outside / "secret.txt"))
    with pytest.raises(FetchError, match=r"is outside decode.file_roots"):
        fetcher.fetch("../private/secret.txt")
    (root / "link.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(FetchError, match=r"is outside decode.file_roots"):
        fetcher.fetch(str(root / "link.txt"))
    with pytest.raises(FetchError, match=r"no such file"):
        fetcher.fetch(str(root / "nope.jpg"))


def test_local_files_are_off_without_roots(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(FetchError, match=r"reading local files is off; set decode.file_roots"):
        Fetcher().fetch(str(tmp_path / "a.jpg"))


def test_local_file_over_the_cap_is_refused(tmp_path):
    (tmp_path / "big.bin").write_bytes(b"x" * 2000)
    with pytest.raises(FetchError, match=r"is 2000 bytes, over decode.max_bytes=1000"):
        Fetcher(file_roots=[str(tmp_path)], max_bytes=1000).fetch(str(tmp_path / "big.bin"))


def test_inline_image_end_to_end():
    data = make_image("png", size=(64, 48))
    spec = DecodeSpec()
    for ref in ("data:image/png;base64," + base64.b64encode(data).decode(), base64.b64encode(data).decode()):
        media = decode_media(ref, "image", spec, Fetcher())
        assert media.frames.shape == (1, 48, 64, 3) and media.timestamps_s == (0.0,)
        assert media.bytes_fetched == len(data)


def test_decode_media_reports_timings_and_bytes(media_server):
    data = make_image("jpeg", size=(320, 240))
    url = media_server.add("/img.jpg", data, content_type="image/jpeg")
    media = decode_media(url, "image", DecodeSpec(), fetcher_for(media_server))
    assert media.bytes_fetched == len(data)
    assert set(media.timings_ms) == {"fetch", "decode"} and all(v >= 0 for v in media.timings_ms.values())
    assert media.kind == "image" and media.frames.shape == (1, 240, 320, 3)


def test_html_error_page_served_as_image_is_a_decode_error(media_server):
    page = b"<html><body>Access denied</body></html>"
    url = media_server.add("/img.jpg", page, content_type="text/html")
    with pytest.raises(DecodeError) as info:
        decode_media(url, "image", DecodeSpec(), fetcher_for(media_server))
    assert info.value.stage == "decode"
    assert str(info.value).startswith(f"not an image: {len(page)} bytes, looks like an HTML page")
