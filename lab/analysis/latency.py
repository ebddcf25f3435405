"""Where a call's mouth-to-ear delay goes: when the same audio crosses each leg of the call
path, from the capture, between the talker's prompt and the listener's recording.

Every time below is on one clock, time.monotonic() (the lab's parties stamp their prompts
and recordings with it); capture times (the wall clock) are moved onto it by
`clock_offset` = time.time() - time.monotonic(), read once on the same machine.

Per RTP stream (packets i: capture time t_i, unwrapped RTP timestamp ts_i, clock rate c):
- its media time base  T = median_i(t_i - (ts_i - ts_0) / c): when the stream's first media
  sample would have crossed the wire had every packet come on time (the median leaves out
  a late packet or a burst);
- its audio: each payload decoded and put at (ts_i - ts_0) / c (gaps stay silent);
  lab.audio.best_match against the prompt (period P, spoken from mouth time M in a loop)
  gives the prompt position L that the audio's first sample carries;
- the audio's crossing  d = (T - L - M) mod± P: seconds after the mouth spoke it (mod±:
  into [-P/2, P/2), so a crossing a few ms early, the clocks' and envelope's error, reads
  as such and not as almost a whole prompt late).
The ear: a recording started at E whose first sample carries prompt position L_r crosses
at d = (E - L_r - M) mod± P (lab.audio.one_way_latency, the call's mouth_to_ear_ms). The
browser's E is its chunks' median start (lab.webrtc.Recording.started_at); the phone stamps
M and E when it makes its WAV player and recorder, up to one bridge tick (20 ms) before
their first frame: its mouth reads early (phone -> browser up to 20 ms long) and its ear
early (browser -> phone up to 20 ms short).

The browser leg is SRTP: payloads are encrypted, RTP headers are not. Browser -> gateway:
aiortc stamps the microphone's first frame with the stream's first timestamp, and a packet
carries the audio up to its encoder's lookahead A past its timestamp (Opus: 312 samples at
48 kHz, 6.5 ms; the lab's Opus encoder also starts with under 2 ms of silence, not counted),
so L = -A: the lookahead is the encoding party's delay. Gateway -> browser: the client's
recording is that stream decoded from its first packet, lookahead included, so L = L_r.

Over time, at the ear: a recording is the decoded frames back to back, so a receiver that
holds audio back leaves no gap in it. Chunk k, heard at a_k, starts at recording sample
n_k; the second of recording around it, matched on its own, says that sample carries prompt
position L_k (a concealed loss that came out shorter or longer than the audio it stood for
shifts the recording's timeline; a local match follows it):
  ear delay of chunk k = (a_k - M - L_k) mod± P.

A hop's delay is the difference of the crossings on its two sides (e.g. the gateway's share
browser -> phone = d(SIP leg) - d(browser leg)); its share is that over mouth-to-ear.
Resolution: the 10 ms envelope step of best_match for decoded legs and the ear; the browser
leg's browser -> gateway crossing needs no match. A leg whose codec cannot be decoded here
(Speex) has no crossing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext

from lab.analysis import pcap
from lab.analysis.model import RtpStream
from lab.analysis.rtp import decode_headers
from lab.audio import best_match, read_wav, resample
from lab.config import LabConfig

#: FFmpeg's decoder for each SDP encoding name the lab's legs use
DECODERS = {
    "pcmu": "pcm_mulaw",
    "pcma": "pcm_alaw",
    "gsm": "gsm",
    "g722": "g722",
    "opus": "opus",
    "ilbc": "ilbc",
}


#: an encoder's lookahead (A of the module docstring), seconds
LOOKAHEAD_S = {"opus": 312 / 48000}


@dataclass(frozen=True)
class Crossing:
    """One point of the path: where the audio was, and how long after the mouth."""

    point: str  # "mouth", "browser leg", "SIP leg", "mobile leg", "ear"
    party: str  # who sent it there (the ear: who heard it)
    delay_ms: float | None  # None: not measurable (codec not decodable, stream missing)


@dataclass(frozen=True)
class Hop:
    """From one crossing to the next: what sits in between and what it cost."""

    between: str  # "browser leg -> SIP leg"
    holds: str  # the buffers, bridges and encoders in this hop
    delay_ms: float | None


@dataclass(frozen=True)
class Direction:
    label: str  # "Browser -> Mobile phone"
    crossings: tuple[Crossing, ...]
    hops: tuple[Hop, ...]
    gateway_ms: float | None  # the gateway's own share

    @property
    def mouth_to_ear_ms(self) -> float | None:
        return self.crossings[-1].delay_ms


def _rtp_payload(raw: bytes) -> bytes:
    """The payload after the fixed header, CSRCs, header extension and padding."""
    start = 12 + 4 * (raw[0] & 0x0F)
    if raw[0] & 0x10 and len(raw) >= start + 4:
        start += 4 + 4 * int.from_bytes(raw[start + 2 : start + 4], "big")
    end = len(raw) - (raw[-1] if raw[0] & 0x20 and raw else 0)
    return raw[start:end]


@dataclass(frozen=True)
class _Packets:
    t: np.ndarray  # capture time, s (wall clock)
    ts: np.ndarray  # unwrapped RTP timestamp
    payloads: list[bytes]


def _stream_packets(packets: pcap.Packets, stream: RtpStream) -> _Packets:
    udp = packets.udp
    index = {a: i for i, a in enumerate(udp.addresses)}
    if stream.src not in index or stream.dst not in index:
        return _Packets(np.zeros(0), np.zeros(0, dtype=np.int64), [])
    headers = decode_headers(packets.frames.data, udp.payload, udp.length)
    mine = (
        headers.rtp
        & (udp.src == index[stream.src])
        & (udp.sport == stream.src_port)
        & (udp.dst == index[stream.dst])
        & (udp.dport == stream.dst_port)
        & (headers.ssrc == stream.ssrc)
        & (headers.pt == stream.pt)
    )
    rows = np.nonzero(mine)[0]
    _, first = np.unique(headers.seq[rows], return_index=True)  # a duplicate counts once
    rows = rows[np.sort(first)]
    ts = np.unwrap(headers.timestamp[rows].astype(np.float64), period=2**32).astype(np.int64)
    return _Packets(udp.ts[rows], ts, [_rtp_payload(packets.payload(int(i))) for i in rows])


def media_base(t: np.ndarray, ts: np.ndarray, clock_rate: int) -> float:
    """T of the module docstring: when the first media sample would have crossed."""
    return float(np.median(t - (ts - ts[0]) / clock_rate))


def decoded_audio(
    codec: str, clock_rate: int, ts: np.ndarray, payloads: list[bytes], rate: int
) -> np.ndarray | None:
    """The payloads decoded to mono float at `rate`, each at its timestamp; None: no decoder."""
    name = DECODERS.get(codec.lower())
    if name is None or not payloads:
        return None
    decoder = cast(AudioCodecContext, av.CodecContext.create(name, "r"))
    decoder.sample_rate = 48000 if name == "opus" else clock_rate
    decoder.layout = "mono"
    to_float = av.AudioResampler(format="flt", layout="mono", rate=rate)
    out = np.zeros(int((ts[-1] - ts[0]) * rate / clock_rate) + rate, dtype=np.float32)
    try:
        for stamp, payload in zip(ts.tolist(), payloads, strict=True):
            at = int((stamp - ts[0]) * rate / clock_rate)
            for frame in decoder.decode(av.Packet(payload)):
                for f in to_float.resample(frame):
                    pcm = f.to_ndarray().reshape(-1)[: len(out) - at]
                    out[at : at + len(pcm)] = pcm
                    at += len(pcm)
    except av.error.InvalidDataError:  # an encrypted payload (SRTP) or not this codec
        return None
    return out


def _wrapped(seconds: float | np.ndarray, period: float) -> Any:
    """mod± of the module docstring."""
    return (seconds + period / 2) % period - period / 2


def _prompt_position(source: np.ndarray, audio: np.ndarray, rate: int) -> float:
    return float(best_match(source, audio, rate).lag_s)


def _leg_delay(
    packets: pcap.Packets,
    stream: RtpStream | None,
    source: np.ndarray,
    rate: int,
    mouth: float,
    clock_offset: float,
    position: float | None = None,
) -> float | None:
    """d of the module docstring for `stream`; `position` (L) when known without decoding."""
    if stream is None or not stream.clock_rate:
        return None
    got = _stream_packets(packets, stream)
    if len(got.t) < 2:
        return None
    if position is None:
        audio = decoded_audio(stream.codec, stream.clock_rate, got.ts, got.payloads, rate)
        if audio is None:
            return None
        position = _prompt_position(source, audio, rate)
    base = media_base(got.t, got.ts, stream.clock_rate) - clock_offset
    return float(_wrapped(base - position - mouth, len(source) / rate))


def _sent(streams: tuple[RtpStream, ...], src: str, dst: str, network: str) -> RtpStream | None:
    """What `src` sent toward `dst`: straight to it, or into the leg's network party."""
    return next((s for s in streams if s.src_party == src and s.dst_party in (dst, network)), None)


def passed_through(streams: tuple[RtpStream, ...], cfg: LabConfig) -> bool:
    """Whether the gateway relayed the browser's packets to the SIP leg as they came
    (lab.gateway.passthrough): the same SSRC on both legs, where a transcoding gateway sends
    a stream of its own (SRTP leaves the RTP header, and so the SSRC, in the clear)."""
    browser = _sent(streams, cfg.browser.name, cfg.gateway.name, cfg.internet.name)
    sip = _sent(streams, cfg.gateway.name, cfg.pstn.name, cfg.core_network.name)
    return browser is not None and sip is not None and browser.ssrc == sip.ssrc


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def _hops(points: list[Crossing], holds: list[str]) -> tuple[Hop, ...]:
    return tuple(
        Hop(
            f"{a.point} -> {b.point}",
            what,
            None if a.delay_ms is None or b.delay_ms is None else round(b.delay_ms - a.delay_ms, 1),
        )
        for a, b, what in zip(points[:-1], points[1:], holds, strict=True)
    )


def gateway_way(streams: tuple[RtpStream, ...], cfg: LabConfig) -> str:
    """How the gateway carried a call's audio, from its capture: "passthrough" (the
    browser's packets as they came), "relay" (a stream of its own from a relay's port: the
    Opus relay, lab.gateway.opusrelay) or "bridge" (from pjsua's stream)."""
    if passed_through(streams, cfg):
        return "passthrough"
    sip = _sent(streams, cfg.gateway.name, cfg.pstn.name, cfg.core_network.name)
    if sip is not None and any(sip.src_port in worker.relay_ports for worker in cfg.gateway_pool):
        return "relay"
    return "bridge"


def holds(cfg: LabConfig, browser_jitter: str, way: str = "bridge") -> dict[str, list[str]]:
    """What sits in each hop, per direction (the lab's buffers as configured), the gateway's
    as it carried the call (gateway_way)."""
    sip_jb = f"pjmedia jitter buffer {cfg.sip_jitter_buffer}"
    bridge = "conference bridge tick (20 ms)"
    gateway = {
        "passthrough": ("gateway: G.711 passthrough, each packet passed on as it comes",) * 2,
        "relay": (
            "gateway: Opus relay, each packet decoded (libopus, to 8 kHz) and sent as G.711",
            "gateway: Opus relay, each packet encoded (libopus, from 8 kHz) as it comes",
        ),
        "bridge": (
            f"gateway: aiortc jitter buffer {browser_jitter}, decoder, resampler, PcmFifo prebuffer, "
            f"{bridge}, SIP encoder",
            f"gateway: {sip_jb}, {bridge}, FramePort -> QueueTrack, aiortc encoder",
        ),
    }[way]
    return {
        "to phone": [
            "client: prompt track 20 ms frame, aiortc encoder",
            gateway[0],
            f"PSTN gateway: {sip_jb}, {bridge}, mobile encoder",
            f"phone: {sip_jb}, {bridge}, WAV recorder",
        ],
        "to browser": [
            f"phone: WAV player, {bridge}, mobile encoder",
            f"PSTN gateway: {sip_jb}, {bridge}, SIP encoder",
            gateway[1],
            f"client: aiortc jitter buffer {browser_jitter}, decoder, recording",
        ],
    }


def path_delays(
    capture: str | Path,
    model_streams: tuple[RtpStream, ...],
    log: Mapping[str, Any],
    cfg: LabConfig,
    clock_offset: float,
) -> tuple[Direction, ...]:
    """Both directions of a lab call (its call.json `log`, its own streams of the capture),
    crossing by crossing; a crossing that cannot be measured is None."""
    folder = Path(capture).with_suffix("")
    packets = pcap.read(capture)
    timing, phone = log.get("timing", {}), log.get("phone", {})
    browser, gateway, pstn, mobile = cfg.browser.name, cfg.gateway.name, cfg.pstn.name, cfg.phone.name
    internet, core, radio = cfg.internet.name, cfg.core_network.name, cfg.mobile_network.name
    jitter = str((log.get("browser_audio") or {}).get("jitter_buffer", "?"))
    hold = holds(cfg, jitter, gateway_way(model_streams, cfg))
    directions = []
    for label, prompt, heard, mouth, ear, legs, what in (
        (
            f"{browser} -> {mobile}",
            "browser.wav",
            "phone_received.wav",
            timing.get("browser_sent_t0"),
            phone.get("received_t0"),
            [
                ("browser leg", browser, gateway, internet),
                ("SIP leg", gateway, pstn, core),
                ("mobile leg", pstn, mobile, radio),
            ],
            hold["to phone"],
        ),
        (
            f"{mobile} -> {browser}",
            "phone.wav",
            "browser_received.wav",
            phone.get("sent_t0"),
            timing.get("browser_received_t0"),
            [
                ("mobile leg", mobile, pstn, radio),
                ("SIP leg", pstn, gateway, core),
                ("browser leg", gateway, browser, internet),
            ],
            hold["to browser"],
        ),
    ):
        if not isinstance(mouth, float | int) or not isinstance(ear, float | int):
            continue
        if not (folder / heard).exists() or not (cfg.prompts_dir / prompt).exists():
            continue
        source, source_rate = read_wav(cfg.prompts_dir / prompt)
        received, rate = read_wav(folder / heard)
        source = resample(source, source_rate, rate)
        heard_at = _prompt_position(source, received, rate)
        points = [Crossing("mouth", legs[0][1], 0.0)]
        for point, src, dst, network in legs:
            stream = _sent(model_streams, src, dst, network)
            position: float | None = None
            if point == "browser leg" and stream is not None:  # SRTP: its timestamps say
                position = -LOOKAHEAD_S.get(stream.codec.lower(), 0.0) if src == browser else heard_at
            d = _leg_delay(packets, stream, source, rate, float(mouth), clock_offset, position)
            points.append(Crossing(point, src, _ms(d)))
        ear_delay = float(_wrapped(float(ear) - heard_at - float(mouth), len(source) / rate))
        points.append(Crossing("ear", legs[-1][2], _ms(ear_delay)))
        hops = _hops(points, what)
        share = next(h.delay_ms for h in hops if set(h.between.split(" -> ")) == {"browser leg", "SIP leg"})
        directions.append(Direction(label, tuple(points), hops, share))
    return tuple(directions)


EAR_WINDOW_S = 1.0  # the stretch of recording matched on its own, around each half second
MATCHED = 0.6  # an envelope correlation below this is no match (silence, a gap)


def ear_delays(
    source: np.ndarray,
    received: np.ndarray,
    rate: int,
    mouth: float,
    chunk_samples: list[int],
    arrivals: list[float],
) -> tuple[np.ndarray, np.ndarray]:
    """When each chunk of a recording was heard (time.monotonic()) and its mouth-to-ear
    delay in ms (the module docstring's ear delay of chunk k)."""
    whole = _prompt_position(source, received, rate)
    starts = np.concatenate([[0], np.cumsum(chunk_samples)[:-1]]).astype(np.int64)
    step, span = rate // 2, int(EAR_WINDOW_S * rate)
    positions = whole + starts / rate
    for first in range(0, len(received), step):
        part = received[max(0, first + step // 2 - span // 2) : first + step // 2 + span // 2]
        match = best_match(source, part, rate)
        if match.correlation < MATCHED:
            continue
        here = (starts >= first) & (starts < first + step)
        offset = max(0, first + step // 2 - span // 2)
        positions[here] = float(match.lag_s) + (starts[here] - offset) / rate
    t = np.asarray(arrivals, dtype=np.float64)
    delays = _wrapped(t - mouth - positions, len(source) / rate)
    return t, delays * 1000
