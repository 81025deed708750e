"""The published API is the true API: schemathesis drives every operation of /openapi.json.

For each service the four apps run on real ports (real broker, real database), and schemathesis's
CLI, in a process of its own so that its blocking HTTP client cannot stall the apps' event loop,
reads the document and runs its phases (examples, coverage, fuzzing, stateful) with every check it
has, positive and negative data: no 5xx, only declared statuses, content types and headers,
answers that match their schemas, valid input accepted, invalid input refused, the API key enforced.
Generation is deterministic and bounded per operation, so a failure reproduces and the run is short.
"""

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from services.assist.app import create_app as create_assist
from services.assist.settings import AssistSettings
from tests.conftest import API_KEY, auth, free_port, serve
from tests.fixtures.channels import ALL_CHANNELS
from tests.service.helpers import Apps, running_apps
from tests.service.test_webchat_files import chat_session, upload_form

CHANNELS = ALL_CHANNELS

MAX_EXAMPLES = 25  # per operation and phase: enough to meet every branch of the schemas, fast enough for CI
RUN_TIMEOUT = 120

# The run's configuration (schemathesis.toml). Every check is on: that is schemathesis's default.
COMMON = f"""
workers = 1
continue-on-failure = true

[generation]
deterministic = true
max-examples = {MAX_EXAMPLES}
database = "none"

[auth.openapi.bearer]
bearer = "{API_KEY}"
"""
# A routing configuration must also hold together (the queues it names exist, windows end after
# they start, ...), which JSON Schema cannot say: the operation's description says so, and a
# configuration the schema allows may be refused with the 422 it declares. (The default statuses
# plus 422; written into the router's run only: schemathesis 4.32 lets it reach other operations too.)
ROUTER = """
[[operations]]
include-path = "/v1/routing/config"
include-method = "PUT"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
"""
# A report's range must also be in order and within its bound, and `tz` a zone that exists, and a
# subscription's URL a real one (a port up to 65535, an IPv4 address of four numbers, no private
# address where those are forbidden), which JSON Schema cannot say: the operations' descriptions say
# so, with the 422 they declare.
REPORTING = """
[[operations]]
include-path-regex = "^/v1/(reports|subscriptions)"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
"""
# A file goes only to a conversation whose channel can carry one, and a reply names only files that
# were uploaded: the descriptions say so, with the 422 they declare.
AGENTS = """
[[operations]]
include-path-regex = "^/v1/conversations/[^/]+/(attachments|messages)$"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
"""
CONFIGS = {"intake": COMMON, "agents": COMMON + AGENTS, "router": COMMON + ROUTER, "reporting": COMMON + REPORTING}


async def run_schemathesis(base_url: str, config_file: Path) -> tuple[int, str]:
    """`st run` against a running service; its exit status and output. Its caches stay in the config's folder."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config_file), "run", f"{base_url}/openapi.json",
        "--no-color", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=config_file.parent,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        pytest.fail(f"schemathesis did not finish within {RUN_TIMEOUT} s:\n{output.decode(errors='replace')}")
    return process.returncode, output.decode(errors="replace")


def undeclared_routes(app: web.Application, document: dict) -> list[str]:
    """Routes the app serves that the document does not declare, and declarations no route serves."""
    served = {(route.method, route.resource.canonical) for route in app.router.routes()
              if route.method != "HEAD" and route.resource is not None and not route.resource.canonical.endswith("/ws")}
    declared = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}
    return [f"served, not declared: {m} {p}" for m, p in sorted(served - declared)] + \
           [f"declared, not served: {m} {p}" for m, p in sorted(declared - served)]


@dataclass
class Seeded:
    """What the run should find besides what it makes up: identifiers of real resources."""

    values: dict[str, list[str]]

    def toml(self) -> str:
        """Dictionaries the generated parameters draw from half the time."""
        lines = []
        for key, values in self.values.items():
            name = key.replace(".", "_")
            lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
        lines.append("[parameters]")
        lines += [f'"{key}" = {{ dictionary = "{key.replace(".", "_")}", probability = 0.5 }}' for key in self.values]
        return "\n".join(lines) + "\n"


async def seed(apps: Apps) -> Seeded:
    """A conversation with a customer's file and one from the API, both ann's, and one nobody can take (waiting)."""
    await apps.put_agent("ann", skills={"billing": 3})
    desk = await apps.desk("ann")
    token = await chat_session(apps)
    upload = await apps.intake.post(f"/v1/chat/messages?session={token}", data=upload_form(b"%PDF-1.4 invoice"))
    assert upload.status == 202, await upload.text()
    await apps.post("waiting-customer", "anyone?", skills=["no-one-has-this"])
    await apps.post("billing-customer", "my bill", skills=["billing"])
    # The router takes its input in order: once the last is assigned, the one before waits in its queue.
    frames = await desk.frames_until(lambda f: sum(x["type"] == "conversation.assigned" for x in f) >= 2)
    assigned = [f for f in frames if f["type"] == "conversation.assigned"]
    chat = next(f for f in assigned if f["conversation"]["channel"] == "webchat")
    return Seeded({
        "path.workspace": ["default"],
        "path.agent_id": ["ann"],
        "path.conversation_id": [f["conversation"]["conversation_id"] for f in assigned],
        "path.contact_id": [f["conversation"]["contact_id"] for f in assigned],
        "path.attachment_id": [chat["messages"][0]["attachments"][0]["attachment_id"]],
        "query.session": [token],
    })


async def test_every_route_is_declared_and_every_declaration_served(names):
    """The document lists each HTTP route (the WebSockets are in its description), and nothing else."""
    async with running_apps(names, reporting={}) as apps:
        for client in (apps.intake, apps.agents, apps.router, apps.reporting):
            assert client is not None
            document = await (await client.get("/openapi.json")).json()
            assert not undeclared_routes(client.app, document), undeclared_routes(client.app, document)


@pytest.mark.parametrize("service", ["intake", "agents", "router", "reporting"])
async def test_the_service_does_what_its_openapi_document_says(names, tmp_path, service):
    async with running_apps(names, channels=CHANNELS, smtp_port=free_port(), reporting={}) as apps:
        seeded = await seed(apps)
        config_file = tmp_path / "schemathesis.toml"
        config_file.write_text(CONFIGS[service] + seeded.toml())
        client = getattr(apps, service)
        status, output = await run_schemathesis(str(client.make_url("")).rstrip("/"), config_file)
    assert status == 0, f"schemathesis found failures in {service}:\n{output}"


async def test_assist_does_what_its_openapi_document_says(names, tmp_path):
    """Assist stands alone (the knowledge base needs no other service): its routes, declared and driven."""
    async with serve(create_assist(names.settings(AssistSettings))) as assist:
        document = await (await assist.get("/openapi.json")).json()
        assert not undeclared_routes(assist.app, document), undeclared_routes(assist.app, document)
        created = await assist.post("/v1/kb/articles", json={"title": "Reset a password", "body": "Open *Settings*.",
                                                             "status": "published"}, headers=auth())
        assert created.status == 201, await created.text()
        seeded = Seeded({"path.workspace": ["default"], "path.article_id": [(await created.json())["id"]]})
        config_file = tmp_path / "schemathesis.toml"
        config_file.write_text(COMMON + seeded.toml())
        status, output = await run_schemathesis(str(assist.make_url("")).rstrip("/"), config_file)
    assert status == 0, f"schemathesis found failures in assist:\n{output}"
