"""A real single-node Elasticsearch 8 run from Maven Central jars.

Used by ``gridalarm es start|stop|status`` and the test fixtures when no node address is
configured (``GRIDALARM_ES``) and no Docker engine answers. Nothing here mocks Elasticsearch: it
resolves ``org.elasticsearch:elasticsearch`` and its ``transport-netty4`` module with Maven once
(tools/elasticsearch/pom.xml says why not the codelibs cluster runner), lays them out as an
Elasticsearch home, compiles a small launcher with ``javac`` once, and runs the node as a
detached process whose config, data, logs and pid all live under ``<state dir>/es/``.

The node is a real Elasticsearch 8 server with the official REST API, security off (plain
HTTP on the loopback), ``discovery.type: single-node`` and the disk threshold off. What the
Maven Central artifacts lack: scripting (painless), ingest processors and the x-pack features.

Every failure an operator can mend raises :class:`LocalElasticsearchError` with a one-line
message.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from gridalarm.javaserver import JavaServer, check_port_free, find_java, flocked, shorten

POM_ENV = "GRIDALARM_ES_POM"
INSTALL_HINT = (
    "install a JDK 17+ and Maven, or set GRIDALARM_ES to the URL of an Elasticsearch node"
)

# The repo root is the parent of the `gridalarm` package dir (editable installs and checkouts).
DEFAULT_POM = Path(__file__).resolve().parent.parent / "tools" / "elasticsearch" / "pom.xml"

# Printed by the launcher, once the node serves, with the HTTP address it actually bound: with
# port 0 the operating system picks it, and this line is how we learn it.
READY_RE = re.compile(rb"^gridalarm-es: serving (http://\S+)$", re.MULTILINE)

LAUNCHER_CLASS = "gridalarm.es.Launcher"
ROOT_PLUGIN = "gridalarm-root"


@dataclass(frozen=True)
class _Module:
    """A plugin module of the node: which resolved jars form its bundle under modules/."""

    name: str
    classname: str
    description: str
    artifacts: tuple[str, ...]  # "group:artifact" or "group:*"

    def holds(self, group: str, artifact: str) -> bool:
        return f"{group}:{artifact}" in self.artifacts or f"{group}:*" in self.artifacts


# The jars of a module must not also sit on the module path (the server refuses duplicate
# classes, and the module's classes would not be its plugin's), so they are kept apart.
MODULES = (
    _Module(
        name="transport-netty4",
        classname="org.elasticsearch.transport.netty4.Netty4Plugin",
        description="Netty 4 based HTTP and transport layer",
        artifacts=("org.elasticsearch.plugin:transport-netty4", "io.netty:*"),
    ),
)

# The launcher: Elasticsearch's own entry point expects its CLI (server args on stdin, a
# security manager, the distribution's scripts), so we start the node the way it does, minus
# those. The server runs as the named module it is, from the module path, as in the
# distribution: its plugin loading needs that.
LAUNCHER_JAVA = """\
package gridalarm.es;

import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.network.NetworkAddress;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.http.HttpServerTransport;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;

/** One Elasticsearch node in this JVM until SIGTERM. Args: home dir, config dir. */
public final class Launcher {
    public static void main(String[] args) {
        // Elasticsearch sends System.out to its log once logging is set up; the ready line
        // goes to the real stdout, as it is, for gridalarm to read the HTTP address from.
        PrintStream stdout = System.out;
        try {
            run(Path.of(args[0]), Path.of(args[1]), stdout);
        } catch (Throwable e) {
            e.printStackTrace();
            // The threads started so far must not keep a failed node's JVM alive.
            System.exit(1);
        }
    }

    private static void run(Path home, Path config, PrintStream stdout) throws Exception {
        Settings initial = Settings.builder().put("path.home", home.toString()).build();
        LogConfigurator.configureESLogging();
        LogConfigurator.registerErrorListener();
        Environment env =
            InternalSettingsPreparer.prepareEnvironment(initial, Map.of(), config, () -> "node");
        LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(env.settings()));
        LogConfigurator.configure(env, true);
        Node node = new Node(env);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> close(node), "gridalarm-es-stop"));
        node.start();
        HttpServerTransport http = node.injector().getInstance(HttpServerTransport.class);
        InetSocketAddress address = http.boundAddress().publishAddress().address();
        stdout.println("gridalarm-es: serving http://" + NetworkAddress.format(address));
        stdout.flush();
        // The node's threads are daemons: park here until SIGTERM runs the shutdown hook.
        new CountDownLatch(1).await();
    }

    private static void close(Node node) {
        try {
            node.prepareForClose();
            node.close();
            node.awaitClose(20, TimeUnit.SECONDS);
        } catch (Exception e) {
            e.printStackTrace();
        }
    }
}
"""

# GET / and HEAD / (the client's info() and ping(), and many health checks) come from the
# distribution's rest-root module, which is not on Maven Central: this plugin answers them.
ROOT_PLUGIN_JAVA = """\
package gridalarm.es.root;

import java.io.IOException;
import java.util.Collection;
import java.util.List;
import java.util.function.Predicate;
import java.util.function.Supplier;
import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.common.bytes.BytesArray;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.RestChannel;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;

/** Answers GET / (who this node is) and HEAD / (is it up). */
public final class RootPlugin extends Plugin implements ActionPlugin {
    private volatile ClusterService clusterService;

    @Override
    public Collection<?> createComponents(PluginServices services) {
        clusterService = services.clusterService();
        return List.of();
    }

    @Override
    public Collection<RestHandler> getRestHandlers(
        Settings settings,
        NamedWriteableRegistry namedWriteableRegistry,
        RestController restController,
        ClusterSettings clusterSettings,
        IndexScopedSettings indexScopedSettings,
        SettingsFilter settingsFilter,
        IndexNameExpressionResolver indexNameExpressionResolver,
        Supplier<DiscoveryNodes> nodesInCluster,
        Predicate<NodeFeature> clusterSupportsFeature
    ) {
        return List.of(new Root());
    }

    private final class Root implements RestHandler {
        @Override
        public List<Route> routes() {
            return List.of(
                new Route(RestRequest.Method.GET, "/"),
                new Route(RestRequest.Method.HEAD, "/")
            );
        }

        @Override
        public void handleRequest(RestRequest request, RestChannel channel, NodeClient client)
            throws IOException {
            if (request.method() == RestRequest.Method.HEAD) {
                String type = RestResponse.TEXT_CONTENT_TYPE;
                channel.sendResponse(new RestResponse(RestStatus.OK, type, BytesArray.EMPTY));
                return;
            }
            Build build = Build.current();
            XContentBuilder body = channel.newBuilder();
            body.startObject();
            body.field("name", clusterService.getNodeName());
            body.field("cluster_name", clusterService.getClusterName().value());
            body.field("cluster_uuid", clusterService.state().metadata().clusterUUID());
            body.startObject("version");
            body.field("number", build.qualifiedVersion());
            body.field("build_flavor", build.flavor());
            body.field("build_type", build.type().displayName());
            body.field("build_hash", build.hash());
            body.field("build_date", build.date());
            body.field("build_snapshot", build.isSnapshot());
            body.field("lucene_version", org.apache.lucene.util.Version.LATEST.toString());
            body.field("minimum_wire_compatibility_version", build.minWireCompatVersion());
            body.field("minimum_index_compatibility_version", build.minIndexCompatVersion());
            body.endObject();
            body.field("tagline", "You Know, for Search");
            body.endObject();
            channel.sendResponse(new RestResponse(RestStatus.OK, body));
        }
    }
}
"""

# Console only: the JVM's stdout is already redirected to elasticsearch.log. Elasticsearch
# requires a %node_name in the pattern (it adds one and warns otherwise).
LOG4J2_PROPERTIES = """\
status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
"""


class LocalElasticsearchError(RuntimeError):
    """The local node could not be set up, started or stopped; the message is one line."""


@dataclass(frozen=True)
class LocalElasticsearchConfig:
    """Where and how the local node runs. Paths may be relative; they are resolved on use."""

    state_dir: Path = Path(".state")
    host: str = "127.0.0.1"
    # HTTP port; 0 lets the operating system pick a free one, read from the node's output.
    port: int = 9200
    # Node-to-node port: a single node talks to no other, so any free port will do.
    transport_port: int = 0
    cluster_name: str = "gridalarm"
    heap: str = "512m"
    start_timeout: float = 120.0
    stop_timeout: float = 30.0
    # Several nodes (e.g. the test session's and a test's own) may share one Elasticsearch
    # home: the Maven-resolved jars and the compiled launcher, which nothing writes to at run
    # time.
    jars_dir: Path | None = None


@dataclass(frozen=True)
class LocalElasticsearchStatus:
    """What :meth:`LocalElasticsearch.status` found."""

    pid: int | None  # our node's pid if that process is alive
    serving: bool  # the HTTP port answers a cluster health request
    url: str
    log: Path

    @property
    def running(self) -> bool:
        """Our process is alive and answers on its HTTP port."""
        return self.pid is not None and self.serving

    def __str__(self) -> str:
        if self.running:
            return f"running (pid {self.pid}) at {self.url}; log: {self.log}"
        if self.pid is not None:
            return f"starting or stuck (pid {self.pid}), not answering; log: {self.log}"
        return "stopped"


class LocalElasticsearch(JavaServer):
    """One single-node cluster on ``host``; see the module docstring."""

    error = LocalElasticsearchError
    what = "the local Elasticsearch node"

    def __init__(self, config: LocalElasticsearchConfig | None = None) -> None:
        super().__init__()
        self.config = config or LocalElasticsearchConfig()
        self.stop_timeout = self.config.stop_timeout
        # Absolute paths: the pid file and the JVM's arguments must not depend on the cwd.
        self.root = Path(self.config.state_dir).resolve() / "es"
        self.home = Path(self.config.jars_dir or self.root / "jars").resolve()
        self.config_dir = self.root / "config"
        self.data_dir = self.root / "data"
        self.logs_dir = self.root / "logs"
        self.tmp_dir = self.root / "tmp"
        self.settings_path = self.config_dir / "elasticsearch.yml"
        self.log_path = self.root / "elasticsearch.log"
        self.pid_path = self.root / "elasticsearch.pid"
        self.url_path = self.root / "elasticsearch.url"

    def _marker(self) -> Path:
        return self.config_dir

    @property
    def url(self) -> str:
        """The node's HTTP address: as it reported it while it runs, else as configured."""
        if self._live_pid() is not None:
            with contextlib.suppress(OSError):
                recorded = self.url_path.read_text().strip()
                if recorded:
                    return recorded
        return f"http://{_url_host(self.config.host)}:{self.config.port}"

    # -- public operations ------------------------------------------------------------------

    def start(self) -> bool:
        """Start the node and wait until it serves; True if started, False if already running.

        Idempotent: when the pid file names a live node of ours that answers, nothing happens.
        A lock file serialises concurrent starts (two test sessions, a developer's shell).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked():
            pid = self._live_pid()
            if pid is not None:
                url = self.url
                if cluster_health(url) is not None:
                    return False
                raise LocalElasticsearchError(
                    f"the local Elasticsearch node (pid {pid}) runs but does not answer at {url}; "
                    f"see {self.log_path} or run `gridalarm es stop`"
                )
            self._forget()
            for port in (self.config.port, self.config.transport_port):
                if port:
                    _check_port_free(self.config.host, port)
            java = _find_java()
            with flocked(self.home.with_name(self.home.name + ".lock")):
                self._ensure_jars()
                self._ensure_launcher(java)
            self._write_configs()
            proc = self._launch(java)
            self._wait_ready(proc)
            return True

    def status(self) -> LocalElasticsearchStatus:
        """Whether our node process is alive and answering. Takes no lock: never blocks."""
        url = self.url
        return LocalElasticsearchStatus(
            pid=self._live_pid(),
            serving=cluster_health(url, timeout=2.0) is not None,
            url=url,
            log=self.log_path,
        )

    # -- setup ------------------------------------------------------------------------------

    def _ensure_jars(self) -> None:
        """Resolve the jars with Maven once and lay them out as an Elasticsearch home.

        lib/ holds the server and its libraries, modules/<name>/ each plugin module with a
        descriptor. A marker file with the pom's digest proves a complete layout.
        """
        marker = self.home / ".jars-complete"
        pom = Path(os.environ.get(POM_ENV) or DEFAULT_POM)
        digest = hashlib.sha256(pom.read_bytes()).hexdigest() if pom.is_file() else None
        if marker.is_file() and (digest is None or marker.read_text().strip() == digest):
            return
        if digest is None:
            raise LocalElasticsearchError(
                f"no Maven pom for the local Elasticsearch at {pom}; set {POM_ENV} to "
                "tools/elasticsearch/pom.xml of a gridalarm checkout, or set GRIDALARM_ES to "
                "the URL of a node"
            )
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LocalElasticsearchError(
                f"`mvn` not found: the local Elasticsearch needs it once; {INSTALL_HINT}"
            )
        # Start from empty: a copy cut short (Ctrl-C, network) must not leave a mixed set.
        if self.home.exists():
            shutil.rmtree(self.home)
        repo = self.home / "maven"
        repo.mkdir(parents=True)
        self.root.mkdir(parents=True, exist_ok=True)
        mvn_log = self.root / "mvn.log"
        with mvn_log.open("wb") as out:
            done = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "-Dstyle.color=never",
                    "-f",
                    str(pom),
                    "dependency:copy-dependencies",
                    # group/artifact/version folders: how we tell a module's jars from lib's.
                    "-Dmdep.useRepositoryLayout=true",
                    f"-DoutputDirectory={repo}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        jars = sorted(repo.rglob("*.jar"))
        if done.returncode != 0 or not jars:
            raise LocalElasticsearchError(
                "Maven could not fetch the Elasticsearch jars "
                f"(exit {done.returncode}){_last_error(mvn_log)}; see {mvn_log}"
            )
        lib = self.home / "lib"
        lib.mkdir()
        version = None
        for jar in jars:
            *group, artifact, jar_version, _ = jar.relative_to(repo).parts
            group_id = ".".join(group)
            if (group_id, artifact) == ("org.elasticsearch", "elasticsearch"):
                version = jar_version
            module = next((m for m in MODULES if m.holds(group_id, artifact)), None)
            target = self.home / "modules" / module.name if module else lib
            target.mkdir(parents=True, exist_ok=True)
            # Plain file names, as in the distribution: the module path names automatic
            # modules (e.g. `jopt.simple`) after them.
            os.replace(jar, target / jar.name)
        shutil.rmtree(repo)
        if version is None:
            raise LocalElasticsearchError(
                f"{pom} resolved no org.elasticsearch:elasticsearch jar; see {mvn_log}"
            )
        for module in MODULES:
            _write_descriptor(
                self.home / "modules" / module.name, module.name, module.classname, version
            )
        (self.home / "version").write_text(version + "\n")
        marker.write_text(digest + "\n")

    def _ensure_launcher(self, java: str) -> None:
        """Compile the launcher and the root plugin once per jar set and source text."""
        sources = {
            "gridalarm/es/Launcher.java": LAUNCHER_JAVA,
            "gridalarm/es/root/RootPlugin.java": ROOT_PLUGIN_JAVA,
        }
        marker = self.home / ".launcher-complete"
        digest = hashlib.sha256(
            "\0".join([(self.home / ".jars-complete").read_text(), *sources.values()]).encode()
        ).hexdigest()
        if marker.is_file() and marker.read_text().strip() == digest:
            return
        javac = _find_javac(java)
        build = self.home / "build"
        launcher = self.home / "launcher"
        plugin_dir = self.home / "modules" / ROOT_PLUGIN
        for path in (build, launcher, plugin_dir):
            if path.exists():
                shutil.rmtree(path)
        for name, text in sources.items():
            (build / "src" / name).parent.mkdir(parents=True, exist_ok=True)
            (build / "src" / name).write_text(text)
        javac_log = self.root / "javac.log"
        with javac_log.open("wb") as out:
            done = subprocess.run(
                [
                    javac,
                    "-encoding",
                    "UTF-8",
                    "-d",
                    str(build / "classes"),
                    "--module-path",
                    str(self.home / "lib"),
                    "--add-modules",
                    "ALL-MODULE-PATH",
                    *(str(build / "src" / name) for name in sources),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0:
            text = javac_log.read_text(errors="replace")
            why = (
                ": the JDK is too old (Elasticsearch 8 needs Java 17+)"
                if "class file has wrong version" in text
                else _last_error(javac_log)
            )
            raise LocalElasticsearchError(
                f"compiling the Elasticsearch launcher failed (exit {done.returncode}){why}; "
                f"see {javac_log}"
            )
        classes = build / "classes"
        # The plugin's classes only in its module's jar: the server refuses a plugin whose
        # classes are also on the class path.
        plugin_dir.mkdir(parents=True)
        with zipfile.ZipFile(plugin_dir / f"{ROOT_PLUGIN}.jar", "w") as jar:
            for path in sorted((classes / "gridalarm" / "es" / "root").rglob("*.class")):
                jar.write(path, path.relative_to(classes).as_posix())
        shutil.rmtree(classes / "gridalarm" / "es" / "root")
        version = (self.home / "version").read_text().strip()
        _write_descriptor(plugin_dir, ROOT_PLUGIN, "gridalarm.es.root.RootPlugin", version)
        os.replace(classes, launcher)
        shutil.rmtree(build)
        marker.write_text(digest + "\n")

    def _write_configs(self) -> None:
        """elasticsearch.yml and log4j2.properties, rewritten on every start (ports may change)."""
        c = self.config
        for path in (self.config_dir, self.data_dir, self.logs_dir, self.tmp_dir):
            path.mkdir(parents=True, exist_ok=True)
        settings: dict[str, str | int | bool] = {
            "cluster.name": c.cluster_name,
            "node.name": "gridalarm",
            "path.data": str(self.data_dir),
            "path.logs": str(self.logs_dir),
            "network.host": c.host,
            "http.port": c.port,
            "transport.port": c.transport_port,
            # One node that never looks for others, and needs no initial master list.
            "discovery.type": "single-node",
            # A nearly full developer disk must not turn indices read-only under the tests.
            "cluster.routing.allocation.disk.threshold_enabled": False,
        }
        # JSON scalars are valid YAML scalars, with quoting done right.
        text = "".join(f"{key}: {json.dumps(value)}\n" for key, value in settings.items())
        self.settings_path.write_text("# written by gridalarm; edits are overwritten\n" + text)
        (self.config_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)

    # -- process ----------------------------------------------------------------------------

    def _launch(self, java: str) -> subprocess.Popen[bytes]:
        """Start the node detached, so it outlives the command that started it."""
        if self.log_path.exists():
            # Keep one previous log for post-mortems; a fresh file means an old ready line
            # cannot pass for this start's.
            os.replace(self.log_path, self.log_path.with_name("elasticsearch.log.1"))
        heap = self.config.heap
        with self.log_path.open("wb") as out:
            proc = subprocess.Popen(
                [
                    java,
                    f"-Xms{heap}",
                    f"-Xmx{heap}",
                    "-XX:+ExitOnOutOfMemoryError",
                    "-XX:-OmitStackTraceInFastThrow",
                    "-Djava.awt.headless=true",
                    "-Dfile.encoding=UTF-8",
                    f"-Djava.io.tmpdir={self.tmp_dir}",
                    # As the distribution's jvm.options: JNA from its jar, not the system's;
                    # Netty without Unsafe and with Elasticsearch's own buffer recycling.
                    "-Djna.nosys=true",
                    "-Dio.netty.noUnsafe=true",
                    "-Dio.netty.noKeySetOptimization=true",
                    "-Dio.netty.recycler.maxCapacityPerThread=0",
                    "-Dlog4j.shutdownHookEnabled=false",
                    "-Dlog4j2.disable.jmx=true",
                    "-Dlog4j2.formatMsgNoLookups=true",
                    "--module-path",
                    str(self.home / "lib"),
                    "--add-modules",
                    "ALL-MODULE-PATH",
                    "-cp",
                    str(self.home / "launcher"),
                    LAUNCHER_CLASS,
                    str(self.home),
                    str(self.config_dir),
                ],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Own session: Ctrl-C in the starting terminal must not reach the node.
                start_new_session=True,
            )
        self.pid_path.write_text(f"{proc.pid}\n")
        self._proc = proc
        return proc

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        """Wait for the ready line, then for a yellow or green cluster; clean up on failure."""
        deadline = time.monotonic() + self.config.start_timeout
        url: str | None = None
        while True:
            code = proc.poll()
            if code is not None:
                self._forget()
                raise LocalElasticsearchError(
                    f"the local Elasticsearch node exited with code {code} while starting"
                    f"{_last_error(self.log_path)}; see {self.log_path}"
                )
            if url is None:
                found = READY_RE.search(self.log_path.read_bytes())
                url = found.group(1).decode() if found else None
            if url is not None and cluster_health(url) in ("yellow", "green"):
                self.url_path.write_text(url + "\n")
                return
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                self._forget()
                raise LocalElasticsearchError(
                    f"the local Elasticsearch node did not start within "
                    f"{self.config.start_timeout:.0f}s{_last_line(self.log_path)}; "
                    f"see {self.log_path}"
                )
            time.sleep(0.2)

    def _forget(self) -> None:
        super()._forget()
        self.url_path.unlink(missing_ok=True)


# No proxy from the environment: the node is on this machine.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def cluster_health(url: str, timeout: float = 5.0) -> str | None:
    """The cluster's health status ("green", "yellow", "red") at ``url``, or None if nothing
    there answers like Elasticsearch. Plain HTTP: the CLI does not load the client for it."""
    try:
        with _OPENER.open(f"{url.rstrip('/')}/_cluster/health", timeout=timeout) as response:
            status = json.load(response).get("status")
    except (OSError, ValueError, http.client.HTTPException, AttributeError):
        return None
    return status if isinstance(status, str) else None


def _write_descriptor(folder: Path, name: str, classname: str, version: str) -> None:
    """The plugin-descriptor.properties a module folder needs (the distribution ships them)."""
    props = {
        "name": name,
        "description": name,
        "version": version,
        "classname": classname,
        "java.version": "17",
        "elasticsearch.version": version,
        "extended.plugins": "",
        "has.native.controller": "false",
    }
    text = "".join(f"{key}={value}\n" for key, value in props.items())
    (folder / "plugin-descriptor.properties").write_text(text)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _check_port_free(host: str, port: int) -> None:
    check_port_free(
        host,
        port,
        LocalElasticsearchError,
        "stop it or choose another port (--port, or 0 for any free one)",
    )


def _find_java() -> str:
    return find_java(LocalElasticsearchError, "the local Elasticsearch", INSTALL_HINT)


def _find_javac(java: str) -> str:
    """The ``javac`` of the same JDK as ``java`` (classes must suit the JVM that runs them)."""
    beside = Path(java).resolve().parent / "javac"
    if os.access(beside, os.X_OK):
        return str(beside)
    javac = shutil.which("javac")
    if javac is None:
        raise LocalElasticsearchError(
            f"`javac` not found: the local Elasticsearch compiles a small launcher once and "
            f"needs a JDK, not only a Java runtime; {INSTALL_HINT}"
        )
    return javac


def _last_error(log: Path) -> str:
    """``": <last error line>"`` from a log, so one line says what went wrong.

    With a Java stack trace that is the last "Caused by", the root cause."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        text = line.strip()
        if text.startswith(("at ", "...")):
            continue
        if "ERROR" in text or "Exception" in text or text.startswith("Error") or "error:" in text:
            if "UnsupportedClassVersionError" in text:
                return ": the Java runtime is too old (Elasticsearch 8 needs Java 17+)"
            return ": " + shorten(text)
    return ""


def _last_line(log: Path) -> str:
    """``": <last log line>"``: where a start that hangs got to."""
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return f"; last log line: {shorten(lines[-1])}" if lines else ""
