"""Who is calling: a supervisor (the workspace's API key) or one agent (a signed, expiring agent token).

A workspace key sees and does everything in its workspace; it is what a supervisor, an admin
or an external system holds. An agent token, issued with that key (`POST /v1/agents/{id}/token`),
names one agent: with it the agent sees and acts on its own presence and its own conversations
only. Tokens are signed with SWITCHYARD_TOKEN_SECRET (shared by every service, so any service
checks them without a database) and carry their expiry; a token of another secret, a changed one
or an expired one is refused like an unknown key.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from itsdangerous import BadData, URLSafeTimedSerializer

AGENT_TOKEN_SALT = "switchyard.agent-token.v1"
DEFAULT_AGENT_TOKEN_TTL = timedelta(hours=12)  # a shift, with room: the desk asks for a new one at sign-in


@dataclass(frozen=True)
class Principal:
    workspace_id: str
    agent_id: str | None = None  # None: the workspace's key (a supervisor)

    @property
    def is_supervisor(self) -> bool:
        return self.agent_id is None


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=AGENT_TOKEN_SALT)


def issue_agent_token(secret: str, workspace_id: str, agent_id: str,
                      ttl: timedelta = DEFAULT_AGENT_TOKEN_TTL) -> tuple[str, datetime]:
    """A token for one agent of one workspace, and when it stops being accepted."""
    expires_at = datetime.now(UTC) + ttl
    token = _serializer(secret).dumps({"w": workspace_id, "a": agent_id, "e": int(expires_at.timestamp())})
    return token, expires_at


def read_agent_token(secret: str, token: str) -> Principal | None:
    """The agent a token names, or None if it is malformed, forged or expired."""
    try:
        claims = _serializer(secret).loads(token)
    except BadData:
        return None
    if not isinstance(claims, dict) or not all(isinstance(claims.get(k), str) for k in ("w", "a")):
        return None
    if not isinstance(claims.get("e"), int) or claims["e"] <= datetime.now(UTC).timestamp():
        return None
    return Principal(claims["w"], claims["a"])
