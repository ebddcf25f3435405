"""The gateway's video relay: a video call's RTP between the browser's SRTP leg and the SIP
video phone's plain RTP (lab.gateway.relay), and what video needs beyond relaying: keyframes.

pjsua2's wheel has no video, so the gateway owns this stream itself, on the port the SIP
offer's video m-line names (lab.gateway.video.sip_offer). A PLI or FIR from either end is
passed on as a PLI to the other, and one is asked of each sender as soon as its packets can
be delivered (what it sent before that, its first keyframe included, was dropped). The
sender's RTCP is read from aiortc's _handle_rtcp_packet (aiortc 1.16).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpTransceiver
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPacket, RtcpPsfbPacket, RtpPacket

from lab.gateway.relay import Counts, RtpRelay

RTCP_PSFB_FIR = 4  # RFC 5104: Full Intra Request, as PLI asks for a keyframe


def asks_for_keyframe(packets: list[Any]) -> bool:
    """Whether RTCP packets (aiortc's, parsed) hold a PLI or a FIR."""
    return any(isinstance(p, RtcpPsfbPacket) and p.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR) for p in packets)


@dataclass
class VideoCounts(Counts):
    keyframes_asked_of_sip: int = 0
    keyframes_asked_of_browser: int = 0


class VideoRelay(RtpRelay):
    """One call's video, between the browser's video transceiver and the SIP far end."""

    kind = "video"
    counts: VideoCounts

    def new_counts(self) -> VideoCounts:
        return VideoCounts()

    def attach(
        self, pc: RTCPeerConnection, transceiver: RTCRtpTransceiver, encodings: tuple[str, ...]
    ) -> None:
        super().attach(pc, transceiver, encodings)
        sender = transceiver.sender
        original = sender._handle_rtcp_packet

        async def rtcp_for_sender(packet: Any) -> None:
            if asks_for_keyframe([packet]):
                self._ask_sip()
            await original(packet)

        sender._handle_rtcp_packet = rtcp_for_sender  # type: ignore[method-assign]

    def on_browser_packet(self, packet: RtpPacket) -> None:
        if self.counts.to_sip == 1:
            self._ask_browser()

    def on_sip_rtcp(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            packets = RtcpPacket.parse(data)
        except ValueError:
            return
        if asks_for_keyframe(packets):
            self._ask_browser()

    def on_first_delivery(self) -> None:
        self._ask_sip()

    def _ask_browser(self) -> None:
        if self.transceiver is None or self.browser_ssrc is None:
            return
        self.counts.keyframes_asked_of_browser += 1
        pli = self.transceiver.receiver._send_rtcp_pli(self.browser_ssrc)
        self.tasks.start(pli, "video relay: PLI to the browser", report=False)

    def _ask_sip(self) -> None:
        if self.far is None or self.sip_ssrc is None or self.transceiver is None:
            return
        self.counts.keyframes_asked_of_sip += 1
        pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=self.transceiver.sender._ssrc, media_ssrc=self.sip_ssrc)
        self.rtcp.sendto(bytes(pli), (self.far[0], self.far[1] + 1))
