"""A RabbitMQ node of the test's own, on its own ports, so a test can stop and start a broker
without touching the machine's. Debian's rabbitmq-server script drops to the `rabbitmq` user,
so the node's directories belong to it."""

import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from deploy.local import free_port, port_answers, wait_until


class BrokerNode:
    def __init__(self) -> None:
        self.name = f"sy{uuid.uuid4().hex[:8]}@localhost"
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


def rabbitmq_installed() -> bool:
    return shutil.which("rabbitmq-server", path="/usr/sbin:/usr/bin") is not None
