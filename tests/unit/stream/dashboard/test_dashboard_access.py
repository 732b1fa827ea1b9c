"""Bind and auth rules: loopback by default, credentials elsewhere, guarded writes."""

from __future__ import annotations

import base64

import pytest

from gridalarm.stream.dashboard.access import (
    AccessError,
    Bind,
    Credentials,
    authenticated,
    check_bind,
    host_allowed,
    is_loopback,
    parse_bind,
    parse_credentials,
    write_allowed,
)

TOKEN = "0123456789abcdef0123"


@pytest.mark.parametrize(
    ("text", "bind"),
    [
        ("127.0.0.1:8080", Bind("127.0.0.1", 8080)),
        (":9000", Bind("127.0.0.1", 9000)),
        ("[::1]:8080", Bind("::1", 8080)),
        ("0.0.0.0:0", Bind("0.0.0.0", 0)),
        ("dash.example.org:443", Bind("dash.example.org", 443)),
    ],
)
def test_bind_addresses(text: str, bind: Bind) -> None:
    assert parse_bind(text) == bind


@pytest.mark.parametrize("text", ["8080", "host:", "host:http", "h:70000", "::1:8080", "[::1:80"])
def test_bad_bind_addresses(text: str) -> None:
    with pytest.raises(AccessError, match="--bind"):
        parse_bind(text)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.3.4.5", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("10.0.0.5", False), ("::", False),
     ("dash.example.org", False)],
)  # fmt: skip
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_other_addresses_need_credentials() -> None:
    check_bind(Bind("127.0.0.1", 8080), Credentials())
    check_bind(Bind("0.0.0.0", 8080), Credentials(token=TOKEN))
    with pytest.raises(AccessError, match="--token TOKEN or --basic-auth"):
        check_bind(Bind("0.0.0.0", 8080), Credentials())


@pytest.mark.parametrize(
    ("token", "basic", "message"),
    [
        (TOKEN, "u:p", "not both"),
        ("short", None, "at least 16"),
        ("has a space in it, long enough", None, "without spaces"),
        (None, "nopassword", "USER:PASSWORD"),
        (None, ":p", "USER:PASSWORD"),
    ],
)
def test_bad_credentials(token: str | None, basic: str | None, message: str) -> None:
    with pytest.raises(AccessError, match=message):
        parse_credentials(token, basic)


def test_credentials_never_print_their_secret() -> None:
    assert TOKEN not in repr(parse_credentials(TOKEN, None))
    assert "pw:x" not in repr(parse_credentials(None, "user:pw:x"))
    assert parse_credentials(None, "user:pw:x").password == "pw:x"  # colons in passwords


def test_without_credentials_everyone_local_is_in() -> None:
    assert authenticated(Credentials(), None, None) == "local"


@pytest.mark.parametrize(
    ("authorization", "cookie", "query", "who"),
    [
        (f"Bearer {TOKEN}", None, None, "token"),
        (f"bearer {TOKEN}", None, None, "token"),
        (None, TOKEN, None, "token"),
        (None, None, TOKEN, "token"),
        ("Bearer wrong-token-wrong-token", None, None, None),
        (None, "wrong", "also wrong", None),
        (None, None, None, None),
        (f"Basic {TOKEN}", None, None, None),
    ],
)
def test_token(authorization: str | None, cookie: str | None, query: str | None, who) -> None:
    assert authenticated(Credentials(token=TOKEN), authorization, cookie, query) == who


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("authorization", "who"),
    [
        (_basic("alice:s3cret"), "alice"),
        (_basic("alice:wrong"), None),
        (_basic("bob:s3cret"), None),
        (_basic("alice"), None),
        ("Basic !!!not-base64", None),
        (f"Bearer {TOKEN}", None),
        (None, None),
    ],
)
def test_basic_auth(authorization: str | None, who: str | None) -> None:
    creds = Credentials(user="alice", password="s3cret")
    assert authenticated(creds, authorization, TOKEN, TOKEN) == who  # token cookies don't count


@pytest.mark.parametrize(
    ("host", "allowed"),
    [("127.0.0.1:8080", True), ("localhost:8080", True), ("[::1]:8080", True),
     ("evil.example:8080", False), ("10.1.2.3", False), (None, False)],
)  # fmt: skip
def test_without_credentials_only_loopback_host_names_are_served(host, allowed: bool) -> None:
    assert host_allowed(Credentials(), host) is allowed
    assert host_allowed(Credentials(token=TOKEN), host) is True


@pytest.mark.parametrize(
    ("content_type", "origin", "allowed"),
    [
        ("application/json", None, True),
        ("application/json; charset=utf-8", "http://127.0.0.1:8080", True),
        ("application/json", "http://evil.example", False),
        ("application/json", "null", False),
        ("application/x-www-form-urlencoded", None, False),
        ("text/plain", "http://127.0.0.1:8080", False),
        (None, None, False),
    ],
)
def test_writes_only_from_our_own_pages(content_type, origin, allowed: bool) -> None:
    assert write_allowed(content_type, origin, "127.0.0.1:8080") is allowed
