"""Static checks of docker-compose.yml and deploy/Dockerfile (no Docker engine needed)."""

import re
import shlex
from pathlib import Path

import pytest
import yaml
from pymongo import uri_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"

APP_SERVICES = {"intake": 8080, "router": 8081, "agents": 8082, "reporting": 8083, "assist": 8084}
MONGO_MEMBERS = {"mongo1": 27017, "mongo2": 27018, "mongo3": 27019}
REPLICA_SET = "rs0"
INFRA = ("rabbitmq", *MONGO_MEMBERS, "mongo-init")
# What each application service waits for: the broker healthy, and the replica set initiated
# with a primary (mongo-init exits 0 only then).
APP_WAITS_FOR = {"rabbitmq": "service_healthy", "mongo-init": "service_completed_successfully"}


# --- helpers ---------------------------------------------------------------------------------


def load_compose() -> dict:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict), "docker-compose.yml does not parse to a mapping"
    services = data.get("services")
    assert isinstance(services, dict), "docker-compose.yml has no `services:` mapping"
    return data


def service(name: str) -> dict:
    services = load_compose()["services"]
    assert name in services, f"compose service {name!r} missing (have: {sorted(services)})"
    return services[name]


def env_of(svc: dict) -> dict[str, str]:
    """`environment:` as a dict, whether written as a mapping or a list of KEY=VALUE."""
    raw = svc.get("environment") or {}
    if isinstance(raw, dict):
        return {str(k): "" if v is None else str(v) for k, v in raw.items()}
    env: dict[str, str] = {}
    for item in raw:
        key, _, value = str(item).partition("=")
        env[key] = value
    return env


def published_ports(svc: dict) -> dict[int, int | None]:
    """Container port -> host port, for short ("8080:8080", "127.0.0.1:8080:8080") and long syntax."""
    result: dict[int, int | None] = {}
    for entry in svc.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            result[int(entry["target"])] = int(published) if published is not None else None
            continue
        parts = str(entry).split("/")[0].split(":")
        target = int(parts[-1])
        result[target] = int(parts[-2]) if len(parts) >= 2 and parts[-2] else None
    return result


def depends_on(svc: dict) -> dict[str, str | None]:
    """Dependency -> condition (None for the short list form, which waits for nothing)."""
    raw = svc.get("depends_on") or {}
    if isinstance(raw, list):
        return {str(name): None for name in raw}
    return {str(name): (spec or {}).get("condition") for name, spec in raw.items()}


def command_words(svc: dict) -> list[str]:
    command = svc.get("command")
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(w) for w in command]


def healthcheck_text(svc: dict) -> str:
    test = (svc.get("healthcheck") or {}).get("test")
    if test is None:
        return ""
    return test if isinstance(test, str) else " ".join(str(w) for w in test)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and `\\` continuations joined."""
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing"
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    if pending:
        keyword, _, args = pending.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the last build stage (the image that actually runs)."""
    instructions = dockerfile_instructions()
    starts = [i for i, (kw, _) in enumerate(instructions) if kw == "FROM"]
    assert starts, "deploy/Dockerfile has no FROM"
    return instructions[starts[-1] :]


# --- docker-compose.yml ----------------------------------------------------------------------


def test_every_service_exists():
    services = load_compose()["services"]
    missing = {*INFRA, *APP_SERVICES} - set(services)
    assert not missing, f"compose is missing services: {sorted(missing)}"


def test_rabbitmq_uses_management_image_and_exposes_amqp():
    svc = service("rabbitmq")
    image = str(svc.get("image", ""))
    assert image.startswith("rabbitmq:") and "management" in image, (
        f"rabbitmq image should be a rabbitmq *-management tag, got {image!r}"
    )
    assert 5672 in published_ports(svc), f"rabbitmq does not publish 5672: {svc.get('ports')}"
    assert healthcheck_text(svc), "rabbitmq needs a healthcheck (apps wait on service_healthy)"


def is_official_mongo(image: str) -> bool:
    return image.split(":")[0] in {"mongo", "docker.io/library/mongo", "library/mongo"}


def volume_sources(svc: dict, target: str) -> list[str]:
    """The named volumes (or host paths) mounted at `target`, for short and long syntax."""
    sources = []
    for volume in svc.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("target") == target:
                sources.append(str(volume.get("source")))
        elif str(volume).split(":")[1:2] == [target]:
            sources.append(str(volume).split(":")[0])
    return sources


def option_value(words: list[str], option: str) -> str | None:
    """The value of `--option value` or `--option=value` in a command line."""
    for i, word in enumerate(words):
        if word == option and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(option + "="):
            return word.partition("=")[2]
    return None


@pytest.mark.parametrize(("name", "port"), MONGO_MEMBERS.items())
def test_mongo_member_runs_official_image_in_the_replica_set(name, port):
    svc = service(name)
    assert is_official_mongo(str(svc.get("image", ""))), (
        f"{name} should use the official `mongo` image, got {svc.get('image')!r}"
    )
    words = command_words(svc)
    assert words[:1] == ["mongod"], f"{name}: command should run mongod, got {words}"
    assert option_value(words, "--replSet") == REPLICA_SET, f"{name}: not started with --replSet {REPLICA_SET}: {words}"
    assert "--bind_ip_all" in words, f"{name}: mongod must listen beyond localhost for the other members: {words}"
    assert option_value(words, "--port") == str(port), f"{name}: mongod should listen on {port}: {words}"
    assert published_ports(svc).get(port) == port, f"{name}: {port} should be published as {port}: {svc.get('ports')}"
    text = healthcheck_text(svc)
    assert "mongosh" in text and "ping" in text and str(port) in text, (
        f"{name}: healthcheck should ping mongod on {port} with mongosh: {text!r}"
    )


def test_mongo_members_keep_their_data_in_their_own_volumes():
    compose = load_compose()
    sources = {name: volume_sources(service(name), "/data/db") for name in MONGO_MEMBERS}
    for name, mounted in sources.items():
        assert len(mounted) == 1, f"{name}: needs exactly one volume at /data/db, has {mounted}"
        assert mounted[0] in (compose.get("volumes") or {}), (
            f"{name}: volume {mounted[0]!r} is not declared under top-level `volumes:`"
        )
    distinct = {mounted[0] for mounted in sources.values()}
    assert len(distinct) == len(MONGO_MEMBERS), f"members share a data volume: {sources}"


def test_mongo_init_initiates_the_set_once_after_every_member_is_healthy():
    svc = service("mongo-init")
    assert is_official_mongo(str(svc.get("image", ""))), "mongo-init should use the mongo image (for mongosh)"
    assert str(svc.get("restart", "no")) == "no", "mongo-init is one-shot; restarting it would loop"
    deps = depends_on(svc)
    assert deps == dict.fromkeys(MONGO_MEMBERS, "service_healthy"), (
        f"mongo-init should wait for every member to be healthy, got {deps}"
    )
    words = command_words(svc)
    assert words[:1] == ["mongosh"], f"mongo-init should run mongosh, got {words}"
    script = option_value(words, "--eval") or ""
    assert "rs.initiate(" in script, "mongo-init never calls rs.initiate"
    # Only a set that has no config yet is initiated: `up` a second time must not fail.
    assert "NotYetInitialized" in script, "mongo-init should initiate only when rs.status() says NotYetInitialized"
    assert f'_id: "{REPLICA_SET}"' in script, f"rs.initiate should name the set {REPLICA_SET}"
    hosts = re.findall(r'host:\s*"([^"]+)"', script)
    assert hosts == [f"{name}:{port}" for name, port in MONGO_MEMBERS.items()], (
        f"rs.initiate should list every member by its service name and port, got {hosts}"
    )
    assert "PRIMARY" in script, "mongo-init should exit only once a primary is elected"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_builds_from_shared_dockerfile(name):
    build = service(name).get("build")
    assert isinstance(build, dict), f"{name}: `build` should be a mapping with context and dockerfile"
    context = (ROOT / str(build.get("context", "."))).resolve()
    assert context == ROOT, f"{name}: build context should be the repo root, got {build.get('context')!r}"
    dockerfile = (context / str(build.get("dockerfile", "Dockerfile"))).resolve()
    assert dockerfile == DOCKERFILE, f"{name}: should build from deploy/Dockerfile, got {dockerfile}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_runs_its_module(name):
    words = command_words(service(name))
    assert words == ["python", "-m", f"services.{name}"], (
        f"{name}: command should be python -m services.{name}, got {words}"
    )


@pytest.mark.parametrize(("name", "port"), APP_SERVICES.items())
def test_app_publishes_its_port(name, port):
    ports = published_ports(service(name))
    assert port in ports, f"{name}: container port {port} not published (ports: {ports})"
    assert ports[port] in (None, port), f"{name}: {port} published on host port {ports[port]}"


@pytest.mark.parametrize(("name", "port"), APP_SERVICES.items())
def test_app_environment(name, port):
    env = env_of(service(name))
    prefix = name.upper()
    amqp = env.get("AMQP_URL", "")
    assert re.match(r"amqps?://([^@/]*@)?rabbitmq(:\d+)?(/|$)", amqp), (
        f"{name}: AMQP_URL should point at the rabbitmq service, got {amqp!r}"
    )
    check_mongo_url(name, env.get("MONGO_URL", ""))
    assert env.get("SWITCHYARD_API_KEYS"), f"{name}: SWITCHYARD_API_KEYS is not set"
    for pair in env["SWITCHYARD_API_KEYS"].split(","):
        workspace, sep, key = pair.strip().partition(":")
        assert sep and workspace and key, f"{name}: API key entry {pair!r} is not workspace:key"
    assert env.get(f"{prefix}_HOST") == "0.0.0.0", (
        f"{name}: {prefix}_HOST must be 0.0.0.0 to be reachable in a container, "
        f"got {env.get(f'{prefix}_HOST')!r}"
    )
    assert env.get(f"{prefix}_PORT") == str(port), (
        f"{name}: {prefix}_PORT should be {port} (the published port), got {env.get(f'{prefix}_PORT')!r}"
    )
    queue_type = env.get("SWITCHYARD_QUEUE_TYPE", "quorum")
    assert queue_type in {"quorum", "classic"}, f"{name}: bad SWITCHYARD_QUEUE_TYPE {queue_type!r}"


def check_mongo_url(name: str, url: str) -> None:
    """The replica set's connection string, parsed by the driver's own parser."""
    parsed = uri_parser.parse_uri(url)
    options = parsed["options"]
    assert parsed["nodelist"] == list(MONGO_MEMBERS.items()), (
        f"{name}: MONGO_URL should name every member (host:port), got {parsed['nodelist']}"
    )
    assert options.get("replicaSet") == REPLICA_SET, f"{name}: MONGO_URL lacks replicaSet={REPLICA_SET}: {url!r}"
    assert "directConnection" not in options, f"{name}: directConnection would pin one member: {url!r}"
    # State that must survive a failover is acknowledged only once most members have it.
    assert options.get("w") == "majority", f"{name}: MONGO_URL should set w=majority: {url!r}"
    assert options.get("retryWrites") is True, f"{name}: MONGO_URL should set retryWrites=true: {url!r}"


def test_intake_reaches_agents_service():
    env = env_of(service("intake"))
    url = env.get("INTAKE_AGENTS_URL", "")
    assert url.rstrip("/") == f"http://agents:{APP_SERVICES['agents']}", (
        f"intake: INTAKE_AGENTS_URL should be http://agents:8082, got {url!r}"
    )


@pytest.mark.parametrize(("name", "port"), APP_SERVICES.items())
def test_app_healthcheck_probes_own_readyz(name, port):
    text = healthcheck_text(service(name))
    assert text, f"{name}: no healthcheck"
    assert "/readyz" in text, f"{name}: healthcheck should hit /readyz: {text!r}"
    assert re.search(rf":{port}\b", text), f"{name}: healthcheck should target port {port}: {text!r}"
    assert "curl" not in text and "wget" not in text, (
        f"{name}: python:*-slim has no curl/wget; use python urllib: {text!r}"
    )


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_waits_for_healthy_infra(name):
    deps = depends_on(service(name))
    for infra, condition in APP_WAITS_FOR.items():
        assert infra in deps, f"{name}: depends_on is missing {infra}"
        assert deps[infra] == condition, (
            f"{name}: depends_on {infra} should use condition {condition}, got {deps[infra]!r}"
        )


def test_every_compose_module_exists():
    modules = set()
    for svc in load_compose()["services"].values():
        words = command_words(svc)
        for i, word in enumerate(words[:-1]):
            if word == "-m" and words[i + 1].startswith("services."):
                modules.add(words[i + 1])
    assert modules, "no `python -m services.X` commands found in compose"
    missing = [
        m for m in sorted(modules) if not (ROOT / Path(*m.split(".")) / "__main__.py").is_file()
    ]
    assert not missing, f"compose runs modules with no __main__.py under {ROOT}: {missing}"


# --- deploy/Dockerfile -----------------------------------------------------------------------


def test_dockerfile_base_is_python_311_or_newer():
    image = final_stage()[0][1].split()
    image = next(w for w in image if not w.startswith("--"))
    match = re.match(r"(?:docker\.io/)?(?:library/)?python:(\d+)\.(\d+)", image)
    assert match, f"final FROM should be a python:X.Y image, got {image!r}"
    version = (int(match[1]), int(match[2]))
    assert version >= (3, 11), f"base image is Python {version[0]}.{version[1]}, need 3.11+"


def test_dockerfile_installs_requirements():
    stage = final_stage()
    copies = [args for kw, args in stage if kw in {"COPY", "ADD"}]
    assert any("requirements.txt" in args for args in copies), "Dockerfile never copies requirements.txt"
    runs = [args for kw, args in stage if kw == "RUN"]
    assert any(
        re.search(r"pip3? install\b.*(-r|--requirement)\s+\S*requirements\.txt", args) for args in runs
    ), f"Dockerfile never runs `pip install -r requirements.txt` (RUN lines: {runs})"


def test_dockerfile_copies_code():
    copies = [args.split() for kw, args in final_stage() if kw in {"COPY", "ADD"}]
    sources = {
        word.rstrip("/").removeprefix("./")
        for words in copies
        for word in [w for w in words if not w.startswith("--")][:-1]
    }
    for package in ("shared", "services"):
        assert package in sources or "." in sources, (
            f"Dockerfile does not copy {package}/ (COPY sources: {sorted(sources)})"
        )


def test_dockerfile_runs_as_non_root():
    users = [args.split(":")[0] for kw, args in final_stage() if kw == "USER"]
    assert users, "Dockerfile sets no USER; the container would run as root"
    assert users[-1] not in {"root", "0"}, f"Dockerfile's final USER is {users[-1]!r}"


class _ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's merge tags: `!override` replaces what the extended service had."""


_ComposeLoader.add_constructor("!override", lambda loader, node: {"override": loader.construct_sequence(node)})


def test_the_replicas_file_adds_a_second_of_every_service_on_its_own_ports():
    replicas = yaml.load((ROOT / "deploy" / "compose.replicas.yml").read_text(), Loader=_ComposeLoader)["services"]
    published = set(APP_SERVICES.values())
    seen: set[int] = set()
    for name, port in APP_SERVICES.items():
        second = replicas[f"{name}-2"]
        assert second["extends"] == {"file": "../docker-compose.yml", "service": name}
        (mapping,) = second["ports"]["override"]  # replaces the first replica's host port, not added to it
        host, container = (int(part) for part in mapping.split(":"))
        assert container == port and host not in published and host not in seen
        seen.add(host)


def test_the_desk_reaches_assist_and_assist_allows_the_desks_origins():
    """The desk (agents, published on 8082) searches assist (published on 8084) from the browser."""
    agents, assist = env_of(service("agents")), env_of(service("assist"))
    assert agents.get("AGENTS_ASSIST_URL") == f"http://localhost:{APP_SERVICES['assist']}"
    origins = set(assist.get("ASSIST_CORS_ORIGINS", "").split(","))
    assert origins == {f"http://localhost:{APP_SERVICES['agents']}", f"http://127.0.0.1:{APP_SERVICES['agents']}"}
