// What the page sent and heard, recorded at the lab's audio rate (Web Audio), so the lab's
// audio checks (correlation, PESQ, mouth-to-ear delay) apply to a browser call as they do
// to lab.client's.

export class Recorder {
  static async create(rate) {
    const context = new AudioContext({ sampleRate: rate });
    await context.audioWorklet.addModule(new URL("recorder-worklet.js", import.meta.url));
    await context.resume();
    return new Recorder(context);
  }

  constructor(context) {
    this.context = context;
    this.tracks = {};
  }

  /** Record `stream` as `name`; t0 is the wall-clock time (ms) of its first sample. */
  record(name, stream) {
    const source = this.context.createMediaStreamSource(stream);
    const tap = new AudioWorkletNode(this.context, "tap", { numberOfInputs: 1, numberOfOutputs: 0 });
    const track = { t0: null, chunks: [], source, tap };
    tap.port.onmessage = (e) => {
      if (track.t0 === null) track.t0 = performance.timeOrigin + performance.now() - (1000 * e.data.length) / this.context.sampleRate;
      track.chunks.push(e.data);
    };
    source.connect(tap);
    this.tracks[name] = track;
  }

  /** Every recording as {rate, t0 (ms since the epoch), pcm: base64 16-bit little-endian}. */
  async stop() {
    await this.context.close();
    const out = {};
    for (const [name, { t0, chunks }] of Object.entries(this.tracks)) {
      const pcm = new Int16Array(chunks.reduce((n, c) => n + c.length, 0));
      let i = 0;
      for (const chunk of chunks) for (const s of chunk) pcm[i++] = Math.max(-1, Math.min(1, s)) * 32767;
      const bytes = new Uint8Array(pcm.buffer);
      let text = "";
      for (let j = 0; j < bytes.length; j += 0x8000) text += String.fromCharCode(...bytes.subarray(j, j + 0x8000));
      out[name] = { rate: this.context.sampleRate, t0, pcm: btoa(text) };
    }
    return out;
  }
}
