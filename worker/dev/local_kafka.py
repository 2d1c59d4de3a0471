"""A real single-node Apache Kafka (KRaft) for development and tests.

The broker and Kafka's own CLI tools run from jars that Maven fetches from
Maven Central into a cache outside the clone (``~/.cache/sidepath/kafka-<v>``).
``Broker`` formats a fresh KRaft store, starts broker+controller on loopback,
waits for "Kafka Server started" and stops with SIGTERM (controlled shutdown).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sidepath.core.errors import FatalError

__all__ = ["KAFKA_VERSION", "cache_dir", "fetch_jars", "Broker", "kafka_tool", "group_offsets", "free_ports"]

KAFKA_VERSION = os.environ.get("SIDEPATH_KAFKA_VERSION", "4.3.1")
TOOLS = {
    "topics": "org.apache.kafka.tools.TopicCommand",
    "groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "offsets": "org.apache.kafka.tools.GetOffsetShell",
    "produce": "org.apache.kafka.tools.ConsoleProducer",
    "consume": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "configs": "kafka.admin.ConfigCommand",
}


def cache_dir() -> Path:
    base = Path(os.environ.get("SIDEPATH_CACHE", Path.home() / ".cache" / "sidepath"))
    return base / f"kafka-{KAFKA_VERSION}"


def _asset(name: str) -> Path:
    return Path(str(resources.files("sidepath.worker.dev").joinpath("kafka", name)))


def _java() -> str:
    java = shutil.which("java", path=os.path.join(os.environ["JAVA_HOME"], "bin")) \
        if "JAVA_HOME" in os.environ else shutil.which("java")
    if not java:
        raise FatalError("java not found; install a Java 17 JDK (Debian: apt-get install openjdk-17-jre-headless)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    digits = out.split('"')[1].split(".")[0] if '"' in out else "0"
    if int(digits or 0) < 17:
        raise FatalError(f"Kafka 4.x needs Java 17 or newer, found: {out.splitlines()[0] if out else '?'}")
    return java


def fetch_jars(*, quiet: bool = True) -> Path:
    """Fetch the broker and tool jars with Maven (no-op when already cached)."""
    home = cache_dir()
    jars = home / "jars"
    if (home / ".complete").exists():
        return jars
    mvn = shutil.which("mvn")
    if not mvn:
        raise FatalError("mvn not found; install Maven (Debian: apt-get install maven) to fetch the Kafka jars")
    _java()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(_asset("pom.xml"), home / "pom.xml")
    shutil.rmtree(jars, ignore_errors=True)   # never mix versions in one dir
    cmd = [mvn, "-B", *(["-q"] if quiet else []), "-f", str(home / "pom.xml"),
           "dependency:copy-dependencies", "-DincludeScope=runtime",
           f"-DoutputDirectory={jars}", f"-Dkafka.version={KAFKA_VERSION}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise FatalError(f"Maven could not fetch Kafka {KAFKA_VERSION} jars: {(r.stdout + r.stderr)[-400:]}")
    if any(p.name.startswith("slf4j-api-2") for p in jars.iterdir()):
        raise FatalError("slf4j-api 2.x on the Kafka classpath; the broker would log nothing")
    (home / ".complete").touch()
    return jars


def _classpath() -> str:
    return str(fetch_jars() / "*")   # the JVM expands dir/* itself


def kafka_tool(name_or_class: str, *args: str, timeout: float = 120, check: bool = True,
               stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run one of Kafka's own CLI tools from the same jars."""
    main = TOOLS.get(name_or_class, name_or_class)
    cmd = [_java(), "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
           f"-Dlog4j2.configurationFile={_asset('tools-log4j2.properties')}",
           "-cp", _classpath(), main, *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=stdin)
    if check and r.returncode != 0:
        raise RuntimeError(f"{main} rc={r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def group_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], tuple[int | None, int | None, int | None]]:
    """{(topic, partition): (committed, log_end, lag)} from kafka-consumer-groups --describe."""
    out = kafka_tool("groups", "--bootstrap-server", bootstrap, "--describe", "--group", group,
                     check=False).stdout
    rows = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 6 and f[0] == group and f[2] != "-" and f[2].isdigit():
            rows[(f[1], int(f[2]))] = tuple(None if v == "-" else int(v) for v in f[3:6])
    return rows  # type: ignore[return-value]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Broker:
    """One broker+controller on loopback with its own data directory."""

    workdir: Path
    port: int = 0
    controller_port: int = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pidfile(self) -> Path:
        return self.workdir / "broker.pid"

    def _properties(self, data: Path) -> str:
        props = {
            "process.roles": "broker,controller", "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "controller.listener.names": "CONTROLLER", "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data), "num.partitions": "1", "default.replication.factor": "1",
            "min.insync.replicas": "1", "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1", "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1", "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.cleaner.dedupe.buffer.size": "2097152", "log.cleaner.threads": "1",
            "num.network.threads": "2", "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def format(self) -> None:
        """Wipe and format a fresh KRaft store (ports are baked into it)."""
        if not self.port or not self.controller_port:
            self.port, self.controller_port = free_ports(2)
        shutil.rmtree(self.workdir, ignore_errors=True)
        (self.workdir / "logs").mkdir(parents=True)
        cfg = self.workdir / "server.properties"
        cfg.write_text(self._properties(self.workdir / "data"))
        cid = uuid.uuid4().bytes
        import base64
        cluster_id = base64.urlsafe_b64encode(cid).decode().rstrip("=").replace("-", "A")
        kafka_tool("kafka.tools.StorageTool", "format", "--cluster-id", cluster_id,
                   "--config", str(cfg), "--standalone")

    def start(self, *, wait_s: float = 90) -> int:
        """Start in the background (own session, so it outlives the CLI); return the pid."""
        cfg = self.workdir / "server.properties"
        if not cfg.exists():
            self.format()
        out = open(self.workdir / "broker.out", "ab")
        log = self.workdir / "logs" / "server.log"
        offset = log.stat().st_size if log.exists() else 0
        proc = subprocess.Popen(
            [_java(), "-Xms512m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
             "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
             "-Djava.awt.headless=true", f"-Dkafka.logs.dir={self.workdir / 'logs'}",
             f"-Dlog4j2.configurationFile={_asset('broker-log4j2.properties')}",
             "-cp", _classpath(), "kafka.Kafka", str(cfg)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self.pidfile.write_text(str(proc.pid))
        deadline = time.monotonic() + wait_s
        while True:
            text = log.read_bytes()[offset:].decode(errors="replace") if log.exists() else ""
            if "Kafka Server started" in text:
                return proc.pid
            if proc.poll() is not None:
                tail = (self.workdir / "broker.out").read_text(errors="replace")[-3000:]
                raise FatalError(f"Kafka broker exited with {proc.returncode}: {tail}")
            if time.monotonic() > deadline:
                proc.kill()
                raise FatalError(f"Kafka broker not up after {wait_s:.0f} s; see {self.workdir / 'logs'}")
            time.sleep(0.2)

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def stop(self, *, timeout_s: float = 30, hard: bool = False) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL if hard else signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                break
            try:   # reap if it is our child
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)
        return True
