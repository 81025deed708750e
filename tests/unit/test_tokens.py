"""Agent tokens: who they name, and every way one is refused."""

from datetime import timedelta

from shared.tokens import Principal, issue_agent_token, read_agent_token

SECRET = "a-test-secret-of-length"


def test_a_token_names_its_agent_and_workspace_until_it_expires():
    token, expires_at = issue_agent_token(SECRET, "acme", "ann", timedelta(minutes=5))
    assert read_agent_token(SECRET, token) == Principal("acme", "ann")
    assert not read_agent_token(SECRET, token).is_supervisor
    assert timedelta(minutes=4) < expires_at - expires_at.now(expires_at.tzinfo) <= timedelta(minutes=5)


def test_an_expired_forged_or_foreign_token_is_refused():
    expired, _ = issue_agent_token(SECRET, "acme", "ann", timedelta(seconds=-1))
    assert read_agent_token(SECRET, expired) is None
    token, _ = issue_agent_token(SECRET, "acme", "ann")
    assert read_agent_token("another-secret-entirely", token) is None
    _, _, signature = token.rpartition(".")
    other, _ = issue_agent_token(SECRET, "acme", "bob")
    assert read_agent_token(SECRET, other.rpartition(".")[0] + "." + signature) is None  # bob's claims, ann's signature
    for junk in ("", "x", "a.b.c", "dev-key", token + "x", "é.é"):
        assert read_agent_token(SECRET, junk) is None


def test_the_workspace_key_is_a_supervisor():
    assert Principal("acme").is_supervisor
