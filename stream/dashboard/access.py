"""Who may use the dashboard: the bind address rule, token and basic auth, and the checks
every request passes. Pure functions over header values, so that the rules are tested
without a server.

- Loopback binds need no credentials, but requests must name a loopback host (a page on
  another site cannot reach the dashboard through DNS rebinding).
- Any other bind needs a token or basic auth. A token arrives as ``Authorization: Bearer``,
  or once as ``?token=`` in a link, which the server turns into an HttpOnly cookie so that the
  page's own requests and its event stream carry it.
- Writes (POST) must come from the dashboard's own pages: JSON bodies only and, when the
  browser names an Origin, the dashboard's own. Browsers attach cookies and basic
  credentials to cross-site requests by themselves; this is what stops another site from
  labelling alerts through a logged-in operator's browser.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

TOKEN_COOKIE = "gridalarm_token"
MIN_TOKEN_LENGTH = 16
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class AccessError(ValueError):
    """A bind address or credential option that cannot be used (a one-line message)."""


@dataclass(frozen=True, slots=True)
class Bind:
    """Where the server listens."""

    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """A token, or a basic-auth user and password; all None: no authentication."""

    token: str | None = None
    user: str | None = None
    password: str | None = None

    @property
    def required(self) -> bool:
        return self.token is not None or self.user is not None

    def __repr__(self) -> str:  # never print a secret into a log
        kind = "token" if self.token else "basic" if self.user else "none"
        return f"Credentials({kind})"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name) is this machine only."""
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # any other name may resolve to a public address


def parse_bind(text: str) -> Bind:
    """``HOST:PORT``, ``[v6]:PORT`` or ``:PORT`` (loopback); port 0 picks a free one."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise AccessError(f"--bind {text!r}: give HOST:PORT, e.g. 127.0.0.1:8080")
    host = host.strip()
    if host.startswith("["):
        if not host.endswith("]"):
            raise AccessError(f"--bind {text!r}: an IPv6 address goes in brackets, [::1]:8080")
        host = host[1:-1]
    elif ":" in host:
        raise AccessError(f"--bind {text!r}: put an IPv6 address in brackets, [::1]:8080")
    return Bind(host or "127.0.0.1", int(port))


def parse_credentials(token: str | None, basic_auth: str | None) -> Credentials:
    """The credentials from ``--token`` / ``--basic-auth user:pass``."""
    if token is not None and basic_auth is not None:
        raise AccessError("give --token or --basic-auth, not both")
    if token is not None:
        if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
            raise AccessError(
                f"--token: use at least {MIN_TOKEN_LENGTH} characters without spaces "
                "(e.g. the output of `openssl rand -hex 16`)"
            )
        return Credentials(token=token)
    if basic_auth is not None:
        user, sep, password = basic_auth.partition(":")
        if not sep or not user or not password:
            raise AccessError("--basic-auth: give USER:PASSWORD, both non-empty")
        return Credentials(user=user, password=password)
    return Credentials()


def check_bind(bind: Bind, credentials: Credentials) -> None:
    """Refuse to serve a non-loopback address without credentials."""
    if not bind.loopback and not credentials.required:
        raise AccessError(
            f"--bind {bind.host}:{bind.port} is reachable from other machines: "
            "also give --token TOKEN or --basic-auth USER:PASSWORD"
        )


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def authenticated(
    credentials: Credentials,
    authorization: str | None,
    cookie_token: str | None,
    query_token: str | None = None,
) -> str | None:
    """Who the request is (``"token"``, the basic-auth user, or ``"local"`` when no
    credentials are configured), or None when it must be refused."""
    if not credentials.required:
        return "local"
    scheme, _, value = (authorization or "").partition(" ")
    if credentials.token is not None:
        offered = [cookie_token, query_token]
        if scheme.lower() == "bearer":
            offered.append(value.strip())
        return "token" if any(t and _same(t, credentials.token) for t in offered) else None
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    assert credentials.user is not None and credentials.password is not None
    # Both compared every time: the answer's timing says nothing about which one was wrong.
    ok_user = _same(user, credentials.user)
    ok_password = _same(password, credentials.password)
    return user if sep and ok_user and ok_password else None


def host_allowed(credentials: Credentials, host_header: str | None) -> bool:
    """Without credentials, only requests addressed to a loopback name are served."""
    if credentials.required:
        return True
    if not host_header:
        return False
    host = urlsplit(f"//{host_header}").hostname or ""
    return is_loopback(host)


def write_allowed(content_type: str | None, origin: str | None, host_header: str | None) -> bool:
    """A POST from the dashboard's own page: a JSON body, and no foreign Origin."""
    if (content_type or "").split(";")[0].strip().lower() != "application/json":
        return False
    if origin is None:
        return True  # not a browser (curl, scripts): nothing rides on someone's session
    parts = urlsplit(origin)
    return bool(host_header) and parts.netloc.lower() == (host_header or "").lower()
