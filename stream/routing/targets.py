"""Where ``gridalarm notify`` sends alerts: ``--to KIND=URL``, checked before anything starts."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

TARGET_KINDS: tuple[str, ...] = ("alertmanager", "webhook")
ALERTMANAGER_PATH = "/api/v2/alerts"


class TargetError(ValueError):
    """A ``--to`` value that names no usable target; one line for the operator."""


@dataclass(frozen=True, slots=True)
class Target:
    """One destination: its kind and the URL that alerts are POSTed to."""

    kind: str
    url: str

    @property
    def name(self) -> str:
        """``kind=url`` without any password in the URL, for logs."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 literal loses its brackets in .hostname
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
        return f"{self.kind}={urlunsplit(parts._replace(netloc=netloc))}"


def parse_target(text: str) -> Target:
    """``alertmanager=URL`` or ``webhook=URL``. An Alertmanager URL may be the server's base
    (``http://am:9093``, or one behind a path prefix) or the full ``.../api/v2/alerts``."""
    kind, sep, url = text.partition("=")
    kind = kind.strip()
    if not sep or not url.strip():
        raise TargetError(f"--to {text!r}: write KIND=URL, e.g. alertmanager=http://localhost:9093")
    if kind not in TARGET_KINDS:
        raise TargetError(f"--to {text!r}: unknown kind {kind!r}; use {' or '.join(TARGET_KINDS)}")
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as err:
        raise TargetError(f"--to {text!r}: not a URL ({err})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"--to {text!r}: give an http:// or https:// URL with a host")
    if port == 0:
        raise TargetError(f"--to {text!r}: port 0 is not a port to send to")
    if kind == "alertmanager":
        path = parts.path.rstrip("/")
        if not path.endswith(ALERTMANAGER_PATH):
            path += ALERTMANAGER_PATH
        url = urlunsplit(parts._replace(path=path))
    return Target(kind, url)
