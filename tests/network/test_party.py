"""The network party's control socket: each request gets its one answer, a bad one says why."""

from __future__ import annotations

from lab.config import Party
from lab.network.control import REQUESTS, Counts, Join, Joined, Ping, Pong, Refused, Report
from lab.network.party import Control
from lab.network.relay import Relay

NETWORK = Party("Test network", "127.0.0.61", 0, 0, 0)


async def test_join_then_report_and_bad_requests_are_refused_with_the_field() -> None:
    relay = Relay(NETWORK.host)
    control = Control(NETWORK, relay)
    try:
        assert await control.reply(REQUESTS.encode(Ping()).encode()) == Pong(network="Test network")
        join = Join(
            call="c1",
            owner="127.0.0.62",
            ports=[46100, 46101],
            toward="to-phone",
            impair={"to-phone": "loss=5%"},
        )
        assert await control.reply(REQUESTS.encode(join).encode()) == Joined()
        assert await control.reply(REQUESTS.encode(Report(call="c1")).encode()) == Counts(directions={})
        bad_spec = Join(
            call="c2", owner="127.0.0.62", ports=[46102], toward="to-phone", impair={"to-phone": "loss=x"}
        )
        refused = await control.reply(REQUESTS.encode(bad_spec).encode())
        assert isinstance(refused, Refused) and "loss=x: expected a percentage" in refused.reason
        refused = await control.reply(b'{"op": "join", "call": "c3"}')
        assert isinstance(refused, Refused) and "join.owner: missing" in refused.reason
    finally:
        relay.stop()
