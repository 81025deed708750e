"""Static checks of docker-compose.yml and deploy/Dockerfile (no Docker engine needed)."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"

APP_SERVICES = {"intake": 8080, "router": 8081, "agents": 8082, "reporting": 8083}
INFRA = ("rabbitmq", "mongo")


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


def test_all_six_services_exist():
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


def test_mongo_uses_official_image_with_volume_and_healthcheck():
    svc = service("mongo")
    image = str(svc.get("image", ""))
    assert image.split(":")[0] in {"mongo", "docker.io/library/mongo", "library/mongo"}, (
        f"mongo should use the official `mongo` image, got {image!r}"
    )
    assert 27017 in published_ports(svc), f"mongo does not publish 27017: {svc.get('ports')}"
    volumes = [str(v.get("target") if isinstance(v, dict) else v) for v in svc.get("volumes") or []]
    assert any(v.endswith("/data/db") for v in volumes), f"mongo has no volume for /data/db: {volumes}"
    assert healthcheck_text(svc), "mongo needs a healthcheck (apps wait on service_healthy)"


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
    mongo = env.get("MONGO_URL", "")
    assert re.match(r"mongodb://([^@/]*@)?mongo(:\d+)?(/|\?|$)", mongo), (
        f"{name}: MONGO_URL should point at the mongo service, got {mongo!r}"
    )
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
    for infra in INFRA:
        assert infra in deps, f"{name}: depends_on is missing {infra}"
        assert deps[infra] == "service_healthy", (
            f"{name}: depends_on {infra} should use condition service_healthy, got {deps[infra]!r}"
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
    image = [w for w in image if not w.startswith("--")][0]
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
