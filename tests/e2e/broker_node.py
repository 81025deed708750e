"""RabbitMQ nodes of the test's own, on their own ports, so a test can stop, start or kill a broker
without touching the machine's: one node, or a cluster of three. Debian's rabbitmq-server script
drops to the `rabbitmq` user, so the nodes' directories belong to it, and its nodes share that
user's Erlang cookie (/var/lib/rabbitmq/.erlang.cookie), which is what lets them cluster."""

import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

from deploy.local import free_port, port_answers, wait_until


class BrokerNode:
    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"sy{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="rabbit-"))
        for folder in ("mnesia", "log"):
            (self.base / folder).mkdir()
        (self.base / "enabled_plugins").write_text("[].\n")
        # The machine's rabbitmq.conf may pin a listener: this node gets a config of its own.
        (self.base / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        shutil.chown(self.base, "rabbitmq", "rabbitmq")
        for path in self.base.rglob("*"):
            shutil.chown(path, "rabbitmq", "rabbitmq")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
        }

    def start(self) -> None:
        subprocess.run(["rabbitmq-server", "-detached"], env=self._env(), check=True)
        wait_until(lambda: port_answers("127.0.0.1", self.port), 90, f"RabbitMQ node {self.name}")

    def stop(self) -> None:
        subprocess.run(["rabbitmqctl", "-n", self.name, "stop"], env=self._env(), check=False, capture_output=True)
        wait_until(lambda: not port_answers("127.0.0.1", self.port), 60, f"RabbitMQ node {self.name} stopping")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def ctl(self, *command: str) -> str:
        """rabbitmqctl against this node; its output."""
        done = subprocess.run(
            ["rabbitmqctl", "-n", self.name, *command], env=self._env(), capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"rabbitmqctl {' '.join(command)} on {self.name}: {done.stderr or done.stdout}"
        return done.stdout

    def pid(self) -> int:
        """The node's beam.smp (the process this test started)."""
        return int(self.ctl("eval", "os:getpid().").strip().strip('"'))

    def kill(self) -> None:
        """kill -9: no goodbye to clients or to the other nodes."""
        os.kill(self.pid(), signal.SIGKILL)
        wait_until(lambda: not port_answers("127.0.0.1", self.port), 30, f"RabbitMQ node {self.name} dying")


class BrokerCluster:
    """Three nodes of the test's own joined in one cluster; AMQP_URL names all three."""

    def __init__(self, size: int = 3) -> None:
        run = uuid.uuid4().hex[:6]
        self.nodes = [BrokerNode(f"sy-c{i + 1}-{run}@localhost") for i in range(size)]

    @property
    def url(self) -> str:
        return "amqp://guest:guest@" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes) + "/"

    def start(self) -> None:
        # The first node alone: on a fresh machine it writes the Erlang cookie the others then read
        # (booting side by side, each could make one of its own, and they could not cluster).
        first, *others = self.nodes
        first.start()
        for node in others:  # -detached returns at once: these boot side by side
            subprocess.run(["rabbitmq-server", "-detached"], env=node._env(), check=True)
        for node in others:
            wait_until(lambda node=node: port_answers("127.0.0.1", node.port), 90, f"RabbitMQ node {node.name}")
        for node in others:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
        running = first.ctl("eval", "rabbit_nodes:all_running().")
        assert all(node.name in running for node in self.nodes), f"not every node joined: {running}"

    def remove(self) -> None:
        for node in self.nodes:  # a killed node's stop finds nothing to stop
            node.remove()


def rabbitmq_installed() -> bool:
    return shutil.which("rabbitmq-server", path="/usr/sbin:/usr/bin") is not None
