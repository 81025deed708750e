"""`make run` (`python -m deploy.local`) honours README's configuration: each service listens where
INTAKE_/ROUTER_/AGENTS_/REPORTING_HOST and _PORT say, intake's agents and public URLs follow them unless set,
and the stack runs in SWITCHYARD_NAMESPACE and MONGO_DB with SWITCHYARD_API_KEYS."""

import asyncio
import os
import signal
import sys

import aio_pika
import aiohttp
import pytest
from pymongo import AsyncMongoClient

from deploy import local
from deploy.local import ROOT, Infrastructure, LocalSettings, free_port, port_answers, run_stack

SERVICE_PREFIXES = ("INTAKE_", "ROUTER_", "AGENTS_", "REPORTING_", "ASSIST_")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No service variable of the machine's leaks into the settings under test."""
    for name in list(os.environ):
        if name.startswith(SERVICE_PREFIXES):
            monkeypatch.delenv(name)
    return monkeypatch


def test_the_defaults_are_the_documented_ports(clean_env):
    stack = run_stack(LocalSettings(), Infrastructure("amqp://broker/", "mongodb://db/"))
    assert stack.ports == {"intake": 8080, "router": 8081, "agents": 8082, "reporting": 8083, "assist": 8084}
    assert [stack.url(s) for s in ("intake", "router", "agents", "reporting", "assist")] == [
        "http://127.0.0.1:8080", "http://127.0.0.1:8081", "http://127.0.0.1:8082", "http://127.0.0.1:8083",
        "http://127.0.0.1:8084"]
    assert stack.env["INTAKE_AGENTS_URL"] == "http://127.0.0.1:8082"
    assert stack.env["INTAKE_PUBLIC_URL"] == "http://127.0.0.1:8080"
    # The supervisor page (reporting) calls agents from the browser; agents allows the page's origin.
    assert stack.env["REPORTING_AGENTS_URL"] == "http://127.0.0.1:8082"
    assert stack.env["AGENTS_CORS_ORIGINS"] == "http://127.0.0.1:8083,http://localhost:8083"
    # The desk (agents) searches assist from the browser; assist allows the desk's origin.
    assert stack.env["AGENTS_ASSIST_URL"] == "http://127.0.0.1:8084"
    assert stack.env["ASSIST_CORS_ORIGINS"] == "http://127.0.0.1:8082,http://localhost:8082"


def test_hosts_and_ports_come_from_the_environment_and_intake_follows_them(clean_env):
    for name, value in {"INTAKE_PORT": "9100", "ROUTER_PORT": "9101", "AGENTS_PORT": "9102", "REPORTING_PORT": "9103",
                        "ASSIST_PORT": "9104", "INTAKE_HOST": "0.0.0.0", "ROUTER_HOST": "::1",
                        "AGENTS_HOST": "127.0.0.3", "REPORTING_HOST": "127.0.0.4", "ASSIST_HOST": "127.0.0.5"}.items():
        clean_env.setenv(name, value)
    stack = run_stack(LocalSettings(), Infrastructure("amqp://broker/", "mongodb://db/"))
    assert stack.ports == {"intake": 9100, "router": 9101, "agents": 9102, "reporting": 9103, "assist": 9104}
    assert stack.hosts == {"intake": "0.0.0.0", "router": "::1", "agents": "127.0.0.3", "reporting": "127.0.0.4",
                           "assist": "127.0.0.5"}
    # A wildcard listener is called on loopback; an IPv6 address goes in brackets.
    assert stack.url("intake") == "http://127.0.0.1:9100"
    assert stack.url("router") == "http://[::1]:9101"
    assert stack.env["INTAKE_AGENTS_URL"] == "http://127.0.0.3:9102"
    assert stack.env["INTAKE_PUBLIC_URL"] == "http://127.0.0.1:9100"
    assert stack.env["REPORTING_AGENTS_URL"] == "http://127.0.0.3:9102"
    assert stack.env["AGENTS_CORS_ORIGINS"] == "http://127.0.0.4:9103"
    assert stack.env["AGENTS_ASSIST_URL"] == "http://127.0.0.5:9104"
    assert stack.env["ASSIST_CORS_ORIGINS"] == "http://127.0.0.3:9102"


def test_intake_urls_that_are_set_are_kept(clean_env):
    clean_env.setenv("AGENTS_PORT", "9102")
    clean_env.setenv("INTAKE_AGENTS_URL", "http://agents.internal:8082")
    clean_env.setenv("INTAKE_PUBLIC_URL", "https://switchyard.example.com")
    stack = run_stack(LocalSettings(), Infrastructure("amqp://broker/", "mongodb://db/"))
    assert stack.env["INTAKE_AGENTS_URL"] == "http://agents.internal:8082"
    assert stack.env["INTAKE_PUBLIC_URL"] == "https://switchyard.example.com"


def test_the_supervisor_page_urls_that_are_set_are_kept(clean_env):
    clean_env.setenv("REPORTING_AGENTS_URL", "https://agents.example.com")
    clean_env.setenv("AGENTS_CORS_ORIGINS", "https://supervisor.example.com")
    stack = run_stack(LocalSettings(), Infrastructure("amqp://broker/", "mongodb://db/"))
    assert stack.env["REPORTING_AGENTS_URL"] == "https://agents.example.com"
    assert stack.env["AGENTS_CORS_ORIGINS"] == "https://supervisor.example.com"


def test_the_desk_assist_urls_that_are_set_are_kept(clean_env):
    clean_env.setenv("AGENTS_ASSIST_URL", "https://help.example.com")
    clean_env.setenv("ASSIST_CORS_ORIGINS", "https://desk.example.com")
    stack = run_stack(LocalSettings(), Infrastructure("amqp://broker/", "mongodb://db/"))
    assert stack.env["AGENTS_ASSIST_URL"] == "https://help.example.com"
    assert stack.env["ASSIST_CORS_ORIGINS"] == "https://desk.example.com"


def test_a_stack_on_free_ports_points_the_desk_at_its_own_assist(clean_env):
    stack = local.Stack.on_free_ports({})
    env = stack.launch_env("agents", "agents")
    assert env["AGENTS_ASSIST_URL"] == stack.url("assist")
    assert env["ASSIST_CORS_ORIGINS"] == f"http://127.0.0.1:{stack.ports['agents']},http://localhost:{stack.ports['agents']}"


class Output:
    """A process's output, read as it comes; wait for a text in it (a condition, never a pause)."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self.changed = asyncio.Event()
        self.reader = asyncio.create_task(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            self.lines.append(line.decode(errors="replace"))
            self.changed.set()
        self.changed.set()

    def text(self) -> str:
        return "".join(self.lines)

    async def wait_for(self, text: str, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while text not in self.text():
                assert not self.reader.done(), f"the process ended before printing {text!r}:\n{self.text()}"
                self.changed.clear()
                await self.changed.wait()


async def stop(process: asyncio.subprocess.Process, timeout: float = 45) -> int:
    """SIGTERM, as Ctrl-C would; if it does not end, kill its whole session (it started the services)."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise


@pytest.mark.e2e
async def test_make_run_listens_where_the_environment_says(infra, names, tmp_path):
    ns = names.namespace
    intake, router, agents, reporting = free_port(), free_port(), free_port(), free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith(SERVICE_PREFIXES)} | {
        "AMQP_URL": infra.amqp_url, "MONGO_URL": infra.mongo_url, "MONGO_DB": ns, "SWITCHYARD_NAMESPACE": ns,
        "SWITCHYARD_API_KEYS": "default:run-key", "SWITCHYARD_DATA_DIR": str(tmp_path), "LOG_LEVEL": "warning",
        "INTAKE_PORT": str(intake), "ROUTER_PORT": str(router), "AGENTS_PORT": str(agents),
        "REPORTING_PORT": str(reporting),
        "ROUTER_HOST": "127.0.0.2",  # a host of its own, to see *_HOST honoured
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "deploy.local", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )
    output = Output(process.stdout)
    try:
        await output.wait_for("Ctrl-C stops it.", timeout=120)
        banner = output.text()
        assert f"http://127.0.0.1:{intake}/chat" in banner
        assert f"http://127.0.0.1:{agents}/desk   (API key: run-key)" in banner
        assert f"http://127.0.0.2:{router}/v1/queue" in banner
        assert f"http://127.0.0.1:{reporting}/v1/reports/summary" in banner
        assert not port_answers("127.0.0.1", router), "the router listens on ROUTER_HOST only"

        async with aiohttp.ClientSession() as http:
            for base in (f"http://127.0.0.1:{intake}", f"http://127.0.0.2:{router}", f"http://127.0.0.1:{agents}",
                         f"http://127.0.0.1:{reporting}"):
                async with http.get(f"{base}/readyz") as response:
                    assert response.status == 200, base
            async with http.put(f"http://127.0.0.1:{agents}/v1/agents/ann", headers={"Authorization": "Bearer run-key"},
                                json={"name": "Ann", "skills": {"billing": 3}, "max_conversations": 3}) as response:
                assert response.status < 300, await response.text()
        await assert_stack_lives_in(infra, ns)
    finally:
        returncode = await stop(process)
        await output.reader
    assert returncode == 0, output.text()


async def assert_stack_lives_in(infra: Infrastructure, namespace: str) -> None:
    """The agent is in database MONGO_DB, the queues are named by SWITCHYARD_NAMESPACE."""
    mongo = AsyncMongoClient(infra.mongo_url)
    try:
        assert await mongo[namespace]["agents"].count_documents({"agent_id": "ann"}) == 1
    finally:
        await mongo.close()
    async with await aio_pika.connect(infra.amqp_url) as connection:
        channel = await connection.channel()
        await channel.declare_queue(f"{namespace}.router.work.0", passive=True)  # raises if absent


def test_free_ports_are_never_handed_out_twice_in_one_process(monkeypatch):
    """Two ports asked for before either is bound (an SMTP port, then the test servers) once came back equal:
    the kernel is free to give a released port again, as this stand-in for its socket does."""
    offered = iter([47001, 47001, 47001, 47002])

    class Kernel:
        def __enter__(self):
            return self

        def __exit__(self, *_):
            return False

        def bind(self, _address):
            self.port = next(offered)

        def getsockname(self):
            return ("127.0.0.1", self.port)

    monkeypatch.setattr(local.socket, "socket", Kernel)
    monkeypatch.setattr(local, "_HANDED_OUT", set())  # the ports this run's other tests were handed are not the point
    assert [free_port(), free_port()] == [47001, 47002]


def test_make_run_starts_the_replicas_asked_for(stack_factory):
    """SWITCHYARD_REPLICAS=2: a second process of every service, on a port of its own, ready."""
    built = stack_factory()
    built.start_all()
    names = local.start_more_replicas(built, 2)
    assert sorted(names) == ["agents-2", "assist-2", "intake-2", "reporting-2", "router-2"]
    ports = {built.ports[name] for name in [*local.SCALED_SERVICES, *names]}
    assert len(ports) == 10, "every process listens on a port of its own"
    for name in names:  # started means its /readyz answered; it still answers
        assert port_answers(built.hosts.get(name, "127.0.0.1"), built.ports[name]), f"{name} does not answer"
    assert local.LocalSettings(SWITCHYARD_REPLICAS="3").replicas == 3
