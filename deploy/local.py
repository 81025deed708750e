"""Run Switchyard on this machine: `python -m deploy.local` (what `make run` does).

- RabbitMQ: AMQP_URL (default the local broker); if nothing answers there and the broker is
  local and `rabbitmq-server` is installed, it is started (`rabbitmq-server -detached`); a local
  node that accepts connections but no longer speaks AMQP (wedged) is restarted.
- MongoDB: MONGO_URL if set; otherwise the embedded default, SecantusDB, is started as its own
  process with its data under .data/mongo (or in memory for tests).
- Then intake, router and agents, each as its own process, and the addresses of the pages.
The tests and the benchmark use the same functions to build their stacks.
"""

import contextlib
import os
import re
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

import aio_pika
from pydantic import AliasChoices, Field
from pymongo import AsyncMongoClient

from services.intake.channels import PLUGINS
from shared.settings import CommonSettings
from shared.topology import Topology

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("intake", "router", "agents")
DEFAULT_PORTS = {"intake": 8080, "router": 8081, "agents": 8082}


class LocalSettings(CommonSettings):
    # Unset means: start the embedded server.
    mongo_url: str | None = Field(None, validation_alias=AliasChoices("mongo_url", "MONGO_URL"))
    embedded_mongo_port: int = Field(27117, validation_alias=AliasChoices("embedded_mongo_port", "EMBEDDED_MONGO_PORT"))
    data_dir: Path = Field(ROOT / ".data", validation_alias=AliasChoices("data_dir", "SWITCHYARD_DATA_DIR"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def ensure_rabbitmq(amqp_url: str, timeout: float = 90) -> None:
    """Make sure a broker speaks AMQP at AMQP_URL.

    Nothing answering: start the local rabbitmq-server if one is installed. A local node that
    accepts connections but does not speak AMQP (hung): restart it."""
    url = urlparse(amqp_url)
    host, port = url.hostname or "127.0.0.1", url.port or 5672
    if amqp_answers(host, port):
        return
    server = shutil.which("rabbitmq-server") or ("/usr/sbin/rabbitmq-server" if Path("/usr/sbin/rabbitmq-server").exists() else None)
    if host not in ("127.0.0.1", "localhost", "::1") or server is None:
        raise RuntimeError(f"no RabbitMQ speaks AMQP at {host}:{port} and none can be started here")
    if port_answers(host, port):
        print(f"RabbitMQ at {host}:{port} accepts connections but does not answer AMQP: restarting it", flush=True)
        stop_local_rabbitmq(port)
    else:
        print(f"starting rabbitmq-server (nothing answered at {host}:{port})", flush=True)
    subprocess.run([server, "-detached"], check=True)
    wait_until(lambda: amqp_answers(host, port, timeout=2), timeout, "RabbitMQ")


def stop_local_rabbitmq(port: int) -> None:
    """Stop the node listening on `port`: politely first, then by killing the process."""
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        subprocess.run([ctl, "stop"], check=False, capture_output=True, timeout=60)
    if port_answers("127.0.0.1", port):
        for pid in listening_pids(port):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not port_answers("127.0.0.1", port), 30, f"the process on port {port} stopping")


def listening_pids(port: int) -> list[int]:
    """Pids of the processes listening on a local TCP port (from iproute2's `ss`)."""
    try:
        out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return sorted({int(pid) for pid in re.findall(r"pid=(\d+)", out)})


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
    return process, f"mongodb://127.0.0.1:{port}/?directConnection=true"


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

    def stop(self) -> None:
        if self.embedded_mongo is not None:
            self.embedded_mongo.stop()


def bring_up_infrastructure(settings: LocalSettings, mongo_storage: str, mongo_port: int, mongo_log: Path | None) -> Infrastructure:
    """RabbitMQ at AMQP_URL (started if local and silent); MONGO_URL, else the embedded SecantusDB."""
    ensure_rabbitmq(settings.amqp_url)
    if settings.mongo_url:
        return Infrastructure(settings.amqp_url, settings.mongo_url)
    process, url = start_embedded_mongo(mongo_port, mongo_storage, mongo_log)
    return Infrastructure(settings.amqp_url, url, process)


def stack_env(infra: Infrastructure, namespace: str, api_keys: str) -> dict[str, str]:
    """The environment of a stack isolated by name: its own exchanges, queues and database."""
    return {
        "AMQP_URL": infra.amqp_url,
        "MONGO_URL": infra.mongo_url,
        "MONGO_DB": namespace,
        "SWITCHYARD_NAMESPACE": namespace,
        "SWITCHYARD_API_KEYS": api_keys,
        "LOG_LEVEL": "info",
    }


@dataclass
class Stack:
    """The three services as processes, and where they answer."""

    env: dict[str, str]
    ports: dict[str, int]
    processes: dict[str, Process] = field(default_factory=dict)
    log_dir: Path | None = None

    @classmethod
    def on_free_ports(cls, env: dict[str, str], log_dir: Path | None = None) -> "Stack":
        return cls(env, {service: free_port() for service in SERVICES}, log_dir=log_dir)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self, service: str, timeout: float = 60) -> None:
        prefix = service.upper()
        # Intake reads chat history from this stack's agents service, wherever it listens.
        env = {**os.environ, "INTAKE_AGENTS_URL": self.url("agents"), **self.env,
               f"{prefix}_PORT": str(self.ports[service]), f"{prefix}_HOST": "127.0.0.1"}
        log_path = self.log_dir / f"{service}.log" if self.log_dir else None
        popen = _spawn([sys.executable, "-m", f"services.{service}"], log_path, env=env)
        self.processes[service] = Process(service, popen, log_path)
        wait_until(lambda: self._ready(service), timeout, f"{service} (log: {log_path})")

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
        # agents first: it declares the agent queues the router delivers to.
        for service in ("agents", "router", "intake"):
            self.start(service)

    def stop(self, service: str) -> None:
        self.processes.pop(service).stop()

    def kill(self, service: str) -> None:
        self.processes.pop(service).kill()

    def stop_all(self) -> None:
        for service in list(self.processes):
            self.stop(service)

    def start_replica(self, service: str, name: str, timeout: float = 60) -> None:
        """Start one more instance of a service under `name`, on a port of its own (e.g. a standby router)."""
        self.ports[name] = free_port()
        prefix = service.upper()
        env = {**os.environ, "INTAKE_AGENTS_URL": self.url("agents"), **self.env,
               f"{prefix}_PORT": str(self.ports[name]), f"{prefix}_HOST": "127.0.0.1"}
        log_path = self.log_dir / f"{name}.log" if self.log_dir else None
        popen = _spawn([sys.executable, "-m", f"services.{service}"], log_path, env=env)
        self.processes[name] = Process(name, popen, log_path)
        wait_until(lambda: self._ready(name), timeout, f"{name} (log: {log_path})")


def main() -> None:
    settings = LocalSettings()
    infra = bring_up_infrastructure(settings, str(settings.data_dir / "mongo"), settings.embedded_mongo_port,
                                    settings.data_dir / "mongo.log")
    if infra.embedded_mongo is not None:
        print(f"embedded MongoDB (SecantusDB) at {infra.mongo_url}, data in {settings.data_dir / 'mongo'}", flush=True)
    stack = Stack({"AMQP_URL": infra.amqp_url, "MONGO_URL": infra.mongo_url}, dict(DEFAULT_PORTS))
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start_all()
        key = next(iter(settings.api_keys), "")
        print(
            "\nSwitchyard is running:\n"
            f"  customer chat  {stack.url('intake')}/chat\n"
            f"  agent desk     {stack.url('agents')}/desk   (API key: {key})\n"
            f"  intake API     {stack.url('intake')}/v1/messages   (OpenAPI: /openapi.json)\n"
            f"  router         {stack.url('router')}/v1/queue\n"
            "Ctrl-C stops it.",
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


async def remove_namespace(amqp_url: str, mongo_url: str, namespace: str, extra_queues: tuple[str, ...] = ()) -> None:
    """Drop a stack's database and delete its queues and exchanges (tests and the benchmark
    run throw-away stacks; quorum queues left behind cost the broker memory)."""
    mongo = AsyncMongoClient(mongo_url)
    try:
        agents = await mongo[namespace]["agents"].find({}, {"workspace_id": 1, "agent_id": 1}).to_list()
        await mongo.drop_database(namespace)
    finally:
        await mongo.close()
    topology = Topology(namespace)
    queues = list(topology.core_queues())
    queues += [topology.outbound_queue(p.name) for p in PLUGINS if p.sender is not None]
    queues += [topology.plugin_queue(p.name) for p in PLUGINS if p.background is not None]
    queues += [topology.agent_queue(a["workspace_id"], a["agent_id"]) for a in agents]
    queues += [topology.dead_letter_queue(q) for q in queues] + list(extra_queues)
    async with await aio_pika.connect(amqp_url) as connection:
        for name in queues:
            channel = await connection.channel()  # a failed delete closes its channel
            try:
                await channel.queue_delete(name)
            except aio_pika.exceptions.AMQPError:
                pass
        channel = await connection.channel()
        for exchange in (topology.events_exchange, topology.deliveries_exchange):
            await channel.exchange_delete(exchange)


if __name__ == "__main__":
    main()

