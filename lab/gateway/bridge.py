"""Audio between one WebRTC peer connection and one SIP call.

WebRTC -> SIP: decoded frames, resampled to the bridge rate, go into a small FIFO that the
SIP conference bridge drains on its own clock. SIP -> WebRTC: the bridge clock pushes each
frame into the track aiortc sends from, so one clock paces both directions (no drift).
"""

from __future__ import annotations

import asyncio
import threading

from aiortc.mediastreams import MediaStreamTrack

from lab.sip.endpoint import FramePort, SipCall, connect, frame_bytes
from lab.tasks import Tasks
from lab.webrtc import QueueTrack, drain_track


class PcmFifo:
    """Written by the asyncio loop, read by the bridge clock thread, a frame at a time."""

    def __init__(self, frame_bytes: int) -> None:
        self.frame_bytes = frame_bytes
        self.prebuffer = 1 * frame_bytes
        self.trim_above = 5 * frame_bytes  # beyond this the reader fell behind: drop the oldest
        self.trim_to = 2 * frame_bytes
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._primed = False

    def push(self, pcm: bytes) -> None:
        with self._lock:
            self._buf += pcm
            if len(self._buf) > self.trim_above:
                del self._buf[: len(self._buf) - self.trim_to]

    def pull(self) -> bytes | None:
        size = self.frame_bytes
        with self._lock:
            if not self._primed:
                if len(self._buf) < self.prebuffer + size:
                    return None
                self._primed = True
            if len(self._buf) < size:
                self._primed = False  # underrun: prebuffer again
                return None
            frame = bytes(self._buf[:size])
            del self._buf[:size]
            return frame


class MediaBridge:
    """Both directions of one call's audio at `rate`, the SIP bridge's clock rate."""

    def __init__(self, tasks: Tasks, rate: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.tasks = tasks
        self.rate = rate
        self.to_browser = QueueTrack(rate)
        self.to_sip = PcmFifo(frame_bytes(rate))
        self.port: FramePort | None = None
        self._drain: asyncio.Task[None] | None = None

    def browser_track(self, track: MediaStreamTrack) -> None:
        """The audio track the browser sends."""
        drain = drain_track(track, self.to_sip.push, self.rate)
        self._drain = self.tasks.start(drain, "taking the browser's audio")

    def attach(self, call: SipCall) -> None:
        """Called when the SIP call's audio is active."""
        audio = call.audio()
        if audio is None:
            return
        if self.port is None:
            self.port = FramePort.lend(call, self.rate, pull=self.to_sip.pull, push=self._from_sip_clock)
        connect(audio, self.port)

    def _from_sip_clock(self, pcm: bytes) -> None:
        try:
            self.loop.call_soon_threadsafe(self.to_browser.push, pcm)
        except RuntimeError:  # the loop is closing: the call is going away anyway
            pass

    def close(self) -> None:
        if self.port is not None:
            self.port.give_back()
            self.port = None
        self.to_browser.stop()
        if self._drain:
            self._drain.cancel()
