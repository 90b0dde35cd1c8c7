"""Is this host public? The one rule for every address the server connects to on a user's behalf.

A pusher names buildpack URLs and an app's owner names webhook targets, and the server then makes
the connection: from inside the server's network, where loopback services, the cloud's metadata
service (169.254.169.254) and private networks are in reach. So a user-named host must resolve
only to public addresses — every address it resolves to, since a client may try any of them — and
IP literals are judged as written (including the forms ``inet_aton`` accepts, ``127.1`` or
``2130706433``, and IPv4 addresses embedded in IPv6 ones).

Pure but for the resolver, which is an argument (``system_resolver`` by default), so tests need
no network and a caller can connect to exactly the addresses that were checked.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: host → every address it resolves to (as text); raises OSError when it does not resolve
Resolver = Callable[[str], Iterable[str]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def system_resolver(host: str) -> list[str]:
    """Every address ``getaddrinfo`` gives for ``host`` (both families), in its order."""
    return [info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is written as one (``[::1]``, ``127.1``, ``0x7f000001``…)."""
    text = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if not text or not all(char in "0123456789abcdefxABCDEFX." for char in text):
        return None
    try:  # the legacy forms every resolver (and so every client) also accepts
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, IPv4-compatible), if any."""
    if address.version != 6:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_kind(address: IPAddress) -> str | None:
    """None for a public unicast address; else what it is (``a loopback address``…)."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return address_kind(embedded)
    for kind, test in (("an unspecified", address.is_unspecified), ("a loopback", address.is_loopback),
                       ("a link-local", address.is_link_local), ("a multicast", address.is_multicast),
                       ("a private", address.is_private), ("a reserved", not address.is_global)):
        if test:
            return f"{kind} address"
    return None


def _shown(address: IPAddress) -> str:
    embedded = _embedded_ipv4(address)
    return str(address) if embedded is None else f"{address} ({embedded})"


@dataclass(frozen=True)
class Verdict:
    """What was found about one host: the addresses it has and, if it is not public, why."""

    host: str
    #: every address the host resolved to (the literal itself for an IP literal)
    addresses: tuple[str, ...] = ()
    #: why the host is refused (``10.0.0.5 is a private address``), None when every address is public
    refused: str | None = None
    #: False when the host did not resolve at all: nothing was refused, nothing can be reached
    resolved: bool = True

    @property
    def public(self) -> bool:
        return self.resolved and self.refused is None


def check_host(host: str, resolver: Resolver = system_resolver) -> Verdict:
    """Is ``host`` public? A literal is judged as written; a name by every address it resolves to."""
    literal = literal_address(host)
    if literal is not None:
        kind = address_kind(literal)
        return Verdict(host, (str(literal),), None if kind is None else f"{_shown(literal)} is {kind}")
    try:
        found = tuple(dict.fromkeys(str(address) for address in resolver(host)))
    except (OSError, UnicodeError):
        return Verdict(host, resolved=False)
    if not found:
        return Verdict(host, resolved=False)
    for text in found:
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            return Verdict(host, found, f"{host} resolves to {text}, which is not an IP address")
        kind = address_kind(address)
        if kind is not None:
            return Verdict(host, found, f"{host} resolves to {_shown(address)}, {kind}")
    return Verdict(host, found)


def url_host(url: str) -> str | None:
    """The host a URL names (lowercased, without brackets), or None when it names none."""
    try:
        return urlsplit(url).hostname or None
    except ValueError:
        return None
