"""Run Switchyard on this machine: `python -m deploy.local` (what `make run` does).

- RabbitMQ: AMQP_URL (default the local broker; a cluster's node list needs one node answering);
  if nothing listens there and the broker is local and `rabbitmq-server` is installed, it is
  started (`rabbitmq-server -detached`). A broker that accepts connections but does not answer
  the AMQP handshake (overloaded, out of file descriptors, wedged) is waited for, up to
  SWITCHYARD_BROKER_WAIT_SECONDS, then we fail saying what to check. A broker is never stopped
  or killed here: others may be using it.
- MongoDB: MONGO_URL if set; otherwise the embedded default, SecantusDB, is started as its own
  process with its data under .data/mongo (or in memory for tests).
- Then intake, router, agents, reporting and assist, each as its own process where INTAKE_HOST/INTAKE_PORT
  (ROUTER_, AGENTS_, REPORTING_) say, and the addresses of the pages.
The tests and the benchmark use the same functions to build their stacks.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from pydantic import AliasChoices, Field
from pymongo import AsyncMongoClient

from deploy import cleanup
from shared.amqp_hosts import broker_urls
from shared.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("intake", "router", "agents", "reporting", "assist")
DEFAULT_PORTS = {"intake": 8080, "router": 8081, "agents": 8082, "reporting": 8083, "assist": 8084}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _env(default, name: str, **constraints):
    """A setting read from the environment variable `name` (no prefix: the launcher reads several services')."""
    return Field(default, validation_alias=AliasChoices(name.lower(), name), **constraints)


class LocalSettings(CommonSettings):
    # Unset means: start the embedded server.
    mongo_url: str | None = _env(None, "MONGO_URL")
    embedded_mongo_port: int = _env(27117, "EMBEDDED_MONGO_PORT")
    embedded_reporting_mongo_port: int = _env(27118, "EMBEDDED_REPORTING_MONGO_PORT")
    data_dir: Path = _env(ROOT / ".data", "SWITCHYARD_DATA_DIR")
    # How long to wait for a broker that accepts connections but does not answer the handshake.
    broker_wait_seconds: float = _env(120, "SWITCHYARD_BROKER_WAIT_SECONDS", ge=0)
    # Where each service listens (the services read the same variables).
    intake_host: str = _env("127.0.0.1", "INTAKE_HOST")
    intake_port: int = _env(DEFAULT_PORTS["intake"], "INTAKE_PORT")
    router_host: str = _env("127.0.0.1", "ROUTER_HOST")
    router_port: int = _env(DEFAULT_PORTS["router"], "ROUTER_PORT")
    agents_host: str = _env("127.0.0.1", "AGENTS_HOST")
    agents_port: int = _env(DEFAULT_PORTS["agents"], "AGENTS_PORT")
    reporting_host: str = _env("127.0.0.1", "REPORTING_HOST")
    reporting_port: int = _env(DEFAULT_PORTS["reporting"], "REPORTING_PORT")
    assist_host: str = _env("127.0.0.1", "ASSIST_HOST")
    assist_port: int = _env(DEFAULT_PORTS["assist"], "ASSIST_PORT")
    # Unset: derived from where agents and intake listen, so a moved port moves them too.
    intake_agents_url: str | None = _env(None, "INTAKE_AGENTS_URL")
    intake_public_url: str | None = _env(None, "INTAKE_PUBLIC_URL")
    assist_public_url: str | None = _env(None, "ASSIST_PUBLIC_URL")
    # Unset: the supervisor page (reporting) reaches agents where it listens, and agents allows
    # the page's origin (on loopback, as 127.0.0.1 and as localhost).
    reporting_agents_url: str | None = _env(None, "REPORTING_AGENTS_URL")
    agents_cors_origins: str | None = _env(None, "AGENTS_CORS_ORIGINS")
    # Unset: the desk (agents) reaches assist where it listens (suggested articles), and assist allows
    # the desk's origin.
    agents_assist_url: str | None = _env(None, "AGENTS_ASSIST_URL")
    assist_cors_origins: str | None = _env(None, "ASSIST_CORS_ORIGINS")
    # How many processes of each service `make run` starts: the first on its port, the others on free ones.
    replicas: int = _env(1, "SWITCHYARD_REPLICAS", ge=1, le=8)

    def hosts(self) -> dict[str, str]:
        return {"intake": self.intake_host, "router": self.router_host, "agents": self.agents_host,
                "reporting": self.reporting_host, "assist": self.assist_host}

    def ports(self) -> dict[str, int]:
        return {"intake": self.intake_port, "router": self.router_port, "agents": self.agents_port,
                "reporting": self.reporting_port, "assist": self.assist_port}


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now, and one this process has not handed out before.

    The port is free when asked, not reserved: two calls before either port is bound (a stack's
    ports, an SMTP port and the test servers) could get the same one back from the kernel, and
    the second listener then failed with "address already in use"."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not come up within {timeout:.0f}s")


def amqp_answers(host: str, port: int, timeout: float = 10) -> bool:
    """True when the broker answers the AMQP protocol header with Connection.Start.

    A bare TCP connect is not enough: a broker out of file handles, or wedged, still accepts
    connections and then never answers, and every client would hang on it."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            first_byte = sock.recv(1)
    except OSError:
        return False
    return first_byte == b"\x01"  # frame type 1: a method frame (Connection.Start)


class BrokerUnavailable(RuntimeError):
    """No broker speaks AMQP at AMQP_URL; the message says what is wrong and what to do."""


def ensure_rabbitmq(amqp_url: str, wait_seconds: float = 120, start_timeout: float = 90) -> None:
    """Make sure a broker speaks AMQP at AMQP_URL, never stopping or killing one.

    Nothing listening: start the local rabbitmq-server if one is installed. Something listening
    that does not answer the handshake: wait for it up to wait_seconds, then fail with advice.
    A URL naming a cluster's nodes (shared/amqp_hosts.py) needs one node answering: a cluster is
    never started here."""
    nodes = [amqp_host_port(url) for url in broker_urls(amqp_url)]
    if len(nodes) > 1:
        wait_for_any_node(nodes, wait_seconds)
        return
    host, port = nodes[0]
    if amqp_answers(host, port, timeout=min(10.0, max(wait_seconds, 1.0))):
        return
    if port_answers(host, port):
        wait_for_handshake(host, port, wait_seconds)
    else:
        start_local_rabbitmq(host, port, start_timeout)


def amqp_host_port(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 5672


def wait_for_any_node(nodes: list[tuple[str, int]], wait_seconds: float) -> None:
    """Until one node of a cluster answers AMQP (the services connect through whichever does)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        if any(amqp_answers(host, port, timeout=2) for host, port in nodes):
            return
        if time.monotonic() >= deadline:
            listed = ", ".join(f"{host}:{port}" for host, port in nodes)
            raise BrokerUnavailable(
                f"no node of the cluster in AMQP_URL ({listed}) answered AMQP within {wait_seconds:.0f}s: "
                "start the cluster's nodes (a cluster is never started here), or point AMQP_URL at a broker"
            )
        time.sleep(0.5)  # refused connections return at once: do not spin


def wait_for_handshake(host: str, port: int, wait_seconds: float) -> None:
    """Wait for a broker that accepts connections but is silent: it may be busy (starting,
    recovering quorum queues, under an alarm). Others may be using it, so it is never restarted."""
    print(
        f"RabbitMQ at {host}:{port} accepts connections but does not answer the AMQP handshake; "
        f"waiting up to {wait_seconds:.0f}s for it (SWITCHYARD_BROKER_WAIT_SECONDS)",
        file=sys.stderr, flush=True,
    )
    deadline = time.monotonic() + wait_seconds
    while (remaining := deadline - time.monotonic()) > 0:
        if amqp_answers(host, port, timeout=min(5.0, remaining)):
            return
        # A refused connection returns at once: do not spin on it.
        time.sleep(min(0.5, max(deadline - time.monotonic(), 0)))
    raise BrokerUnavailable(silent_broker_advice(host, port, wait_seconds))


def silent_broker_advice(host: str, port: int, wait_seconds: float) -> str:
    return (
        f"RabbitMQ at {host}:{port} accepts connections but has not answered the AMQP handshake "
        f"for {wait_seconds:.0f}s. It is overloaded, starting or stopping, or wedged, often out of "
        "file descriptors (every connection and every quorum queue holds some). Switchyard does "
        "not stop or restart a broker: others may be using it. To fix it:\n"
        "  - look at it: `rabbitmqctl status` or `rabbitmq-diagnostics status` (file descriptors, "
        "alarms, memory), `rabbitmqctl list_queues name` (how many queues, whose); if those hang "
        "too, compare `ls /proc/<beam.smp pid>/fd | wc -l` with `grep 'open files' /proc/<pid>/limits`;\n"
        "  - once it answers, delete what killed stacks left: `make clean-broker` lists namespaces, "
        "`make clean-broker NAMESPACE=<ns>` removes one (README: Broker limits for a real deployment);\n"
        "  - raise its file-descriptor limit (LimitNOFILE in its systemd unit, or ulimit -n where it "
        "starts) and restart it yourself if it is yours: `rabbitmqctl stop`, then `rabbitmq-server -detached`;\n"
        "  - or point AMQP_URL at another broker, or wait longer with SWITCHYARD_BROKER_WAIT_SECONDS."
    )


def rabbitmq_server() -> str | None:
    return shutil.which("rabbitmq-server") or ("/usr/sbin/rabbitmq-server" if Path("/usr/sbin/rabbitmq-server").exists() else None)


def start_local_rabbitmq(host: str, port: int, timeout: float) -> None:
    """Nothing listens at host:port: start the machine's rabbitmq-server, when the URL is local."""
    server = rabbitmq_server()
    if host not in LOCAL_HOSTS or server is None:
        raise BrokerUnavailable(
            f"nothing listens at {host}:{port} (AMQP_URL) and no RabbitMQ can be started here "
            f"({'the broker is not local' if host not in LOCAL_HOSTS else 'rabbitmq-server is not installed'}): "
            "start a broker there, or point AMQP_URL at one"
        )
    print(f"starting rabbitmq-server (nothing listened at {host}:{port})", flush=True)
    try:
        subprocess.run([server, "-detached"], check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        raise BrokerUnavailable(f"could not start rabbitmq-server: {error}") from error
    try:
        wait_until(lambda: amqp_answers(host, port, timeout=2), timeout, "RabbitMQ")
    except TimeoutError:
        raise BrokerUnavailable(
            f"started rabbitmq-server, but nothing answered AMQP at {host}:{port} within {timeout:.0f}s: "
            "see `rabbitmqctl status` and the logs in /var/log/rabbitmq/ (does its listener match AMQP_URL?)"
        ) from None


def enable_rabbitmq_plugins(*plugins: str) -> None:
    """Enable broker plugins (offline: they take effect on a running node at once)."""
    plugins_cmd = shutil.which("rabbitmq-plugins") or "/usr/sbin/rabbitmq-plugins"
    if Path(plugins_cmd).exists():
        subprocess.run([plugins_cmd, "enable", *plugins], check=False, capture_output=True)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path | None = None

    def stop(self, timeout: float = 15) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def _bin(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    return str(beside_python) if beside_python.exists() else (shutil.which(name) or name)


def start_embedded_mongo(port: int, storage: str, log_path: Path | None = None) -> tuple[Process, str]:
    """Start SecantusDB (storage: a directory, or ':memory:'); return the process and its URL."""
    if storage != ":memory:":
        Path(storage).mkdir(parents=True, exist_ok=True)
    command = [_bin("secantusd-py"), "--host", "127.0.0.1", "--port", str(port), "--storage-path", storage, "--log-level", "WARNING"]
    popen = _spawn(command, log_path)
    process = Process("mongo", popen, log_path)

    def up() -> bool:
        if popen.poll() is not None:
            raise RuntimeError(f"secantusd-py exited with {popen.returncode}; see {log_path}")
        return port_answers("127.0.0.1", port)

    wait_until(up, 60, "the embedded MongoDB (SecantusDB)")
    # retryWrites=false: SecantusDB keeps the last 10,000 retryable writes and scans (past the cap,
    # sorts) them on every write, so each write grew slower with the writes before it (measured:
    # 24 ms p50 with 400 messages stored, 850 ms after 14,000, at the same 30 msg/s). A local
    # server gains nothing from them: consumers retry by redelivery and are idempotent. A real
    # MongoDB (MONGO_URL) keeps the driver's default.
    return process, f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false"


def _spawn(command: list[str], log_path: Path | None, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a process from the repo root, its output appended to log_path (else inherited)."""
    if log_path is None:
        return subprocess.Popen(command, cwd=ROOT, env=env)
    with open(log_path, "ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


@dataclass
class Infrastructure:
    """The broker and database a stack runs against; the embedded MongoDB if we started it."""

    amqp_url: str
    mongo_url: str
    embedded_mongo: Process | None = None
    # The embedded default gives reporting a SecantusDB of its own (None: reporting uses mongo_url).
    reporting_mongo_url: str | None = None
    embedded_reporting_mongo: Process | None = None

    def stop(self) -> None:
        for process in (self.embedded_reporting_mongo, self.embedded_mongo):
            if process is not None:
                process.stop()


def bring_up_infrastructure(settings: LocalSettings, mongo_storage: str, mongo_port: int, mongo_log: Path | None,
                            reporting_port: int | None = None) -> Infrastructure:
    """RabbitMQ at AMQP_URL (started if local and silent); MONGO_URL, else the embedded SecantusDB.

    Embedded, reporting gets a second SecantusDB (on `reporting_port`, else a free one): one
    SecantusDB process serves its clients one after another, so reporting's recomputation of a
    busy bucket held every message on the routing path behind it (p95 from 12 ms to seconds).
    A real MongoDB serves both side by side."""
    ensure_rabbitmq(settings.amqp_url, settings.broker_wait_seconds)
    if settings.mongo_url:
        return Infrastructure(settings.amqp_url, settings.mongo_url)
    process, url = start_embedded_mongo(mongo_port, mongo_storage, mongo_log)
    try:
        reporting_storage = mongo_storage if mongo_storage == ":memory:" else f"{mongo_storage}-reporting"
        reporting_log = mongo_log.with_name(f"reporting-{mongo_log.name}") if mongo_log else None
        reporting, reporting_url = start_embedded_mongo(reporting_port or free_port(), reporting_storage, reporting_log)
    except BaseException:
        process.stop()
        raise
    return Infrastructure(settings.amqp_url, url, process, reporting_url, reporting)


def stack_env(infra: Infrastructure, namespace: str, api_keys: str) -> dict[str, str]:
    """The environment of a stack isolated by name: its own exchanges, queues and database."""
    return {
        "AMQP_URL": infra.amqp_url,
        "MONGO_URL": infra.mongo_url,
        **({"REPORTING_MONGO_URL": infra.reporting_mongo_url} if infra.reporting_mongo_url else {}),
        "MONGO_DB": namespace,
        "SWITCHYARD_NAMESPACE": namespace,
        "SWITCHYARD_API_KEYS": api_keys,
        "LOG_LEVEL": "info",
    }


def page_origins(url: str) -> str:
    """The origins a page served at `url` may have in a browser: a loopback one also as localhost."""
    parsed = urlparse(url)
    origins = [f"{parsed.scheme}://{parsed.netloc}"]
    if parsed.hostname in ("127.0.0.1", "localhost"):
        other = "localhost" if parsed.hostname == "127.0.0.1" else "127.0.0.1"
        origins.append(f"{parsed.scheme}://{other}:{parsed.port}" if parsed.port else f"{parsed.scheme}://{other}")
    return ",".join(origins)


def reachable_host(host: str) -> str:
    """The address to call a service on: a wildcard listener answers on loopback."""
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::", "*") else host
    return f"[{host}]" if ":" in host else host


@dataclass
class Stack:
    """The services as processes, and where they answer."""

    env: dict[str, str]
    ports: dict[str, int]
    processes: dict[str, Process] = field(default_factory=dict)
    log_dir: Path | None = None
    hosts: dict[str, str] = field(default_factory=dict)  # a service not named here listens on 127.0.0.1

    @classmethod
    def on_free_ports(cls, env: dict[str, str], log_dir: Path | None = None) -> "Stack":
        return cls(env, {service: free_port() for service in SERVICES}, log_dir=log_dir)

    def url(self, service: str) -> str:
        return f"http://{reachable_host(self.hosts.get(service, '127.0.0.1'))}:{self.ports[service]}"

    def start(self, service: str, timeout: float = 60) -> None:
        self._launch(service, service, timeout)

    def start_replica(self, service: str, name: str, timeout: float = 60) -> None:
        """Start one more instance of a service under `name`, on a port of its own (e.g. a standby router)."""
        self.ports[name] = free_port()
        self._launch(service, name, timeout)

    def _launch(self, service: str, name: str, timeout: float) -> None:
        env = self.launch_env(service, name)
        log_path = self.log_dir / f"{name}.log" if self.log_dir else None
        popen = _spawn([sys.executable, "-m", f"services.{service}"], log_path, env=env)
        self.processes[name] = Process(name, popen, log_path)
        wait_until(lambda: self._ready(name), timeout, f"{name} (log: {log_path})")

    def launch_env(self, service: str, name: str) -> dict[str, str]:
        """The environment a service's process `name` starts with: this stack's addresses, then its env."""
        prefix = service.upper()
        # Intake reads chat history from this stack's agents service, wherever it listens; the
        # supervisor page (reporting) calls it from the browser, and agents allows the page's origin;
        # the desk (agents) calls assist from the browser, and assist allows the desk's origin.
        env = {**os.environ, "INTAKE_AGENTS_URL": self.url("agents"), "REPORTING_AGENTS_URL": self.url("agents"),
               "ASSIST_PUBLIC_URL": self.url("assist"), "INTAKE_HELP_CENTER_URL": self.url("assist"),
               "AGENTS_CORS_ORIGINS": page_origins(self.url("reporting")),
               "AGENTS_ASSIST_URL": self.url("assist"), "ASSIST_CORS_ORIGINS": page_origins(self.url("agents")),
               **self.env,
               f"{prefix}_PORT": str(self.ports[name]), f"{prefix}_HOST": self.hosts.get(name, "127.0.0.1")}
        return env

    def _ready(self, service: str) -> bool:
        popen = self.processes[service].popen
        if popen.poll() is not None:
            raise RuntimeError(f"{service} exited with {popen.returncode}; log: {self.processes[service].log_path}")
        try:
            with urllib.request.urlopen(f"{self.url(service)}/readyz", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start_all(self) -> None:
        # agents first: it declares the agent queues the router delivers to. Reporting last: its
        # queue is declared by every service and keeps the events until it reads them.
        for service in ("agents", "router", "intake", "reporting", "assist"):
            self.start(service)

    def stop(self, service: str) -> None:
        self.processes.pop(service).stop()

    def kill(self, service: str) -> None:
        self.processes.pop(service).kill()

    def stop_all(self) -> None:
        for service in list(self.processes):
            self.stop(service)


def run_stack(settings: LocalSettings, infra: Infrastructure) -> Stack:
    """The stack `make run` starts: where INTAKE_/ROUTER_/AGENTS_/REPORTING_HOST and _PORT say.

    Intake's agents URL and public URL follow the agents and intake ports unless set."""
    stack = Stack({"AMQP_URL": infra.amqp_url, "MONGO_URL": infra.mongo_url}, settings.ports(), hosts=settings.hosts())
    if infra.reporting_mongo_url:
        stack.env["REPORTING_MONGO_URL"] = infra.reporting_mongo_url
    stack.env["INTAKE_AGENTS_URL"] = settings.intake_agents_url or stack.url("agents")
    stack.env["INTAKE_PUBLIC_URL"] = settings.intake_public_url or stack.url("intake")
    stack.env["ASSIST_PUBLIC_URL"] = settings.assist_public_url or stack.url("assist")
    stack.env["INTAKE_HELP_CENTER_URL"] = stack.env["ASSIST_PUBLIC_URL"]  # the chat links to the help center
    stack.env["REPORTING_AGENTS_URL"] = settings.reporting_agents_url or stack.url("agents")
    stack.env["AGENTS_CORS_ORIGINS"] = settings.agents_cors_origins or page_origins(stack.url("reporting"))
    stack.env["AGENTS_ASSIST_URL"] = settings.agents_assist_url or stack.url("assist")
    stack.env["ASSIST_CORS_ORIGINS"] = settings.assist_cors_origins or page_origins(stack.url("agents"))
    return stack


SCALED_SERVICES = ("router", "agents", "intake", "reporting", "assist")


def start_more_replicas(stack: Stack, replicas: int) -> list[str]:
    """Replicas 2..N of every service, each on a free port (docs/architecture.md "Partitions"); their names."""
    names = []
    for n in range(2, replicas + 1):
        for service in SCALED_SERVICES:
            stack.start_replica(service, f"{service}-{n}")
            names.append(f"{service}-{n}")
    return names


def main() -> None:
    settings = LocalSettings()
    try:
        infra = bring_up_infrastructure(settings, str(settings.data_dir / "mongo"), settings.embedded_mongo_port,
                                        settings.data_dir / "mongo.log", settings.embedded_reporting_mongo_port)
    except BrokerUnavailable as error:
        sys.exit(f"make run: {error}")
    if infra.embedded_mongo is not None:
        print(f"embedded MongoDB (SecantusDB) at {infra.mongo_url}, data in {settings.data_dir / 'mongo'}", flush=True)
        print(f"reporting's embedded MongoDB at {infra.reporting_mongo_url}, data in {settings.data_dir / 'mongo-reporting'}",
              flush=True)
    stack = run_stack(settings, infra)
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start_all()
        extra = start_more_replicas(stack, settings.replicas)
        key = next(iter(settings.api_keys), "")
        print(
            "\nSwitchyard is running:\n"
            f"  customer chat  {stack.url('intake')}/chat\n"
            f"  agent desk     {stack.url('agents')}/desk   (API key: {key})\n"
            f"  supervisor     {stack.url('reporting')}/supervisor   (wallboard and reports; the same key)\n"
            f"  intake API     {stack.url('intake')}/v1/messages   (OpenAPI: /openapi.json)\n"
            f"  router         {stack.url('router')}/v1/queue\n"
            f"  reports        {stack.url('reporting')}/v1/reports/summary?from=...&to=...   (OpenAPI: /openapi.json)\n"
            f"  knowledge base {stack.url('assist')}/kb   (articles; the same key)\n"
            f"  help center    {stack.url('assist')}/help/default\n"
            f"  incidents      {stack.url('assist')}/incidents   (surges many customers report; the same key)\n"
            + "".join(f"  {name:<14} {stack.url(name)}\n" for name in extra)
            + "Ctrl-C stops it.",
            flush=True,
        )
        while not stop:
            for process in stack.processes.values():
                if process.popen.poll() is not None:
                    print(f"{process.name} exited with {process.popen.returncode}", flush=True)
                    stop = True
            time.sleep(0.5)
    finally:
        stack.stop_all()
        infra.stop()


async def remove_namespace(
    amqp_url: str, mongo_url: str, namespace: str, extra_queues: tuple[str, ...] = (), management_url: str | None = None
) -> None:
    """Drop a stack's database and delete its queues and exchanges (tests and the benchmark
    run throw-away stacks; quorum queues left behind cost the broker memory and descriptors).

    Every queue and exchange named `<namespace>.*` goes when the management API lists them;
    without it, the names the code knows (the agents' queues from the database)."""
    mongo = AsyncMongoClient(mongo_url)
    try:
        agents = await mongo[namespace]["agents"].find({}, {"workspace_id": 1, "agent_id": 1}).to_list()
        await mongo.drop_database(namespace)
    finally:
        await mongo.close()
    broker = cleanup.Broker.from_urls(amqp_url, management_url)
    # rabbitmqctl is not tried: a second or so per call is too slow after every test.
    listing, _ = await cleanup.list_broker(broker, use_rabbitmqctl=False)
    if listing is None:
        listing = cleanup.known_names(namespace, [(a["workspace_id"], a["agent_id"]) for a in agents], extra_queues)
    await cleanup.remove_namespaces(broker, listing, [namespace], force=True)


if __name__ == "__main__":
    main()
