"""Sending a leg's media through its network party: the SDP edit and the Join that go with it.

Two rules, one per side of an offer:
- The offerer of a leg the call impairs names the network's address instead of its own in
  its SDP (the c= and a=rtcp lines) and joins the network with its media ports and the
  impairments of that leg.
- An answerer answers on the network the offer came from: when the offer names a lab
  network's address, its answer names that network too, and it joins with its own ports.
So each party sends to the network and the network forwards to the other. When the
network party does not answer, the SDP is left as it was: the media takes the direct path
and the log says why, the call goes on.

An edit runs on pjsua's thread (SipCall.sdp_edit: a plain function of the SDPs plus one
blocking control request of at most half a second) or, for the browser leg's aiortc SDPs,
on an asyncio loop (Detour.arewrite).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from lab.config import LabConfig, Party
from lab.network.control import Join, Joined, NetworkUnreachable, Refused, Reply, arequest, request
from lab.network.legs import LegImpairment, on_leg
from lab.sip.sdp import parse_sdp

log = logging.getLogger(__name__)


def readdress(sdp: str, own: str, network: str) -> str:
    """The SDP with the network's address where it named `own` for media (c=, a=rtcp, and
    the ICE candidates of a WebRTC SDP)."""
    lines = sdp.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(("c=", "a=rtcp:")):
            lines[i] = line.replace(f"IN IP4 {own}", f"IN IP4 {network}")
        elif line.startswith("a=candidate:"):
            lines[i] = line.replace(f" {own} ", f" {network} ")
    return "\n".join(lines)


def media_ports(sdp: str) -> list[int]:
    """The ports the SDP's media arrives on: its ICE candidates' (WebRTC muxes RTP and RTCP
    on each), else the first audio stream's RTP port and RTCP on the next."""
    candidates = [line.split() for line in sdp.splitlines() if line.startswith("a=candidate:")]
    ports = sorted({int(c[5]) for c in candidates if len(c) > 5 and c[2].lower() == "udp" and c[5].isdigit()})
    if ports:
        return ports
    audio = next((m for m in parse_sdp(sdp) if m.media == "audio" and m.port), None)
    return [audio.port, audio.port + 1] if audio is not None else []


@dataclass(frozen=True)
class Detour:
    """One party's side of one call on one network."""

    network: Party
    control: tuple[str, int]
    call: str
    owner: str  # the party's own media address
    toward: str  # the direction of packets to this party: to-phone or to-browser
    impair: dict[str, str] | None = None  # direction -> spec, from the offerer

    def __call__(self, local: str, remote: str) -> str:
        """The edit on pjsua's thread: join (blocking) and readdress."""
        msg = self._join(local)
        try:
            reply = request(self.network.name, self.control, msg, source=self.owner) if msg else None
        except NetworkUnreachable as exc:
            reply = Refused(reason=str(exc))
        return self._readdressed(local, reply)

    async def arewrite(self, local: str) -> str:
        """The same, for an aiortc SDP on an asyncio loop."""
        msg = self._join(local)
        try:
            reply = await arequest(self.network.name, self.control, msg, source=self.owner) if msg else None
        except NetworkUnreachable as exc:
            reply = Refused(reason=str(exc))
        return self._readdressed(local, reply)

    def _join(self, local: str) -> Join | None:
        ports = media_ports(local)
        if not ports:
            return None
        return Join(call=self.call, owner=self.owner, ports=ports, toward=self.toward, impair=self.impair)

    def _readdressed(self, local: str, reply: Reply | None) -> str:
        if not isinstance(reply, Joined):
            log.warning(
                "call %s: media goes direct: %s did not take it: %s", self.call, self.network.name, reply
            )
            return local
        return readdress(local, self.owner, self.network.host)


def offering(
    cfg: LabConfig, leg: str, call: str, owner: str, toward: str, items: Iterable[LegImpairment]
) -> Detour | None:
    """The offerer's edit for `leg`, or None when the call does not impair that leg."""
    impair = on_leg(items, leg)
    if not impair:
        return None
    network = cfg.networks[leg]
    specs = {direction: impairment.spec() for direction, impairment in impair.items()}
    return Detour(network, (network.host, cfg.network_control_port), call, owner, toward, specs)


def answering(cfg: LabConfig, call: str, owner: str, toward: str, offer: str) -> Detour | None:
    """The answerer's edit: join the network the `offer` came from, if it came from one,
    and stay on it for the rest of the call (a re-INVITE this party offers, to hold, too)."""
    offered = next((m.address for m in parse_sdp(offer) if m.media == "audio"), "")
    network = next((n for n in cfg.networks.values() if n.host == offered), None)
    if network is None:
        return None
    return Detour(network, (network.host, cfg.network_control_port), call, owner, toward)
