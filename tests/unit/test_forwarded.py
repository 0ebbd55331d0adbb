"""Which address a request comes from: the connection's own, unless it comes from a proxy
the settings trust, whose X-Forwarded-For then names the client (uvicorn's middleware)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.runtime import server_config
from shared.settings import ServiceSettings

pytestmark = pytest.mark.unit


async def client_seen(settings: ServiceSettings, peer: str, forwarded: str) -> str:
    seen: list[str] = []

    async def app(scope: dict[str, Any], _receive: Any, _send: Any) -> None:
        seen.append(scope["client"][0])

    config = server_config(app, settings, 8001)
    config.load()
    scope = {
        "type": "http",
        "client": (peer, 40000),
        "headers": [(b"x-forwarded-for", forwarded.encode())],
    }
    await config.loaded_app(scope, None, None)
    (client,) = seen
    return client


@pytest.mark.parametrize(
    ("trusted", "peer", "client"),
    [
        ((), "127.0.0.1", "127.0.0.1"),  # by default nobody's header is believed
        ((), "10.1.2.3", "10.1.2.3"),
        (("10.0.0.0/8",), "10.1.2.3", "203.0.113.9"),  # the ingress's network
        (("10.0.0.0/8",), "192.0.2.1", "192.0.2.1"),  # anyone else's header is not
    ],
)
async def test_a_forwarded_address_is_believed_only_from_a_trusted_proxy(
    trusted: tuple[str, ...], peer: str, client: str
) -> None:
    settings = ServiceSettings(forwarded_allow_ips=trusted)
    assert await client_seen(settings, peer, "203.0.113.9") == client
