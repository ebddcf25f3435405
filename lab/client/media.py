"""The WebRTC side of one client call: the peer connection, its microphone (a prompt played
into the call) and its speaker (a recording of what comes back), saved when it closes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import av
from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from lab import webrtc
from lab.audio import RATE, read_wav, resample
from lab.config import NARROWBAND, WIDEBAND
from lab.sip.sdp import Codec, parse_sdp
from lab.tasks import Tasks


@dataclass
class VideoSeen:
    """The far end's video as the client's screen shows it: decoded frames and their size."""

    frames: int = 0
    width: int = 0
    height: int = 0
    last: av.VideoFrame | None = None  # what the screen shows now

    async def watch(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, av.VideoFrame):
                self.frames += 1
                self.width, self.height = frame.width, frame.height
                self.last = frame


class CallMedia:
    def __init__(
        self,
        audio: webrtc.BrowserAudio,
        prompt: Path | None,
        record_dir: Path | None,
        tasks: Tasks,
        name: str,
        video: bool = False,
    ) -> None:
        self.audio = audio
        self.record_dir = record_dir
        self.tasks = tasks
        self.name = name  # "call <id>", for the log
        self.pc = webrtc.peer_connection()
        self.mic: webrtc.PromptTrack | None = None
        self._spoken = read_wav(prompt) if prompt is not None else None
        # Microphone and speaker run at the prompt's rate when it is one of the lab's bands
        # (its prompts are at the lab's), so a wideband lab's client is wideband too.
        self.rate = self._spoken[1] if self._spoken and self._spoken[1] in (NARROWBAND, WIDEBAND) else RATE
        self.heard = webrtc.Recording(self.rate)
        #: a video call's camera (aiortc offers it as VP8 and H.264)
        self.camera = webrtc.ColourBarCamera() if video else None
        self.video_seen = VideoSeen()
        self.negotiated: Codec | None = None  # the WebRTC leg's codec, from the answer's SDP
        self.closed = asyncio.Event()
        self._drain: asyncio.Task[None] | None = None

    def _attach(self) -> None:
        """The microphone and the speaker."""
        if self._spoken is not None and self.mic is None:
            samples, rate = self._spoken
            self.mic = webrtc.PromptTrack(resample(samples, rate, self.rate), self.rate)

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self._drain = self.tasks.start(
                    webrtc.drain_track(track, self.heard.add, self.rate), f"{self.name}: recording"
                )
            elif track.kind == "video":
                self.tasks.start(self.video_seen.watch(track), f"{self.name}: watching the video")

    def _negotiated(self, answer: str) -> None:
        media = parse_sdp(answer)
        if media and media[0].codecs:
            self.negotiated = media[0].codecs[0]

    async def _describe(self, description: RTCSessionDescription) -> str:
        """Set our description, asking for the Opus bitrate and FEC we want to receive; the
        SDP to send is the one with the ICE candidates gathered while setting it."""
        webrtc.use_jitter_buffer(self.pc, self.audio.jitter_buffer)
        sdp = webrtc.with_opus_fmtp(description.sdp, self.audio.opus_fmtp())
        await self.pc.setLocalDescription(RTCSessionDescription(sdp=sdp, type=description.type))
        return str(self.pc.localDescription.sdp)

    async def offer(self) -> str:
        """The SDP offer of an outgoing call, offering only the call's codec."""
        self._attach()
        if self.mic is not None:
            self.pc.addTrack(self.mic)
        else:
            self.pc.addTransceiver("audio", direction="recvonly")
        if self.camera is not None:
            self.pc.addTrack(self.camera)
        webrtc.prefer_codec(self.pc, self.audio.codec)
        return await self._describe(await self.pc.createOffer())

    async def take_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        webrtc.encode_as_asked(self.pc)
        self._negotiated(sdp)

    async def answer(self, offer: str) -> str:
        """The SDP answer to the gateway's offer for an incoming call."""
        self._attach()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        if self.mic is not None:
            self.pc.addTrack(self.mic)
        sdp = await self._describe(await self.pc.createAnswer())
        webrtc.encode_as_asked(self.pc)
        self._negotiated(sdp)
        return sdp

    async def close(self) -> None:
        """Close the connection and save what was sent and heard to record_dir."""
        try:
            await self.pc.close()
            if self._drain is not None:
                self._drain.cancel()  # the track may never have started: do not wait on it
                await asyncio.gather(self._drain, return_exceptions=True)
            if self.record_dir is not None:
                self.record_dir.mkdir(parents=True, exist_ok=True)
                if self.mic is not None:
                    self.mic.save(self.record_dir / "browser_sent.wav")
                self.heard.save(self.record_dir / "browser_received.wav")
        finally:
            self.closed.set()
