"""Receiver URLs: what a subscription may point at, and the guard against private addresses (SSRF).

A subscription makes this service send requests to a URL its creator chose. On a network where the
service can reach internal systems (a cloud metadata endpoint at 169.254.169.254, an admin port on
localhost, the database), anyone holding a workspace key could aim deliveries at them. With
REPORTING_SUBSCRIPTIONS_ALLOW_PRIVATE=false, URLs naming a non-public address are refused when the
subscription is created, and every delivery's connection is refused when the name resolves to one
at send time (so a DNS name that later points inside is caught too). Redirects are never followed.
The default allows them, for development (receivers on 127.0.0.1); production should set it false.
"""

import ipaddress
import socket
from typing import Any

from aiohttp.abc import ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

MAX_URL_LENGTH = 2048


class ForbiddenAddress(OSError):
    """A receiver's address that the settings forbid: final, never retried."""


def url_problem(raw: str) -> str | None:
    """What is wrong with a receiver URL, or None: http(s), a host, no credentials, no fragment."""
    try:
        url = URL(raw)
    except (ValueError, TypeError):
        return "is not a URL"
    if url.scheme not in ("http", "https"):
        return "must be http or https"
    if not url.host:
        return "has no host"
    if url.user is not None or url.password is not None:
        return "must not hold credentials: the signature tells receivers a delivery is ours"
    if url.fragment:
        return "must not have a fragment"
    if len(url.host) > 253:
        return "has a host name over 253 characters"
    if url.host.replace(".", "").isdigit() and literal_address(url.host) is None:
        return "has a host that is neither a name nor an IPv4 address"
    try:
        url.port  # noqa: B018 (reading it validates it)
    except ValueError:
        return "has an invalid port"
    return None


def is_public(address: str) -> bool:
    """A global unicast address: not loopback, private, link-local, shared, reserved or multicast."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def literal_address(host: str) -> str | None:
    """The host as an IP address if it is one (brackets of IPv6 removed), else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def host_problem(raw: str) -> str | None:
    """Whether the URL names a private address literally (or localhost): checked without DNS at creation."""
    host = (URL(raw).host or "").lower().rstrip(".")
    address = literal_address(host)
    if address is not None and not is_public(address):
        return f"names a non-public address ({address}), which this deployment forbids"
    if host == "localhost" or host.endswith(".localhost"):
        return "names localhost, which this deployment forbids"
    return None


class PublicOnlyResolver(DefaultResolver):
    """Resolves as usual, then refuses a name any of whose addresses is not public (the connection is not made)."""

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[ResolveResult]:
        results = await super().resolve(host, port, family)
        private = [r["host"] for r in results if not is_public(r["host"])]
        if private:
            raise ForbiddenAddress(f"{host} resolves to a non-public address ({private[0]}), which this deployment "
                                   "forbids (REPORTING_SUBSCRIPTIONS_ALLOW_PRIVATE)")
        return results


def forbidden_cause(error: BaseException) -> ForbiddenAddress | None:
    """The ForbiddenAddress behind a connection error (aiohttp wraps the resolver's error), if any."""
    seen: Any = error
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, ForbiddenAddress):
            return seen
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return None
