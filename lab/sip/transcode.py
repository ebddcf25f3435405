"""`python -m lab.sip.transcode CODEC IN.wav OUT.wav`: speech through one of pjmedia's
codecs offline (lab.sip.codecs names: SPEEX16, ILBC, ...), for the quality ceiling of codecs
FFmpeg cannot encode. A process of its own, since it needs the process's one Endpoint.

IN is mono 16-bit at the codec's clock rate; OUT is written at the same rate."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from lab.audio import read_wav, write_wav
from lab.sip.endpoint import codec_round_trip


def main() -> None:
    codec, source, target = sys.argv[1:4]
    samples, rate = read_wav(Path(source))
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    decoded = np.frombuffer(codec_round_trip(codec, pcm), dtype="<i2").astype(np.float32) / 32768.0
    write_wav(Path(target), decoded, rate)
    sys.stdout.flush()
    # No libDestroy, and no interpreter teardown either: the Endpoint goes with
    # codec_round_trip's frame while the codec it made through ctypes stays, and collecting
    # what is left at exit segfaulted (-11, after OUT was written) depending only on how
    # many objects the imported modules made.
    os._exit(0)


if __name__ == "__main__":
    main()
