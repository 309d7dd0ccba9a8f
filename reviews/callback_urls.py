"""Where signed callbacks may go.

A callback URL names a host our workers POST to. Pointed at the loopback, a
link-local address (the cloud's metadata service at 169.254.169.254) or the
private network, it would make FSAR a way into places the AI side cannot reach
itself (server-side request forgery). So, unless an operator allows a network
for an on-premise agent (REVIEWS_CALLBACK_ALLOWED_NETWORKS, CIDRs):

- setting a URL (service or admin) refuses one whose host is, or resolves to,
  anything but a public address;
- every delivery resolves the host again and connects only to addresses that
  pass the same check, checked on the very addresses it connects to (DNS can
  change after the URL was accepted, or answer differently each time);
- redirects are not followed, proxies from the environment are not used, and
  of the receiver's answer only the status code and a short escaped excerpt of
  a failure are kept.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util import connection as urllib3_connection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
EXCERPT_BYTES = 1024
EXCERPT_CHARS = 200


class CallbackUrlRefused(Exception):
    """A callback URL, or the address its host resolves to now, that FSAR does not call."""


@lru_cache(maxsize=8)
def _allowed(networks: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(n, strict=False) for n in networks)


def allowed_networks() -> tuple:
    return _allowed(tuple(settings.REVIEWS_CALLBACK_ALLOWED_NETWORKS))


def address_problem(ip: IPAddress, networks: tuple | None = None) -> str | None:
    """Why FSAR does not call `ip` (None: it may). `networks`: the CIDRs allowed
    besides public addresses (default REVIEWS_CALLBACK_ALLOWED_NETWORKS; other
    outbound calls, such as deployments' rollback drills, pass their own)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    allowed = allowed_networks() if networks is None else _allowed(tuple(networks))
    if any(ip in network for network in allowed):
        return None
    for test, what in (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
    ):
        if test:
            return what
    return None if ip.is_global else "not a public address"


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to now (tests replace this)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos))


def checked_addresses(host: str, port: int, networks: tuple | None = None) -> list[IPAddress]:
    """The addresses to connect to for `host`: all of them must pass, since a name
    with one public and one private address could be answered either way."""
    try:
        addresses = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        try:
            addresses = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise CallbackUrlRefused(f"{host} does not resolve ({exc})") from None
    if not addresses:
        raise CallbackUrlRefused(f"{host} does not resolve")
    for ip in addresses:
        problem = address_problem(ip, networks)
        if problem:
            what = f"{host} is {problem}" if host.strip("[]") == str(ip) else f"{host} resolves to {ip}, {problem}"
            if networks is None:
                why = "callbacks go only to public addresses, unless its network is listed in "
                why += "REVIEWS_CALLBACK_ALLOWED_NETWORKS"
            else:
                why = "FSAR calls only public addresses and the networks allowed for this call"
            raise CallbackUrlRefused(f"{what}: {why}")
    return addresses


def check_url(url: str, networks: tuple | None = None) -> None:
    """Raise CallbackUrlRefused, saying why, for a URL FSAR would not call now."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackUrlRefused(f"not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise CallbackUrlRefused("must start with https:// (or http://)")
    if parts.username is not None or parts.password is not None:
        raise CallbackUrlRefused("must not carry a user name or password")
    if not parts.hostname:
        raise CallbackUrlRefused("has no host")
    checked_addresses(parts.hostname, port or (443 if parts.scheme == "https" else 80), networks)


class _Guarded:
    """A urllib3 connection that connects only to addresses `checked_addresses` passes,
    resolving the host itself, so the check and the connection use the same answer."""

    networks: tuple | None = None  # None: REVIEWS_CALLBACK_ALLOWED_NETWORKS

    def _new_conn(self):
        addresses = checked_addresses(self._dns_host, self.port, self.networks)
        error: OSError | None = None
        for ip in addresses:
            try:
                return urllib3_connection.create_connection(
                    (str(ip), self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as exc:
                error = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")


class _GuardedHTTPConnection(_Guarded, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_Guarded, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, networks: tuple | None = None, **kwargs) -> None:
        self.networks = networks
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        if self.networks is None:
            pools = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}
        else:
            extra = {"networks": tuple(self.networks)}
            http = type("_Conn", (_GuardedHTTPConnection,), extra)
            https = type("_Conns", (_GuardedHTTPSConnection,), extra)
            pools = {
                "http": type("_Pool", (_GuardedHTTPPool,), {"ConnectionCls": http}),
                "https": type("_Pools", (_GuardedHTTPSPool,), {"ConnectionCls": https}),
            }
        self.poolmanager.pool_classes_by_scheme = pools


def session(networks: tuple | None = None) -> requests.Session:
    """A session for callbacks (and, with `networks`, other outbound calls): guarded
    connections, no proxies from the environment."""
    s = requests.Session()
    s.trust_env = False
    adapter = _GuardedAdapter(networks)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def excerpt(response: requests.Response) -> str:
    """The start of a receiver's answer, short and escaped (no control characters,
    nothing but ASCII), read without downloading the rest."""
    raw = response.raw.read(EXCERPT_BYTES, decode_content=True) if response.raw is not None else b""
    text = raw.decode("utf-8", "replace")[:EXCERPT_CHARS]
    return text.encode("unicode_escape").decode("ascii")
