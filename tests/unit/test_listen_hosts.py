"""The names a server's certificates carry for its listen address (`shoal.server.app._listen_hosts`)."""

from __future__ import annotations

import ipaddress

from shoal.server.app import _listen_hosts, local_address, machine_addresses


def test_a_wildcard_listen_address_names_every_address_of_the_machine() -> None:
    mine = machine_addresses()
    assert "127.0.0.1" in mine and all(not ipaddress.ip_address(a).is_link_local for a in mine)
    for wildcard in ("0.0.0.0:7420", "[::]:7420", ":7420"):
        hosts = _listen_hosts(wildcard)
        assert set(mine) <= set(hosts) and "localhost" in hosts, wildcard
        assert len(hosts) == len(set(hosts))


def test_a_given_listen_address_is_named_as_given() -> None:
    assert _listen_hosts("127.0.6.1:7420", "127.0.6.1:7421") == ["localhost", "127.0.0.1", "::1", "127.0.6.1"]
    assert _listen_hosts("shoal.example:7420")[-1] == "shoal.example"


def test_clients_of_the_machine_reach_a_wildcard_server_at_the_loopback() -> None:
    assert local_address("0.0.0.0", 7420) == "127.0.0.1:7420"
    assert local_address("", 7420) == "127.0.0.1:7420"
    assert local_address("[::]", 7420) == "[::1]:7420"
    assert local_address("127.0.6.1", 7420) == "127.0.6.1:7420"
    assert local_address("[::1]", 7420) == "[::1]:7420"
    # Both are names the certificate of a wildcard server carries.
    assert {"127.0.0.1", "::1"} <= set(_listen_hosts("0.0.0.0:7420"))
