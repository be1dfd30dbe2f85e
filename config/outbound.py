"""The outbound guard: every HTTP call the server makes on someone's behalf goes through here.

A URL that an administrator (or anyone) types is an address the server will connect to from inside its own network,
so it is judged by where it really leads, not by how it is written:

* http or https only; https only when ``OUTBOUND_HTTPS_ONLY`` is on (production turns it on);
* the host is resolved with ``getaddrinfo`` and refused when **any** address it resolves to is not globally
  routable: private, loopback (unless ``OUTBOUND_ALLOW_LOOPBACK``, for development and tests), link-local (the
  169.254.169.254 metadata service), unique-local (``fd00:ec2::254``), unspecified, multicast, reserved, shared
  (100.64.0.0/10), and IPv6 forms that carry such an IPv4 address (IPv4-mapped, 6to4, NAT64). So
  ``http://2130706433/``, ``http://0177.0.0.1/`` or a name that resolves to 10.0.0.5 are refused like 127.0.0.1;
* ``request`` connects to the very address it checked (pinned), so a name that resolves to a public address when
  checked and to a private one a moment later (DNS rebinding) cannot redirect the connection. The Host header, TLS
  SNI and the certificate check still use the name;
* redirects are never followed: a 3xx is returned to the caller as it is.

It is generic infrastructure: it reads two settings and imports nothing from the apps.
"""

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598); not "private" to ipaddress
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # IPv4 addresses reached through a NAT64 gateway (RFC 6052)


class OutboundRefused(Exception):
    """The guard will not call this URL; ``reason`` says why, naming the host."""

    def __init__(self, url: str, reason: str, *, host: str = "") -> None:
        super().__init__(reason)
        self.url, self.host, self.reason = url, host, reason

    def __str__(self) -> str:
        return self.reason


class OutboundUnresolvable(OutboundRefused):
    """The host name does not resolve (now): nothing can be judged, so nothing is called."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``addresses``, all of them allowed) and what to ask for."""

    url: str
    scheme: str
    host: str  # the name (IDNA-encoded) or the address as written, for the Host header and TLS
    port: int
    path: str  # path and query, as sent on the request line
    addresses: tuple[IPAddress, ...]


@dataclass(frozen=True)
class Response:
    """What came back: only the status line and headers are read; a redirect is returned, not followed."""

    status: int
    reason: str
    headers: http.client.HTTPMessage


def address_problem(address: IPAddress, *, allow_loopback: bool | None = None) -> str | None:
    """Why the server must not connect to ``address`` (``None``: a globally routable address, fine)."""
    if allow_loopback is None:
        allow_loopback = settings.OUTBOUND_ALLOW_LOOPBACK
    if isinstance(address, ipaddress.IPv6Address):
        # IPv6 forms that lead to an IPv4 address are judged by that address.
        embedded = address.ipv4_mapped or address.sixtofour
        kind = "IPv4-mapped" if address.ipv4_mapped else "6to4"
        if address in _NAT64:
            embedded, kind = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
        if embedded is not None:
            problem = address_problem(embedded, allow_loopback=allow_loopback)
            return f"{kind} form of {embedded}, {problem}" if problem else None
        if address.teredo:
            return "a Teredo tunnel address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if address.is_link_local:
        return "a link-local address (where cloud metadata services answer)"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv6Address):
        if address in _UNIQUE_LOCAL:
            return "a unique-local address"
        if address.is_site_local:
            return "a site-local address"
    elif address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private or special-purpose address"
    if not address.is_global:
        return "not a globally routable address"
    return None


def _split(url: str) -> tuple[SplitResult, str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname or ""
    except ValueError as error:  # a bad port, an unbalanced "[" ...
        raise OutboundRefused(url, f"{url!r} is not a valid URL ({error}).") from error
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise OutboundRefused(url, "Only http and https URLs are called.", host=host)
    if scheme == "http" and settings.OUTBOUND_HTTPS_ONLY:
        raise OutboundRefused(url, f"Only https URLs are called (not http://{host}).", host=host)
    if not host:
        raise OutboundRefused(url, "The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise OutboundRefused(url, f"The URL carries credentials before {host}; they are never sent.", host=host)
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError as error:
        raise OutboundRefused(url, f"{host!r} is not a valid host name.", host=host) from error
    return parts, host, port or (443 if scheme == "https" else 80)


def check(url: str) -> Target:
    """Resolve ``url``'s host and judge every address it resolves to; raise ``OutboundRefused`` naming the first
    one that is not allowed (or ``OutboundUnresolvable``). ``request`` calls it; a form may call it to refuse early."""
    parts, host, port = _split(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise OutboundUnresolvable(url, f"{host} does not resolve ({error}).", host=host) from error
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # An IPv6 sockaddr may carry a zone ("fe80::1%eth0"): judge the address without it.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        problem = address_problem(address)
        if problem:
            shown = host if str(address) == host else f"{host} ({address})"
            raise OutboundRefused(url, f"{shown} is {problem}: outbound calls go only to public addresses.", host=host)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OutboundUnresolvable(url, f"{host} resolves to no address.", host=host)
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~") + (f"?{parts.query}" if parts.query else "")
    return Target(url=url, scheme=parts.scheme.lower(), host=host, port=port, path=path, addresses=tuple(addresses))


def _connect(target: Target, timeout: float | None) -> socket.socket:
    """A TCP connection to one of the checked addresses, tried in the resolver's order (as ``create_connection``)."""
    last: OSError | None = None
    for address in target.addresses:
        try:
            return socket.create_connection((str(address), target.port), timeout=timeout)
        except OSError as error:
            last = error
    assert last is not None  # check() never returns a target without addresses
    raise last


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._target = target

    def connect(self) -> None:
        self.sock = _connect(self._target, self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self._tls)
        self._target = target

    def connect(self) -> None:
        # TLS on the checked address, with SNI and the certificate checked against the name.
        self.sock = self._tls.wrap_socket(_connect(self._target, self.timeout), server_hostname=self._target.host)


def request(
    method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float
) -> Response:
    """Check ``url`` and make one request to the address that was checked; redirects are returned, not followed.

    Raises ``OutboundRefused`` before any connection when the guard refuses, and the usual ``OSError`` /
    ``http.client.HTTPException`` when the call itself fails. Proxies from the environment are not used: a proxy
    would connect to wherever the name points at its own resolution time.
    """
    target = check(url)
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(target, timeout)
    try:
        connection.request(method, target.path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Response(status=response.status, reason=response.reason, headers=response.headers)
    finally:
        connection.close()
