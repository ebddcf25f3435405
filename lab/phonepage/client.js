// The seed's WebSDK on the browser's own WebRTC: the same shape as lab.client (Session,
// createCall, call.call(), call.hangup(), CALL_STATUS events) over the gateway's JSON
// protocol (lab/signaling.py: the same message types and field names).

export const CALL_STATUS = Object.freeze({
  PENDING: "PENDING",
  TRYING: "TRYING",
  RING: "RING",
  ESTABLISHED: "ESTABLISHED",
  HOLD: "HOLD",
  FINISH: "FINISH",
  FAILED: "FAILED",
  BUSY: "BUSY",
});
const FINAL = new Set([CALL_STATUS.FINISH, CALL_STATUS.FAILED, CALL_STATUS.BUSY]);
export const DTMF_DIGITS = "0123456789*#ABCD";
const CONNECT_TIMEOUT_MS = 10000; // WebSocket open plus SIP registration, as lab.client
const OFFER_TIMEOUT_MS = 10000; // the gateway's SDP answer
const ICE_GATHERING_TIMEOUT_MS = 3000;
// The lab measures the network and codec path, so the microphone's audio goes out as it is:
// Chromium's echo canceller, noise suppressor and gain control would change it first.
const MICROPHONE = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };
// A video call offers VP8 and H.264 (with their rtx), as lab.client's aiortc does: the codecs
// the gateway offers its SIP leg (lab/gateway/video.py); VP9 and AV1 would only lengthen the SDP.
const VIDEO_CODECS = new Set(["video/VP8", "video/H264", "video/rtx"]);

export class InvalidNumber extends Error {}

/** lab/numbers.py's rule, given as data by the page's server (lab.json "numbers"). */
export function normalizeNumber(text, rule) {
  const separators = new Set(rule.separators);
  const number = [...text.replace(/^ +| +$/g, "")].filter((c) => !separators.has(c)).join("");
  if (!new RegExp(`^(?:${rule.pattern})$`).test(number)) {
    const shown = text.length <= 40 ? text : text.slice(0, 40) + "...";
    throw new InvalidNumber(
      `'${shown}' is not a phone number: use digits, * and #, an optional leading +, ` +
        `at most ${rule.max_digits} of them`,
    );
  }
  return number;
}

/** The SDP with only its loopback (127.0.0.0/8) ICE candidates: the lab never sends
 * anywhere else, and Chromium offers every interface of the machine. */
export function loopbackOnly(sdp) {
  return sdp
    .split("\r\n")
    .filter((line) => !line.startsWith("a=candidate:") || /^127\./.test(line.split(" ")[4] ?? ""))
    .join("\r\n");
}

export function newCallId() {
  const t = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  const hex = [...crypto.getRandomValues(new Uint8Array(3))].map((b) => b.toString(16).padStart(2, "0"));
  return `${t}-${hex.join("")}`;
}

export class LoginFailed extends Error {
  constructor(code, reason) {
    super(`login failed: ${code} ${reason}`);
    this.code = code;
    this.reason = reason;
  }
}

/** A logged-in connection to the gateway (the seed's Session). */
export class Session extends EventTarget {
  constructor(url, account) {
    super();
    this.url = url;
    this.login = account.login;
    this.calls = new Map();
    this.ws = null;
    this._account = account; // dropped once sent: the password is kept nowhere after login
  }

  async connect(timeoutMs = CONNECT_TIMEOUT_MS) {
    const ws = new WebSocket(this.url);
    const opened = new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new LoginFailed(503, `gateway at ${this.url} is not reachable`));
    });
    await withTimeout(opened, timeoutMs, () => new LoginFailed(408, `gateway at ${this.url} did not open`));
    this.ws = ws;
    const reply = new Promise((resolve) => (this._login = resolve));
    ws.onmessage = (e) => this._receive(JSON.parse(e.data));
    ws.onclose = () => {
      this._login?.({ type: "failed", code: 503, reason: "connection to the gateway was lost" });
      for (const call of this.calls.values()) call._set(CALL_STATUS.FAILED, null, "connection to the gateway was lost");
    };
    const a = this._account;
    this._account = null;
    this.send({
      type: "connect",
      sip: {
        login: a.login,
        auth_name: a.auth_name || "",
        password: a.password,
        domain: a.domain,
        outbound_proxy: a.outbound_proxy || "",
        port: Number(a.port),
      },
    });
    const msg = await withTimeout(
      reply,
      timeoutMs,
      () => new LoginFailed(408, `gateway at ${this.url} did not confirm the login within ${timeoutMs / 1000} s`),
    );
    if (msg.type === "failed") {
      this.disconnect();
      throw new LoginFailed(msg.code, msg.reason);
    }
  }

  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) throw new Error("session is not connected");
    this.ws.send(JSON.stringify(msg));
  }

  _receive(msg) {
    if (msg.type === "connected" || msg.type === "failed") {
      this._login?.(msg);
      this._login = null;
      return;
    }
    const call = msg.call_id ? this.calls.get(msg.call_id) : null;
    if (call) call._message(msg);
    else if (msg.type === "error") this.dispatchEvent(new CustomEvent("error", { detail: msg }));
  }

  /** The seed's session.createCall({callee, visibleName, constraints}); InvalidNumber
   * before any SIP for anything that is not a phone number. */
  createCall({ callee, visibleName, constraints, numberRule, callId, headers }) {
    const call = new Call(this, {
      callee: normalizeNumber(callee, numberRule),
      visibleName: visibleName || this.login,
      constraints: constraints || { audio: true, video: false },
      callId: callId || newCallId(),
      headers: headers || {},
    });
    this.calls.set(call.id, call);
    return call;
  }

  disconnect() {
    this.ws?.close();
    this.ws = null;
  }
}

/** One call: a peer connection with the microphone (and the camera for a video call),
 * CALL_STATUS events as the gateway reports them ("status" on every one, and one named after
 * each status), "local" once the microphone and camera are open, "track" for each remote track. */
export class Call extends EventTarget {
  constructor(session, { callee, visibleName, constraints, callId, headers }) {
    super();
    this.session = session;
    this.callee = callee;
    this.visibleName = visibleName;
    this.constraints = constraints;
    this.id = callId;
    this.headers = headers;
    this.status = CALL_STATUS.PENDING;
    this.sipCode = null;
    this.reason = "";
    this.history = [];
    this.pc = null;
    this.localStream = null;
    this.remoteStream = new MediaStream();
    this.dtmfReceived = "";
  }

  get final() {
    return FINAL.has(this.status);
  }

  _set(status, sipCode = null, reason = "", t = Date.now() / 1000) {
    if (this.final) return;
    Object.assign(this, { status, sipCode, reason });
    const event = { status, sip_code: sipCode, reason, t };
    this.history.push(event);
    this.dispatchEvent(new CustomEvent("status", { detail: event }));
    this.dispatchEvent(new CustomEvent(status, { detail: event }));
    if (this.final) this._close();
  }

  /** Start the call (the seed's call.call()): microphone (and camera), offer, INVITE at
   * the gateway. */
  async call() {
    this._set(CALL_STATUS.PENDING);
    const video = !!this.constraints.video;
    try {
      this.localStream = await navigator.mediaDevices.getUserMedia({ audio: MICROPHONE, video });
    } catch (err) {
      this._set(CALL_STATUS.FAILED, null, video ? await devicesProblem(err) : microphoneProblem(err));
      return;
    }
    this.dispatchEvent(new CustomEvent("local", { detail: { stream: this.localStream } }));
    this.pc = new RTCPeerConnection({ iceServers: [] });
    for (const track of this.localStream.getTracks()) {
      const sender = this.pc.addTrack(track, this.localStream);
      if (track.kind === "video") {
        const codecs = RTCRtpSender.getCapabilities("video").codecs.filter((c) => VIDEO_CODECS.has(c.mimeType));
        this.pc.getTransceivers().find((t) => t.sender === sender).setCodecPreferences(codecs);
      }
    }
    this.pc.ontrack = (e) => {
      this.remoteStream.addTrack(e.track);
      this.dispatchEvent(new CustomEvent("track", { detail: { track: e.track } }));
    };
    const gathered = loopbackGathered(this.pc);
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await gathered;
    const sdp = loopbackOnly(this.pc.localDescription.sdp);
    if (!/^a=candidate:/m.test(sdp)) {
      this._set(CALL_STATUS.FAILED, null, "the browser offers no loopback ICE candidate (Chromium needs --allow-loopback-in-peer-connection)");
      return;
    }
    const answer = new Promise((resolve) => (this._answer = resolve));
    this.dispatchEvent(new CustomEvent("offer", { detail: { sdp } }));
    try {
      this.session.send({
        type: "call",
        call_id: this.id,
        callee: this.callee,
        visible_name: this.visibleName,
        sdp,
        headers: this.headers,
        jitter_buffer: "",
      });
    } catch (err) {
      this._set(CALL_STATUS.FAILED, null, `gateway connection lost: ${err.message}`);
      return;
    }
    let remote;
    try {
      remote = await withTimeout(answer, OFFER_TIMEOUT_MS, () => new Error("timeout"));
    } catch {
      this._set(CALL_STATUS.FAILED, null, `gateway did not answer the WebRTC offer within ${OFFER_TIMEOUT_MS / 1000} s`);
      return;
    }
    if (remote === null || this.final) return;
    await this.pc.setRemoteDescription({ type: "answer", sdp: loopbackOnly(remote) });
    this.dispatchEvent(new CustomEvent("answer", { detail: { sdp: remote } }));
  }

  _message(msg) {
    switch (msg.type) {
      case "sdp":
        this._answer?.(msg.sdp);
        break;
      case "status":
        this._set(msg.status, msg.sip_code, msg.reason, msg.t);
        if (this.final) this._answer?.(null);
        break;
      case "event":
      case "error":
        if (msg.event === "dtmf") this.dtmfReceived += msg.digit;
        this.dispatchEvent(new CustomEvent("event", { detail: msg })); // as the gateway sent it
        break;
    }
  }

  /** DTMF in the media (RFC 4733) by the browser's RTCDTMFSender when the gateway took
   * telephone-event; else the gateway sends them for the page. Returns how they went. */
  sendDtmf(digits) {
    if (![...digits].every((d) => DTMF_DIGITS.includes(d)) || !digits) {
      throw new Error(`DTMF digits must be among ${DTMF_DIGITS}, not '${digits}'`);
    }
    const dtmf = this.pc?.getSenders().find((s) => s.track?.kind === "audio")?.dtmf;
    if (dtmf?.canInsertDTMF) {
      dtmf.insertDTMF(dtmf.toneBuffer + digits, 160, 90); // a new call replaces what is still queued
      return "rtcdtmfsender";
    }
    this.session.send({ type: "dtmf", call_id: this.id, digits, method: "rfc4733" });
    return "gateway";
  }

  hold() {
    this.session.send({ type: "hold", call_id: this.id });
  }

  unhold() {
    this.session.send({ type: "unhold", call_id: this.id });
  }

  transfer(number, numberRule) {
    this.session.send({ type: "transfer", call_id: this.id, target: normalizeNumber(number, numberRule) });
  }

  /** The seed's call.hangup(): CANCEL while ringing, BYE once established. */
  hangup() {
    if (this.final) return;
    try {
      this.session.send({ type: "hangup", call_id: this.id });
    } catch {
      this._set(CALL_STATUS.FAILED, null, "connection to the gateway was lost");
    }
  }

  _close() {
    this.pc?.close();
    for (const track of this.localStream?.getTracks() ?? []) track.stop();
  }
}

function microphoneProblem(err) {
  if (err.name === "NotAllowedError") return "microphone access was denied: allow it for this page and call again";
  if (err.name === "NotFoundError") return "no microphone found: connect one and call again";
  if (err.name === "NotReadableError") return "the microphone is in use by another program";
  if (!navigator.mediaDevices) return "this page has no microphone access (it must be served over http://127.0.0.x or https)";
  return `microphone: ${err.name}: ${err.message}`;
}

/** A video call's getUserMedia failure: which of camera and microphone is denied or missing. */
async function devicesProblem(err) {
  if (err.name === "NotAllowedError") return "camera and microphone access was denied: allow them for this page and call again";
  if (err.name === "NotFoundError") {
    const kinds = new Set((await navigator.mediaDevices.enumerateDevices()).map((d) => d.kind));
    const missing = [["videoinput", "camera"], ["audioinput", "microphone"]].filter(([k]) => !kinds.has(k));
    const names = missing.map(([, name]) => name).join(" and ") || "camera";
    return `no ${names} found: connect ${missing.length > 1 ? "them" : "one"} and call again`;
  }
  if (err.name === "NotReadableError") return "the camera or the microphone is in use by another program";
  if (!navigator.mediaDevices) return "this page has no camera access (it must be served over http://127.0.0.x or https)";
  return `camera and microphone: ${err.name}: ${err.message}`;
}

/** Resolves once a loopback candidate is in the local description (the only kind the lab
 * uses: no need to wait for the machine's other interfaces), or gathering is over. */
function loopbackGathered(pc) {
  return new Promise((resolve) => {
    pc.addEventListener("icecandidate", (e) => {
      if (!e.candidate || /^127\./.test(e.candidate.address ?? "")) resolve();
    });
    setTimeout(resolve, ICE_GATHERING_TIMEOUT_MS); // what was gathered by then is offered
  });
}

function withTimeout(promise, ms, error) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => (timer = setTimeout(() => reject(error()), ms))),
  ]).finally(() => clearTimeout(timer));
}
