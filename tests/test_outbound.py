"""The outbound guard (config/outbound.py): where the server may connect on someone's behalf.

Names are resolved in the test (``network.resolve``) and every connection is recorded by the ``network`` fixture,
which refuses anything but loopback: a refused URL must leave ``network.connects`` empty.
"""

import ipaddress
import socket
import threading

import pytest

from config import outbound
from tests.network import PUBLIC_ADDRESS

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


@pytest.fixture(autouse=True)
def guard_settings(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    settings.OUTBOUND_HTTPS_ONLY = False
    return settings


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://127.8.9.10:5432/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://localhost:5432/", "loopback"),
        ("http://2130706433/", "loopback"),  # decimal 127.0.0.1
        ("http://0177.0.0.1/", "loopback"),  # octal
        ("http://0x7f.0.0.1/", "loopback"),  # hex
        ("http://127.1/", "loopback"),  # short form
        ("http://10.0.0.5/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),  # cloud metadata
        ("http://0xa9fea9fe/latest/meta-data/", "link-local"),  # the same, in hex
        ("http://2852039166/", "link-local"),  # and in decimal
        ("http://[fe80::1]/", "link-local"),
        ("http://[fd00:ec2::254]/", "unique-local"),  # the IPv6 metadata service
        ("http://[fc00::1]/", "unique-local"),
        ("http://[fec0::1]/", "site-local"),
        ("http://0.0.0.0:8000/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://[ff0e::1]/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://255.255.255.255/", "reserved"),
        ("http://100.64.0.1/", "shared"),
        ("http://192.0.2.10/", "private or special-purpose"),  # documentation range: not routable
        ("http://[2001:db8::1]/", "private or special-purpose"),
        ("http://[::ffff:127.0.0.1]/", "IPv4-mapped form of 127.0.0.1, a loopback"),
        ("http://[::ffff:169.254.169.254]/", "IPv4-mapped form of 169.254.169.254, a link-local"),
        ("http://[::ffff:a00:5]/", "IPv4-mapped form of 10.0.0.5, a private"),
        ("http://[::127.0.0.1]/", "reserved"),  # IPv4-compatible (deprecated)
        ("http://[2002:a9fe:a9fe::1]/", "6to4 form of 169.254.169.254"),
        ("http://[64:ff9b::a00:5]/", "NAT64 form of 10.0.0.5"),
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo"),
    ],
)
def test_address_that_is_not_public_is_refused_before_any_connection(url, why, network):
    with pytest.raises(outbound.OutboundRefused) as refused:
        outbound.request("POST", url, body=b"{}", timeout=1)

    assert why in refused.value.reason
    assert refused.value.host
    assert refused.value.host in refused.value.reason
    assert network.connects == []


@pytest.mark.parametrize(
    ("addresses", "why"),
    [
        (("10.0.0.5",), "private"),
        (("169.254.169.254",), "link-local"),
        (("fd00:ec2::254",), "unique-local"),
        (("127.0.0.1",), "loopback"),
        ((PUBLIC_ADDRESS, "10.0.0.5"), "private"),  # any address that is not public refuses the name
        (("2606:4700::1111", "::1"), "loopback"),
    ],
)
def test_name_is_judged_by_every_address_it_resolves_to(addresses, why, network):
    network.resolve("hooks.corp.test", *addresses)

    with pytest.raises(outbound.OutboundRefused) as refused:
        outbound.request("POST", "https://hooks.corp.test/in", body=b"{}", timeout=1)

    bad = next(a for a in addresses if outbound.address_problem(ipaddress.ip_address(a)))
    assert refused.value.reason.startswith(f"hooks.corp.test ({bad}) is ")
    assert why in refused.value.reason
    assert network.connects == []


@pytest.mark.parametrize(
    "address", [PUBLIC_ADDRESS, "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_pass_the_check(address, network):
    network.resolve("hooks.partner.test", address)

    target = outbound.check("https://hooks.partner.test/in?x=1")

    assert target.addresses == (ipaddress.ip_address(address),)
    assert (target.host, target.port, target.path) == ("hooks.partner.test", 443, "/in?x=1")
    assert network.connects == []


def test_name_that_does_not_resolve_is_refused_as_unresolvable(network):
    with pytest.raises(outbound.OutboundUnresolvable) as refused:
        outbound.check("https://nowhere.invalid/hooks")

    assert "nowhere.invalid does not resolve" in refused.value.reason
    assert network.connects == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://hooks.example.com/x", "Only http and https"),
        ("file:///etc/passwd", "Only http and https"),
        ("gopher://hooks.example.com:70/", "Only http and https"),
        ("http:///path-only", "no host"),
        ("https://user:secret@hooks.example.com/", "credentials"),
        ("https://hooks.example.com:99999/", "not a valid URL"),
        ("https://[::1/", "not a valid URL"),
    ],
)
def test_malformed_or_unsupported_url_is_refused(url, message, network):
    with pytest.raises(outbound.OutboundRefused) as refused:
        outbound.check(url)

    assert message in refused.value.reason
    assert network.connects == []


def test_https_only_refuses_http_and_accepts_https(guard_settings, network):
    guard_settings.OUTBOUND_HTTPS_ONLY = True

    with pytest.raises(outbound.OutboundRefused) as refused:
        outbound.check("http://hooks.example.com/in")
    assert refused.value.reason == "Only https URLs are called (not http://hooks.example.com)."
    assert outbound.check("https://hooks.example.com/in").addresses == (ipaddress.ip_address(PUBLIC_ADDRESS),)


def test_production_calls_https_only_and_development_allows_loopback():
    from config.settings import base, local, test

    assert (base.OUTBOUND_HTTPS_ONLY, base.OUTBOUND_ALLOW_LOOPBACK) == (False, False)
    assert local.OUTBOUND_ALLOW_LOOPBACK is True
    assert test.OUTBOUND_ALLOW_LOOPBACK is True


def test_loopback_is_refused_unless_the_setting_allows_it(guard_settings, loopback_server, network):
    """GIVEN a receiver on 127.0.0.1 WHEN loopback is not allowed THEN nothing connects; WHEN it is THEN the request
    is made and its status returned."""
    server = loopback_server(OK)
    with pytest.raises(outbound.OutboundRefused, match="loopback"):
        outbound.request("POST", server.url_for(), body=b"{}", timeout=2)
    assert (network.connects, server.requests) == ([], [])

    guard_settings.OUTBOUND_ALLOW_LOOPBACK = True
    response = outbound.request(
        "POST", server.url_for(), body=b"{}", headers={"content-type": "application/json"}, timeout=2
    )

    assert response.status == 200
    assert network.connects == ["127.0.0.1"]
    assert server.requests[0].startswith(b"POST /hooks HTTP/1.1\r\n")


def test_redirect_is_returned_not_followed(guard_settings, loopback_server, network):
    """GIVEN a loopback receiver answering 302 to the metadata service WHEN a request is made THEN the 302 comes
    back as the answer and nothing connects to 169.254.169.254."""
    guard_settings.OUTBOUND_ALLOW_LOOPBACK = True
    server = loopback_server(
        b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\nContent-Length: 0\r\n\r\n"
    )

    response = outbound.request("POST", server.url_for(), body=b"{}", timeout=2)

    assert (response.status, response.headers["Location"]) == (302, "http://169.254.169.254/latest/meta-data/")
    assert network.connects == ["127.0.0.1"]


def test_request_connects_to_the_address_it_checked_and_sends_the_name(guard_settings, loopback_server, network):
    """GIVEN a name that resolves to loopback (allowed) once and to a private address on every later lookup (DNS
    rebinding) WHEN a request is made THEN the name is resolved once, the connection goes to the address that was
    checked, and the Host header still carries the name."""
    guard_settings.OUTBOUND_ALLOW_LOOPBACK = True
    server = loopback_server(OK)
    answers = iter([("127.0.0.1",)])
    network.resolve("receiver.test", each=lambda: next(answers, ("10.0.0.5",)))

    response = outbound.request("POST", server.url_for(host="receiver.test"), body=b"{}", timeout=2)

    assert response.status == 200
    assert network.lookups.count("receiver.test") == 1
    assert network.connects == ["127.0.0.1"]
    assert f"Host: receiver.test:{server.port}\r\n".encode() in server.requests[0]


def test_rebinding_between_check_and_request_is_refused(guard_settings, network):
    """GIVEN a name that resolved to a public address when it was checked (a subscription saved) WHEN it resolves to
    the metadata service at request time THEN the request is refused before connecting."""
    answers = iter([(PUBLIC_ADDRESS,)])
    network.resolve("rebind.test", each=lambda: next(answers, ("169.254.169.254",)))
    outbound.check("https://rebind.test/in")

    with pytest.raises(outbound.OutboundRefused, match=r"rebind.test \(169.254.169.254\) is a link-local"):
        outbound.request("POST", "https://rebind.test/in", body=b"{}", timeout=1)
    assert network.connects == []


def test_tls_is_checked_against_the_name_not_the_address(guard_settings, network):
    """GIVEN an https name pinned to 127.0.0.1 WHEN the request is made THEN the TLS handshake names the host (SNI):
    the certificate is checked against the name, on the address that was checked."""
    guard_settings.OUTBOUND_ALLOW_LOOPBACK = True
    network.resolve("secure.receiver.test", "127.0.0.1")
    listener = socket.create_server(("127.0.0.1", 0))
    hello: list[bytes] = []

    def accept() -> None:
        peer, _ = listener.accept()
        with peer:
            peer.settimeout(2)
            hello.append(peer.recv(65536))  # the ClientHello, in the clear; then hang up

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        with pytest.raises((OSError, ConnectionError)):
            outbound.request("POST", f"https://secure.receiver.test:{listener.getsockname()[1]}/", body=b"", timeout=2)
        thread.join(timeout=5)
    finally:
        listener.close()

    assert network.connects == ["127.0.0.1"]
    assert b"secure.receiver.test" in hello[0]
