"""The one rule for user-named hosts: public only, every resolved address checked (no network needed)."""

from __future__ import annotations

import pytest

from gitpaas.netpolicy import check_host, literal_address, url_host


def resolving_to(*addresses: str):
    return lambda host: list(addresses)


@pytest.mark.parametrize("host, kind", [
    ("127.0.0.1", "loopback"), ("127.1", "loopback"), ("2130706433", "loopback"), ("0x7f000001", "loopback"),
    ("0x7f.1", "loopback"), ("[::1]", "loopback"), ("::1", "loopback"),
    ("169.254.169.254", "link-local"), ("[fe80::1%eth0]", "link-local"), ("fd00:ec2::254", "private"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"), ("100.64.0.1", "reserved"),
    ("0.0.0.0", "unspecified"), ("0", "unspecified"), ("::", "unspecified"), ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"), ("240.0.0.1", "private"), ("198.18.0.1", "private"),
    # IPv4 inside IPv6: mapped, 6to4, NAT64, IPv4-compatible
    ("::ffff:127.0.0.1", "loopback"), ("2002:a9fe:a9fe::", "link-local"), ("64:ff9b::a00:1", "private"),
    ("::10.0.0.1", "private"),
])
def test_ip_literals_that_are_not_public_are_refused_as_written(host, kind):
    def no_dns(host: str) -> list[str]:
        raise AssertionError("an IP literal is judged without resolving it")
    verdict = check_host(host, no_dns)
    assert not verdict.public and verdict.refused.endswith(f" {kind} address")


@pytest.mark.parametrize("host", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "[2606:4700::1111]",
                                  "::ffff:93.184.216.34"])
def test_public_ip_literals_are_allowed(host):
    verdict = check_host(host, resolving_to("127.0.0.1"))
    assert verdict.public and verdict.refused is None


def test_a_name_is_public_only_when_every_address_it_resolves_to_is():
    assert check_host("hooks.example.test", resolving_to("93.184.216.34", "2606:4700::1111")).public
    mixed = check_host("hooks.example.test", resolving_to("93.184.216.34", "10.0.0.1"))
    assert not mixed.public and mixed.refused == "hooks.example.test resolves to 10.0.0.1, a private address"
    assert mixed.addresses == ("93.184.216.34", "10.0.0.1")
    mapped = check_host("hooks.example.test", resolving_to("::ffff:169.254.169.254"))
    assert mapped.refused == ("hooks.example.test resolves to ::ffff:a9fe:a9fe (169.254.169.254), "
                              "a link-local address")


def test_a_name_that_does_not_resolve_is_neither_public_nor_refused():
    def unresolvable(host: str) -> list[str]:
        raise OSError("Name or service not known")
    for verdict in (check_host("nowhere.invalid", unresolvable), check_host("nowhere.invalid", resolving_to())):
        assert not verdict.resolved and not verdict.public and verdict.refused is None


def test_literals_and_url_hosts():
    assert str(literal_address("[::1]")) == "::1" and str(literal_address("127.1")) == "127.0.0.1"
    assert literal_address("example.com") is None and literal_address("deadbeef") is None
    assert url_host("http://user@Hooks.Example.TEST:80/x") == "hooks.example.test"
    assert url_host("http://[::1]:8080/") == "::1"
    assert url_host("http:///x") is None and url_host("http://[::1/") is None
