"""Fixtures for a real Elasticsearch node, imported by name into tests/conftest.py.

DESIGN.md ("Real parts"): no mock stands in for Elasticsearch. The node is, in order of
preference, ``GRIDALARM_ES`` from the environment, an ``elasticsearch:8.14.3`` container when a
Docker engine answers, or a local node run from Maven Central jars (:mod:`gridalarm.locales`).

The container path cannot be tried where no Docker engine runs (our machines and CI), so it
is kept to the few lines testcontainers needs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gridalarm.javaserver import alive, flocked
from gridalarm.locales import LocalElasticsearch, LocalElasticsearchConfig, LocalElasticsearchError

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

REPO_ROOT = Path(__file__).resolve().parent.parent
# Module globals read when the fixtures run, so a conftest may point them elsewhere.
TEST_ES_STATE = REPO_ROOT / ".state" / "test-es"
TEST_ES_PORT = 39200
ES_IMAGE = os.environ.get("GRIDALARM_ES_IMAGE", "elasticsearch:8.14.3")


@pytest.fixture(scope="session")
def local_es_jars() -> Path:
    """Where local test nodes share their Elasticsearch home (resolved on first start)."""
    return TEST_ES_STATE / "es" / "jars"


def _docker_answers() -> bool:
    """Whether a Docker engine answers a ping (quietly False without the SDK or an engine)."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@contextlib.contextmanager
def _es_container() -> Iterator[str]:
    """An ``elasticsearch`` container (security off, one node), started with testcontainers."""
    try:
        from testcontainers.community.elasticsearch import ElasticSearchContainer
    except ImportError:  # testcontainers before the community split
        from testcontainers.elasticsearch import ElasticSearchContainer

    container = (
        ElasticSearchContainer(ES_IMAGE, mem_limit="2G")
        .with_env("discovery.type", "single-node")
        .with_env("cluster.routing.allocation.disk.threshold_enabled", "false")
        .with_env("ES_JAVA_OPTS", "-Xms512m -Xmx512m")
    )
    with container:
        yield f"http://{container.get_container_host_ip()}:{container.get_exposed_port(9200)}"


@contextlib.contextmanager
def _local_es(jars: Path) -> Iterator[str]:
    """The local node on the test port, shared by concurrent pytest sessions in this tree.

    Each session registers its pid under ``users/``. The last one out stops the node, and only
    if a test session started it: a node someone started by hand on that port stays up.
    """
    state = TEST_ES_STATE
    node = LocalElasticsearch(
        LocalElasticsearchConfig(state_dir=state, port=TEST_ES_PORT, jars_dir=jars)
    )
    users = state / "users"
    users.mkdir(parents=True, exist_ok=True)
    started_by_tests = state / "started-by-tests"
    me = users / str(os.getpid())
    with flocked(state / "users.lock"):
        me.touch()
        try:
            if node.start():
                started_by_tests.touch()
        except LocalElasticsearchError as err:
            me.unlink(missing_ok=True)
            pytest.fail(f"local Elasticsearch for the tests: {err}", pytrace=False)
    try:
        yield node.url
    finally:
        with flocked(state / "users.lock"):
            me.unlink(missing_ok=True)
            for user in users.iterdir():  # sessions that died without a teardown
                if not (user.name.isdigit() and alive(int(user.name))):
                    user.unlink(missing_ok=True)
            if not any(users.iterdir()) and started_by_tests.exists():
                node.stop()
                started_by_tests.unlink()


def _wait_for_node(url: str, timeout: float = 60.0) -> None:
    """Fail the session with one line unless ``url`` has a yellow or green cluster in time."""
    from elasticsearch import Elasticsearch

    # A node started just before the tests (CI, a developer's shell) may not listen yet. A new
    # client per try: one whose node failed puts it on a back-off of up to 30 s. The failure
    # below says in one line why; the client's warning per try would bury it.
    deadline = time.monotonic() + timeout
    transport_log = logging.getLogger("elastic_transport")
    level = transport_log.level
    transport_log.setLevel(logging.ERROR)
    try:
        while True:
            client = Elasticsearch(url, request_timeout=10, max_retries=0)
            try:
                client.cluster.health(wait_for_status="yellow", timeout="5s")
                return
            except Exception as err:
                if time.monotonic() > deadline:
                    why = str(err) if len(str(err)) <= 200 else str(err)[:197] + "..."
                    pytest.fail(
                        f"GRIDALARM_ES={url}: no healthy Elasticsearch there within "
                        f"{timeout:.0f}s: {why}",
                        pytrace=False,
                    )
            finally:
                client.close()
            time.sleep(1.0)
    finally:
        transport_log.setLevel(level)


@pytest.fixture(scope="session")
def es_url(local_es_jars: Path) -> Iterator[str]:
    """The URL of a real Elasticsearch 8 node, up for the whole session."""
    configured = os.environ.get("GRIDALARM_ES")
    if configured:
        _wait_for_node(configured)
        yield configured
    elif _docker_answers():
        with _es_container() as url:
            yield url
    else:
        with _local_es(local_es_jars) as url:
            yield url


@pytest.fixture
def own_es_node(tmp_path: Path, local_es_jars: Path) -> Iterator[LocalElasticsearch]:
    """A node of this test's own, which it may stop and start (on the same URL)."""
    jars = Path(os.environ.get("GRIDALARM_ES_JARS", local_es_jars))
    with socket.socket() as sock:  # a fixed port: the URL must stay the same across restarts
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    node = LocalElasticsearch(
        LocalElasticsearchConfig(state_dir=tmp_path / "node", port=port, jars_dir=jars)
    )
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def es_index_prefix() -> str:
    """A prefix that is this test's own: its indices and templates start with it."""
    return f"t-{uuid.uuid4().hex[:8]}-"


@pytest.fixture
def es_client(es_url: str, es_index_prefix: str) -> Iterator[Elasticsearch]:
    """An official client on the session's node; the test's indices are deleted after it.

    A test names every index and index template it makes with ``es_index_prefix``.
    """
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_url, request_timeout=60)
    try:
        yield client
    finally:
        # Best effort: a failing cleanup must not hide the test's own result.
        with contextlib.suppress(Exception):
            delete_test_indices(client, es_index_prefix)
        client.close()


def delete_test_indices(client: Elasticsearch, prefix: str) -> list[str]:
    """Delete the indices and index templates named ``<prefix>*``; returns the indices.

    Indices are deleted by their concrete names: Elasticsearch 8 refuses wildcard deletes
    (``action.destructive_requires_name``), and a shared node keeps its default.
    """
    names = sorted(client.indices.get(index=f"{prefix}*", expand_wildcards="all").body)
    for start in range(0, len(names), 50):  # short URLs, however many indices
        client.indices.delete(index=",".join(names[start : start + 50]))
    templates = client.options(ignore_status=404).indices.get_index_template(name=f"{prefix}*")
    for template in templates.body.get("index_templates", []):
        client.indices.delete_index_template(name=template["name"])
    return names
