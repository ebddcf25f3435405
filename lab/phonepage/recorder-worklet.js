// Runs on the audio thread: hands each 128-sample block of its input to the page.
class Tap extends AudioWorkletProcessor {
  process(inputs) {
    const channel = inputs[0][0];
    this.port.postMessage(channel ? channel.slice() : new Float32Array(128));
    return true;
  }
}
registerProcessor("tap", Tap);
