"""The browser leg's audio as the lab's aiortc peers run it, in one process: Opus bitrate
and in-band FEC through the real encoder, jitter buffer and decoder; the bounded jitter
buffer; the Opus fmtp that tells each side's encoder what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from aiortc import RTCSessionDescription
from aiortc.codecs.opus import OpusEncoder as AiortcOpusEncoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from lab import webrtc
from lab.audio import RATE, pesq_nb, read_wav
from lab.codecs import OPUS, OpusDecoder, OpusEncoder, PromptOpusEncoder, opus_packets, pcm_frame, receive
from lab.jitterbuffer import BoundedJitterBuffer, release_delays
from lab.jitterspec import JitterBufferSpec

PCMU = RTCRtpCodecParameters(mimeType="audio/PCMU", clockRate=8000, channels=1, payloadType=0)


def seeded_loss(packets: list[RtpPacket], fraction: float, seed: int = 7) -> list[RtpPacket]:
    lost = np.random.default_rng(seed).random(len(packets)) < fraction
    return [p for p, gone in zip(packets, lost, strict=True) if not gone]


@pytest.fixture
def prompt(lab_home: Path) -> np.ndarray:
    samples, _ = read_wav(lab_home / ".calllab/prompts/browser.wav")
    return samples


@pytest.mark.parametrize("bitrate", [24000, 32000])
def test_opus_fec_rebuilds_what_5_percent_loss_took(prompt: np.ndarray, bitrate: int) -> None:
    """The same seeded 5 % of packets lost: with FEC the decoder rebuilds them from the next
    packet and the prompt scores far higher than with PLC alone."""
    two_loops = np.tile(prompt, 2)
    clean, _ = receive(opus_packets(two_loops, RATE, bitrate, True), OPUS, RATE)
    score = {}
    for fec in (False, True):
        sent = opus_packets(two_loops, RATE, bitrate, fec)
        heard, decoder = receive(seeded_loss(sent, 0.05), OPUS, RATE)
        assert decoder.opus is not None
        assert decoder.opus.fec_frames > 0  # every gap is concealed, FEC or not
        assert len(heard) == len(clean)  # the timeline is kept
        score[fec] = pesq_nb(prompt, heard)
    assert score[True] > score[False] + 0.4, score
    assert pesq_nb(prompt, clean) > score[True], score


def test_a_lost_g711_packet_becomes_silence_of_its_length() -> None:
    packets = [
        RtpPacket(payload_type=0, sequence_number=i, timestamp=i * 160, payload=bytes([0x55]) * 160)
        for i in range(50)
    ]
    heard, _ = receive([p for p in packets if p.sequence_number not in (10, 11, 12)], PCMU, RATE)
    assert len(heard) == len(packets) * 160  # the default buffer holds none back
    assert np.all(heard[10 * 160 : 13 * 160] == 0) and np.all(heard[: 10 * 160] != 0)


def stream(count: int, lost: range = range(0)) -> list[RtpPacket]:
    return [
        RtpPacket(payload_type=111, sequence_number=(60000 + i) % 65536, timestamp=i * 960, payload=b"x")
        for i in range(count)
        if i not in lost
    ]


@pytest.mark.parametrize("spec", ["fixed:0", "fixed:20", "fixed:60", "adaptive:20-120"])
def test_the_delay_after_a_loss_burst_stays_within_the_bound(spec: str) -> None:
    """aiortc's buffer (issue #543) keeps ~15 packets after a loss; this one goes back to
    its depth as soon as the gap is declared lost, across the sequence number wrap too."""
    bound = JitterBufferSpec.parse(spec)
    buffer = BoundedJitterBuffer(bound)
    releases = release_delays(buffer, stream(300, lost=range(100, 105)))
    assert buffer.lost == 5 and len(releases) == 295 - bound.min_ms // 20
    assert [r.timestamp for r in releases] == sorted(r.timestamp for r in releases)
    assert max(r.delay_ms for r in releases) <= bound.max_ms
    assert [r.delay_ms for r in releases[-100:]] == [bound.min_ms] * 100


def test_the_frame_after_a_gap_says_how_many_were_lost() -> None:
    buffer = BoundedJitterBuffer(JitterBufferSpec.parse("fixed:20"))
    played = [f for p in stream(20, lost=range(5, 8)) if (out := buffer.add(p)[1]) for f in out.frames]
    assert [f.lost_before for f in played if f.lost_before] == [3]
    assert played[5].timestamp == 8 * 960 and played[5].lost_before == 3


def test_a_reordered_packet_within_the_wait_is_not_lost() -> None:
    packets = stream(30)
    packets[10], packets[12] = packets[12], packets[10]  # 12 comes 40 ms early, 10 40 ms late
    deep = BoundedJitterBuffer(JitterBufferSpec.parse("fixed:60"))
    release_delays(deep, packets)
    assert (deep.lost, deep.late) == (0, 0)
    short = BoundedJitterBuffer(JitterBufferSpec.parse("fixed:40"))
    release_delays(short, packets)
    assert (short.lost, short.late) == (1, 1)


def test_an_adaptive_buffer_deepens_for_late_packets_then_shrinks_back() -> None:
    packets = stream(400)
    packets.insert(13, packets.pop(10))  # 60 ms late
    buffer = BoundedJitterBuffer(JitterBufferSpec.parse("adaptive:20-100"))
    delays = [r.delay_ms for r in release_delays(buffer, packets)]
    assert (buffer.lost, buffer.late) == (1, 1)
    assert delays[:9] == [20] * 9 and delays[20:30] == [80] * 10  # deepened by the 60 ms it was late
    assert buffer.depth == 1 and delays[-50:] == [20] * 50  # a calm second per packet less


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("fixed:25", "multiple of 20 ms"),
        ("fixed:2000", "from 0 to 1000"),
        ("adaptive:100-20", "above max"),
        ("elastic:20", "fixed:MS or adaptive:MIN-MAX"),
        ("fixed:-20", "fixed:MS or adaptive:MIN-MAX"),
    ],
)
def test_a_bad_jitter_buffer_spec_says_what_is_wrong(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        JitterBufferSpec.parse(text)


def test_specs_read_back_as_written() -> None:
    for text in ("fixed:0", "fixed:60", "adaptive:20-200"):
        assert str(JitterBufferSpec.parse(text)) == text


def test_bad_browser_audio_is_refused() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        webrtc.BrowserAudio("g729")
    with pytest.raises(ValueError, match="Opus settings"):
        webrtc.BrowserAudio("pcmu", opus_fec=True)
    with pytest.raises(ValueError, match="from 6000 to 510000"):
        webrtc.BrowserAudio(opus_bitrate=1000)


async def test_each_side_encodes_as_the_other_sides_sdp_asks() -> None:
    """The client's offer asks for 24 kbit/s with FEC (a=fmtp, RFC 7587); the gateway's
    answer asks the same back: both Opus encoders are made so before media flows."""
    webrtc.configure("127.0.0.1")
    audio = webrtc.BrowserAudio(opus_bitrate=24000, opus_fec=True)
    client, gateway = webrtc.peer_connection(), webrtc.peer_connection()
    try:
        client.addTrack(webrtc.QueueTrack(8000))
        webrtc.prefer_codec(client, audio.codec)
        offer = await client.createOffer()
        await client.setLocalDescription(
            RTCSessionDescription(webrtc.with_opus_fmtp(offer.sdp, audio.opus_fmtp()), "offer")
        )
        asked = {"useinbandfec": 1, "maxaveragebitrate": 24000}
        assert webrtc.opus_fmtp(client.localDescription.sdp) == asked
        await gateway.setRemoteDescription(client.localDescription)
        gateway.addTrack(webrtc.QueueTrack(8000))
        answer = await gateway.createAnswer()
        assert webrtc.opus_fmtp(answer.sdp) == {}  # aiortc writes no Opus fmtp of its own
        mirrored = webrtc.with_opus_fmtp(answer.sdp, webrtc.opus_fmtp(client.localDescription.sdp))
        await gateway.setLocalDescription(RTCSessionDescription(mirrored, "answer"))
        webrtc.encode_as_asked(gateway)
        await client.setRemoteDescription(gateway.localDescription)
        webrtc.encode_as_asked(client)
        for pc in (client, gateway):
            (transceiver,) = pc.getTransceivers()
            encoder = transceiver.sender._RTCRtpSender__encoder
            assert isinstance(encoder, OpusEncoder)
            assert encoder.codec.bit_rate == 24000 and encoder.codec.options["fec"] == "1"
    finally:
        await client.close()
        await gateway.close()


async def test_without_fmtp_aiortc_keeps_its_own_encoder() -> None:
    webrtc.configure("127.0.0.1")
    client, gateway = webrtc.peer_connection(), webrtc.peer_connection()
    try:
        client.addTrack(webrtc.QueueTrack(8000))
        await client.setLocalDescription(await client.createOffer())
        await gateway.setRemoteDescription(client.localDescription)
        gateway.addTrack(webrtc.QueueTrack(8000))
        await gateway.setLocalDescription(await gateway.createAnswer())
        webrtc.encode_as_asked(gateway)
        (transceiver,) = gateway.getTransceivers()
        assert transceiver.sender._RTCRtpSender__encoder is None
    finally:
        await client.close()
        await gateway.close()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--opus-bitrate", "3"], "argument --opus-bitrate: Opus bitrate in kbit/s, from 6 to 510, not '3'"),
        (["--opus-fec", "maybe"], "argument --opus-fec: invalid choice: 'maybe'"),
        (["--jitter-buffer", "fixed:30"], "30 ms is not a multiple of 20 ms from 0 to 1000"),
        (["--codec", "g729"], "argument --codec: invalid choice: 'g729'"),
        (["--codec", "pcma", "--opus-bitrate", "24"], "calllab call: Opus bitrate and FEC are Opus settings"),
    ],
)
def test_calllab_call_refuses_bad_audio_options_before_starting_anything(
    args: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from lab.cli import main

    try:
        code = main(["call", "+79991234567", *args])
    except SystemExit as refused:  # argparse's own errors
        code = refused.code  # type: ignore[assignment]
    assert code == 2
    assert error in capsys.readouterr().err.splitlines()[-1]


def test_opus_fmtp_is_added_or_merged_into_the_opus_line() -> None:
    sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n"
    added = webrtc.with_opus_fmtp(sdp, {"useinbandfec": 1})
    assert "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\na=rtpmap:0" in added
    merged = webrtc.with_opus_fmtp(added, {"maxaveragebitrate": 20000})
    assert merged.count("a=fmtp:") == 1 and "a=fmtp:111 useinbandfec=1;maxaveragebitrate=20000\r\n" in merged
    assert webrtc.opus_fmtp(merged) == {"useinbandfec": 1, "maxaveragebitrate": 20000}
    assert webrtc.with_opus_fmtp(sdp.replace("opus", "G722"), {"useinbandfec": 1}).count("fmtp") == 0


def test_a_packet_libopus_cannot_read_is_concealed_not_fatal() -> None:
    """aiortc's decoder thread survives FFmpeg's errors only: anything else ends the call's audio."""
    decoder = OpusDecoder()
    assert len(decoder.decode(b"\xff")) == 960 and decoder.bad_packets == 1  # 20 ms of PLC


def test_a_recording_starts_when_its_chunks_came_on_time_not_when_a_late_first_one_came(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    heard = webrtc.Recording(8000)
    assert heard.started_at is None
    for at in [10.050, 10.051, 10.052, 10.060, 10.080, 10.100, 10.120]:  # the first three late
        monkeypatch.setattr(webrtc.time, "monotonic", lambda at=at: at)
        heard.add(bytes(320))  # 20 ms each
    assert heard.started_at == pytest.approx(10.0)
    assert heard.samples == 7 * 160  # late, not a hold: no silence put in


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_the_lab_opus_encoders_send_a_packet_for_the_first_frame_in(rate: int) -> None:
    def packets_per_frame(encoder: AiortcOpusEncoder) -> list[int]:
        step = rate // 50
        tone = (np.sin(np.arange(5 * step) * 0.3) * 8000).astype("<i2")
        return [
            len(encoder.encode(pcm_frame(tone[k * step : (k + 1) * step], rate, k * step))[0])
            for k in range(5)
        ]

    assert packets_per_frame(PromptOpusEncoder()) == [1] * 5
    assert packets_per_frame(OpusEncoder(32000, fec=True)) == [1] * 5
    if rate != 48000:  # aiortc's own holds the first frame back: 20 ms on every frame after it
        assert packets_per_frame(AiortcOpusEncoder()) == [0, 1, 1, 1, 1]
