"""`notify --to KIND=URL` (gridalarm.stream.routing.targets): what is accepted, what is refused."""

from __future__ import annotations

import pytest

from gridalarm.stream.routing.targets import Target, TargetError, parse_target


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("alertmanager=http://localhost:9093", "http://localhost:9093/api/v2/alerts"),
        ("alertmanager=http://localhost:9093/", "http://localhost:9093/api/v2/alerts"),
        ("alertmanager=https://am.example/api/v2/alerts", "https://am.example/api/v2/alerts"),
        ("alertmanager=http://proxy/alertmanager", "http://proxy/alertmanager/api/v2/alerts"),
        (
            "webhook=https://hooks.example/gridalarm?team=grid",
            "https://hooks.example/gridalarm?team=grid",
        ),
        ("webhook=http://[::1]:8080/in", "http://[::1]:8080/in"),
    ],
)
def test_targets_and_the_urls_they_post_to(text: str, url: str) -> None:
    target = parse_target(text)
    assert target.url == url
    assert target.kind == text.partition("=")[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http://localhost:9093", "write KIND=URL"),
        ("alertmanager=", "write KIND=URL"),
        ("slack=https://hooks.slack.com/x", "unknown kind 'slack'; use alertmanager or webhook"),
        ("webhook=ftp://files.example/x", "http:// or https:// URL with a host"),
        ("webhook=localhost:8080", "http:// or https:// URL with a host"),
        ("webhook=http://", "http:// or https:// URL with a host"),
        ("webhook=http://host:99999/", "not a URL"),
        ("webhook=http://host:port/", "not a URL"),
        ("webhook=http://host:0/", "port 0"),
    ],
)
def test_bad_targets_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(TargetError, match=message) as caught:
        parse_target(text)
    assert "\n" not in str(caught.value)


def test_the_logged_name_shows_no_password() -> None:
    target = parse_target("webhook=https://bot:s3cret@hooks.example:8443/in?x=1")
    assert target.url == "https://bot:s3cret@hooks.example:8443/in?x=1"  # httpx sends the auth
    assert target.name == "webhook=https://hooks.example:8443/in?x=1"
    assert Target("webhook", "http://[::1]:8080/in").name == "webhook=http://[::1]:8080/in"
