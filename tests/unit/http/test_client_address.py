"""The access line's client: the peer, or behind a trusted proxy the address it forwards; an
address a client wrote itself is never believed past a proxy nobody trusts."""
import pytest

from affix.app.http.logs import client_address

PROXIES = {"127.0.0.1", "10.0.0.2"}


@pytest.mark.parametrize("peer, forwarded, client", [
    # no proxy: the peer, whatever it sends
    ("203.0.113.9", "198.51.100.1", "203.0.113.9"),
    # a trusted proxy names the client
    ("127.0.0.1", "203.0.113.9", "203.0.113.9"),
    # the client's own entry stands left of the proxy's: not believed
    ("127.0.0.1", "198.51.100.66, 203.0.113.9", "203.0.113.9"),
    # two trusted proxies in a row
    ("127.0.0.1", "203.0.113.9, 10.0.0.2", "203.0.113.9"),
    # a trusted proxy that forwards nothing
    ("127.0.0.1", "", "127.0.0.1"),
    # only trusted proxies: the leftmost
    ("127.0.0.1", "10.0.0.2", "10.0.0.2"),
    # no peer address (a UNIX socket)
    ("", "203.0.113.9", None),
], ids=["no proxy", "one proxy", "forged entry", "two proxies", "nothing forwarded",
        "proxies only", "no peer"])
def test_the_client_is_the_nearest_address_no_trusted_proxy_stands_for(peer, forwarded, client):
    environ = {"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": forwarded}

    assert client_address(environ, PROXIES.__contains__) == client
