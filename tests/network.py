"""The suite's network: names resolved in the test, connections to loopback only.

``network`` (autouse, from tests/conftest.py) resolves the documentation domains (``example.com``, ``.org``,
``.net`` and their subdomains, as in ``https://hooks.example.com/handover``) to one public address, so that the
outbound guard accepts them at subscription time on a machine without DNS, and lets a test map any other name to
the addresses it wants (``network.resolve("metadata.test", "169.254.169.254")``, or a function of the call for
DNS rebinding). Other names do not resolve (``localhost`` and addresses written as names excepted): no test asks
a real DNS server anything. Any connection to an address that is not loopback fails in the test, before a packet is
sent, and every connection attempt is recorded in ``network.connects``: no test reaches a real or private address.
"""

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from django.conf import settings

# example.com's own address at IANA: globally routable, so the guard accepts it, and never connected to here.
PUBLIC_ADDRESS = "93.184.215.14"
DOCUMENTATION_DOMAINS = ("example.com", "example.org", "example.net")

Addresses = tuple[str, ...] | Callable[[], tuple[str, ...]]


class OffLoopbackConnection(OSError):
    """A test tried to connect somewhere other than loopback."""


@dataclass
class Network:
    names: dict[str, Addresses] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)  # every name resolved through getaddrinfo, in order
    connects: list[str] = field(default_factory=list)  # every address a socket tried to connect to, in order
    allowed: set[str] = field(default_factory=set)  # non-loopback hosts the suite's own services use

    def resolve(self, name: str, *addresses: str, each: Callable[[], tuple[str, ...]] | None = None) -> None:
        """Make ``name`` resolve to ``addresses`` (or to what ``each`` returns at each lookup)."""
        self.names[name.lower()] = each if each is not None else tuple(addresses)

    def addresses_of(self, name: str) -> tuple[str, ...] | None:
        name = name.lower().rstrip(".")
        if name in self.names:
            found = self.names[name]
            return found() if callable(found) else found
        if any(name == domain or name.endswith("." + domain) for domain in DOCUMENTATION_DOMAINS):
            return (PUBLIC_ADDRESS,)
        return None


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


@contextmanager
def suite_network() -> Iterator[Network]:
    """The suite's network for the duration of the block (the ``network`` fixture, for fixtures of wider scope)."""
    net = Network()
    # A Redis named by REDIS_URL may live on another machine; it is the suite's own service, not a test's target.
    if settings.REDIS_URL and urlsplit(settings.REDIS_URL).hostname:
        net.allowed.add(str(urlsplit(settings.REDIS_URL).hostname))
    real_getaddrinfo, real_connect, real_connect_ex = (
        socket.getaddrinfo,
        socket.socket.connect,
        socket.socket.connect_ex,
    )

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else str(host) if host is not None else ""
        net.lookups.append(name)
        addresses = net.addresses_of(name)
        if addresses is None:
            if host is None or name.rstrip(".") == "localhost" or name in net.allowed:
                return real_getaddrinfo(host, port, family, type, proto, flags)  # from /etc/hosts, or a service
            try:  # an address, in any form getaddrinfo reads without asking DNS (2130706433, 0177.0.0.1, ::1)
                return real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
            except socket.gaierror:
                raise socket.gaierror(
                    socket.EAI_NONAME, f"Name or service not known (the test resolves only the names it gives: {name})"
                ) from None
        port = int(port or 0)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, port, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, port))
            for a in addresses
        ]

    def check(sock: socket.socket, address) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        host = str(address[0])
        net.connects.append(host)
        if not _is_loopback(host) and host not in net.allowed:
            raise OffLoopbackConnection(f"the test suite connects to loopback only, not to {host}")

    def connect(sock, address):
        check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        check(sock, address)
        return real_connect_ex(sock, address)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    try:
        yield net
    finally:
        socket.getaddrinfo = real_getaddrinfo
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def network() -> Iterator[Network]:
    with suite_network() as net:
        yield net


class RawServer:
    """A TCP server on 127.0.0.1 that answers every connection with ``reply`` (bytes, then it hangs up) or, with
    ``reply=None``, accepts and never answers: a hung peer. ``read_first`` waits for the client's request first
    (HTTP), recorded in ``requests``; SMTP clients wait for the server to speak, so they get the reply at once."""

    def __init__(self, reply: bytes | None = None, *, read_first: bool = True) -> None:
        self.reply, self.read_first = reply, read_first
        self.connections = 0
        self.requests: list[bytes] = []
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return self.url_for("/hooks/handover")

    def url_for(self, path: str = "/hooks", host: str = "127.0.0.1") -> str:
        """This server's URL under ``host``, a name the test resolves to 127.0.0.1 (``network.resolve``)."""
        return f"http://{host}:{self.port}{path}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                peer, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            if self.reply is None:
                self._held.append(peer)  # never answered, closed at the end
                continue
            peer.settimeout(2)
            try:
                if self.read_first:
                    self.requests.append(peer.recv(65536))
                peer.sendall(self.reply)
            except OSError:
                pass
            finally:
                peer.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for peer in self._held:
            peer.close()
        self.sock.close()


@pytest.fixture
def loopback_server() -> Iterator[Callable[[bytes], RawServer]]:
    servers: list[RawServer] = []

    def start(reply: bytes = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n") -> RawServer:
        servers.append(RawServer(reply))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
