"""Hostile and broken requests, each with the row it must get (built by ``hostile_items``).

Every item names what it is (``label``) and what each model's row must say:
parse errors for bad JSON and ids, fetch errors for forbidden addresses, local
files outside the roots and unsupported schemes, decode errors for bombs and
broken media.  Addresses that stand for private or metadata hosts are all the
canary server on 127.0.0.2 in some spelling (decimal, hex, short form,
IPv4-mapped IPv6, a redirect); local-file probes aim at /etc/passwd and at a
valid image outside every root (``secret``), which would decode fine if it
were ever read.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidepath.worker.engine.request import MAX_DEPTH
from tests.fixtures.media import MediaServer, make_audio, make_png_bomb, make_video, truncated_copy
from tests.reliability.mix import MediaSet
from tests.reliability.scenario import OK, Expect, Item

__all__ = ["HostileMedia", "make_hostile_media", "hostile_items", "good_av_items", "MAX_BYTES", "CAP_S"]

MAX_BYTES = 4 * 1024 * 1024        # decode.max_bytes of the scenario
CAP_S = 5.0                        # decode.max_duration_s of the scenario
NESTED_DEPTHS = (60, 100, 900, 960, 975, 985, 990, 100_000)   # the parser gives up near 995


@dataclass(frozen=True)
class HostileMedia:
    wav_b64: str           # 1 s tone: good audio for both models
    silent_video: Path     # no audio stream: the tempo model must refuse it, alone
    long_video: Path       # 120 s, far over CAP_S
    truncated: Path        # the first half of an MP4 whose index is at the end
    empty_file: Path
    secret: Path           # a valid PNG outside every decode.file_roots
    link: Path             # a symlink under a root that points at ``secret``
    bomb: bytes            # PNG header claiming 30000 x 30000
    real_bomb: bytes       # a PNG that truly inflates to 16000 x 16000 bytes


def make_hostile_media(root: Path, outside: Path, media: MediaSet) -> HostileMedia:
    """``root`` is under decode.file_roots, ``outside`` is not."""
    root.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    wav = make_audio(root / "tone.wav", seconds=1.0)
    secret = outside / "secret.png"
    secret.write_bytes(media.png)
    link = root / "link.png"
    link.symlink_to(secret)
    empty = root / "empty.mp4"
    empty.write_bytes(b"")
    return HostileMedia(
        wav_b64=base64.b64encode(wav.read_bytes()).decode(),
        silent_video=make_video(root / "silent.mp4", seconds=1.0, fps=10, size=(64, 48), audio=False),
        long_video=make_video(root / "long.mp4", seconds=120.0, fps=2, size=(64, 48), audio=True),
        truncated=truncated_copy(media.video_file, root / "truncated.mp4", 0.5),
        empty_file=empty, secret=secret, link=link,
        bomb=make_png_bomb(30000, 30000), real_bomb=make_png_bomb(16000, 16000, real=True),
    )


def _req(pid: Any, **fields: Any) -> dict[str, Any]:
    return {"postid": pid, "uid": "u", "seqid": 1, **fields}


def good_av_items(n: int, tag: str, media: MediaSet, hm: HostileMedia, server: MediaServer) -> list[Item]:
    """Requests both models can serve (sound and pictures, or sound alone)."""
    video_url = server.add_file("/clip.mp4", media.video_file, content_type="video/mp4")
    refs = [("video", str(media.video_file)), ("video", video_url), ("audio", hm.wav_b64),
            ("data", "data:audio/wav;base64," + hm.wav_b64)]
    items = []
    for i in range(n):
        kind, ref = refs[i % len(refs)]
        items.append(Item(json.dumps(_req(f"{tag}-{i}", seqid=i, **{kind: ref})).encode(), f"{tag}-{i}", OK))
    return items


def hostile_items(copy: int, media: MediaSet, hm: HostileMedia, server: MediaServer, canary: MediaServer,
                  *, big: bool) -> list[Item]:
    """One copy of the hostile set; postids end in ``-{copy}`` so copies never share a key."""
    items: list[Item] = []
    c = copy

    def add(label: str, value: bytes | dict[str, Any] | None, expect: Expect | dict[str, Expect],
            postid: str | None = None) -> None:
        raw = json.dumps(value).encode() if isinstance(value, dict) else value
        if isinstance(value, dict) and postid is None and isinstance(value.get("postid"), str) \
                and value["postid"] and len(value["postid"]) <= 256 and "uid" in value and "seqid" in value:
            postid = value["postid"]
        items.append(Item(raw, postid, expect, label=label))

    def parse(*says: str) -> Expect:
        return Expect("error", "parse", says)

    def fetch(*says: str) -> Expect:
        return Expect("error", "fetch", says)

    def decode(*says: str) -> Expect:
        return Expect("error", "decode", says)

    png = "data:image/png;base64," + media.png_b64
    # -- not a request at all
    add("not JSON", b"{not json", parse("not json"))
    add("binary garbage", bytes(range(256)) * 4, parse("not json"))
    add("empty value", b"", parse("not json"))
    add("Kafka null value", None, parse("empty message"))
    add("JSON array", b"[1, 2, 3]", parse("must be an object"))
    add("JSON string", b'"hello"', parse("must be an object"))
    for depth in NESTED_DEPTHS:       # past, at and under the parser's recursion limit
        nested = "[" * depth + "]" * depth
        add(f"nested {depth} deep", f'{{"postid":"h-nest{depth}-{c}","uid":"u","seqid":1,'
                                    f'"video":{json.dumps(str(media.video_file))},"deep":{nested}}}'.encode(),
            parse("nested") if depth + 1 > MAX_DEPTH else OK, postid=None)
    if big:
        pad = "x" * (10 * 1024 * 1024)
        add("10 MB JSON", _req(f"h-big-{c}", image=png, pad=pad), parse("over the 1000000-byte cap"))
    # -- ids and fields of the wrong shape
    add("postid a list", _req([1, 2], image=png), parse("postid", "string or an integer"))
    add("uid an object", {"postid": f"h-uid-{c}", "uid": {"a": 1}, "seqid": 1, "image": png},
        parse("uid", "string or an integer"))
    add("seqid a bool", {"postid": f"h-bool-{c}", "uid": "u", "seqid": True, "image": png},
        parse("seqid", "string or an integer"))
    add("seqid a float", {"postid": f"h-float-{c}", "uid": "u", "seqid": 1.5, "image": png},
        parse("seqid", "string or an integer"))
    add("image an int", _req(f"h-int-{c}", image=42), parse("must be a string"))
    add("video a list", _req(f"h-list-{c}", video=["a", "b"]), parse("must be a string"))
    add("no postid", {"uid": "u", "seqid": 1, "image": png}, parse("missing field", "postid"))
    add("no uid", {"postid": f"h-nouid-{c}", "seqid": 1, "image": png}, parse("missing field", "uid"))
    add("no seqid", {"postid": f"h-noseq-{c}", "uid": "u", "image": png}, parse("missing field", "seqid"))
    add("no ids at all", {"image": png}, parse("missing field"))
    add("empty object", {}, parse("missing field"))
    add("no media", _req(f"h-nomedia-{c}"), parse("no media"))
    add("empty postid", _req("", image=png), parse("1..256 characters"))
    # its error row keeps the first 256 characters: the copy number leads so that copies keep apart
    add("300-char postid", _req(f"{c}-" + "p" * 300, image=png), parse("1..256 characters"))
    # -- unknown fields are carried through, whatever they hold
    add("unknown fields", _req(f"h-unknown-{c}", video=str(media.video_file), whatever={"a": [1, {"b": None}]},
                               __proto__={"polluted": True}, constructor="x"), OK)
    # PostgreSQL cannot store a NUL in JSONB: the row stands in as an error row, the message is dead-lettered
    add("NUL in an unknown field", _req(f"h-nul-{c}", video=str(media.video_file), note="a\u0000b"),
        Expect("error", "sink", ("sink refused the row",)))
    # -- forbidden addresses: the canary on 127.0.0.2, spelt many ways, and redirects into it
    cp = canary.port
    for label, url in [("loopback literal", f"http://127.0.0.2:{cp}/x.jpg"),
                       ("decimal address", f"http://2130706434:{cp}/x.jpg"),
                       ("hex address", f"http://0x7f000002:{cp}/x.jpg"),
                       ("short address", f"http://127.2:{cp}/x.jpg"),
                       ("IPv4-mapped IPv6", f"http://[::ffff:127.0.0.2]:{cp}/x.jpg"),
                       ("credentials in URL", f"http://user:pw@127.0.0.2:{cp}/x.jpg")]:
        add(label, _req(f"h-{label.replace(' ', '-')}-{c}", image=url), fetch("loopback", "allow_hosts"))
    add("unspecified address", _req(f"h-zero-{c}", image=f"http://0.0.0.0:{cp}/x.jpg"), fetch("unspecified"))
    redirect = server.add_redirect(f"/to-canary-{c}", f"http://127.0.0.2:{cp}/secret.jpg")
    add("redirect to a forbidden address", _req(f"h-redir-{c}", image=redirect), fetch("loopback"))
    redirect2 = server.add_redirect(f"/to-canary-mapped-{c}", f"http://[::ffff:7f00:2]:{cp}/secret.jpg", 307)
    add("redirect to a mapped address", _req(f"h-redir2-{c}", image=redirect2), fetch("loopback"))
    to_file = server.add_redirect(f"/to-file-{c}", "file:///etc/passwd")
    add("redirect to file://", _req(f"h-redir-file-{c}", image=to_file), fetch("unsupported url scheme"))
    # -- local files outside the roots
    add("file:///etc/passwd", _req(f"h-passwd-{c}", image="file:///etc/passwd"), fetch("outside decode.file_roots"))
    add("/etc/passwd", _req(f"h-passwd2-{c}", data="/etc/passwd"), fetch("outside decode.file_roots"))
    add("../ out of the root", _req(f"h-dotdot-{c}", image="../../../../../../../../etc/passwd"),
        fetch("outside decode.file_roots"))
    add("valid image outside the roots", _req(f"h-secret-{c}", image=str(hm.secret)),
        fetch("outside decode.file_roots"))
    add("symlink out of the root", _req(f"h-link-{c}", image=str(hm.link)), fetch("outside decode.file_roots"))
    add("file URL with a host", _req(f"h-filehost-{c}", image="file://otherhost/etc/passwd"), fetch("names host"))
    # -- schemes
    for scheme_url in ["ftp://127.0.0.1/x.jpg", "gopher://127.0.0.1:70/_x", "s3://bucket/key.mp4",
                       "javascript:alert(1)", "dict://127.0.0.1:11211/stat", "jar:file:///x.jar!/y"]:
        name = scheme_url.split(":")[0]
        add(f"{name} scheme", _req(f"h-scheme-{name}-{c}", image=scheme_url), fetch("unsupported url scheme"))
    add("invalid base64", _req(f"h-b64-{c}", image="data:image/png;base64,!!!!"), fetch("invalid base64"))
    # -- bombs and broken media
    add("PNG bomb inline", _req(f"h-bomb-{c}", image="data:image/png;base64," + base64.b64encode(hm.bomb).decode()),
        decode("pixels", "max_pixels"))
    bomb_url = server.add(f"/bomb-{c}.png", hm.real_bomb, content_type="image/png")
    add("PNG bomb over HTTP", _req(f"h-bomb2-{c}", image=bomb_url), decode("pixels", "max_pixels"))
    add("truncated MP4", _req(f"h-trunc-{c}", video=str(hm.truncated)), decode())
    add("MP4 without sound", _req(f"h-silent-{c}", video=str(hm.silent_video)),
        {"noop": OK, "tempo": Expect("error", "infer", ("audio",))})
    add("video far over the duration cap", _req(f"h-long-{c}", video=str(hm.long_video)), OK)
    add("zero-byte file", _req(f"h-empty-{c}", video=str(hm.empty_file)), decode("empty"))
    zero_url = server.add(f"/zero-{c}.jpg", b"", content_type="image/jpeg")
    add("zero-byte HTTP body", _req(f"h-zero-body-{c}", image=zero_url), decode("empty"))
    add("zero-byte inline", _req(f"h-zero-inline-{c}", image="data:image/png;base64,"), decode("empty"))
    endless = server.add_endless(f"/endless-{c}")
    add("endless body", _req(f"h-endless-{c}", video=endless), fetch("max_bytes"))
    too_big = server.add(f"/big-{c}.mp4", bytes(MAX_BYTES + 1), content_type="video/mp4")
    add("body over max_bytes", _req(f"h-toobig-{c}", video=too_big), fetch("max_bytes"))
    return items
