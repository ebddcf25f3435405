// The Phone page's buttons on the JS client. Automation (calllab browser-call) sets
// window.calllab.next = {callId, headers} before a call and gets every event through
// window.calllabReport, when the page's driver defines it.
import { CALL_STATUS, LoginFailed, Session } from "./client.js";
import { Recorder } from "./recorder.js";

const $ = (id) => document.getElementById(id);
const KEYS = "123456789*0#";
const lab = await (await fetch("lab.json")).json();
const state = { session: null, call: null, recorder: null };
window.calllab = { next: null, recordings: null, videoSeen: null, state };

function report(event) {
  window.calllabReport?.(event);
}

function say(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

/** The event line: what the gateway said besides statuses (what became of the video). */
function note(text) {
  $("event").textContent = text;
}

function show(id, stream) {
  $(id).srcObject = stream;
  $(id).hidden = !stream;
}

/** Count the frames `video` shows, and their size, into `seen` (until it shows nothing). */
function countFrames(video, seen) {
  const shown = (_now, frame) => {
    if (!video.srcObject) return;
    Object.assign(seen, { frames: seen.frames + 1, width: frame.width, height: frame.height });
    video.requestVideoFrameCallback(shown);
  };
  video.requestVideoFrameCallback(shown);
}

const statusText = (e) => [e.status, e.sip_code, e.reason].filter((p) => p).join(" ");

function enable() {
  const call = state.call && !state.call.final ? state.call : null;
  const talking = call && [CALL_STATUS.ESTABLISHED, CALL_STATUS.HOLD].includes(call.status);
  $("login-button").disabled = !!call;
  $("voice-call").disabled = $("video-call").disabled = !state.session || !!call;
  $("hangup").disabled = !call;
  for (const id of ["hold", "transfer"]) $(id).disabled = !talking;
  for (const key of $("keypad").children) key.disabled = !talking;
  $("hold").textContent = call?.status === CALL_STATUS.HOLD ? "Unhold" : "Hold";
}

for (const key of KEYS) {
  const button = Object.assign(document.createElement("button"), { type: "button", textContent: key });
  button.dataset.key = key;
  button.onclick = () => {
    const how = state.call.sendDtmf(key);
    report({ kind: "dtmf", call_id: state.call.id, digit: key, how });
  };
  $("keypad").append(button);
}
for (const name of ["login", "auth_name", "domain", "outbound_proxy", "port"]) $(name).value = lab.account[name];

$("login-form").onsubmit = async (e) => {
  e.preventDefault();
  const account = Object.fromEntries(
    ["login", "auth_name", "password", "domain", "outbound_proxy", "port"].map((n) => [n, $(n).value.trim()]),
  );
  $("password").value = ""; // never kept in the page once sent
  state.session?.disconnect();
  state.session = null;
  say("logging in...");
  const session = new Session(`ws://${location.host}/`, account);
  try {
    await session.connect();
  } catch (err) {
    const code = err instanceof LoginFailed ? err.code : null;
    say(`login failed: ${code ?? ""} ${err.reason ?? err.message}`, true);
    report({ kind: "login", ok: false, code, reason: err.reason ?? err.message });
    enable();
    return;
  }
  state.session = session;
  say(`logged in as ${account.login}@${account.domain}`);
  report({ kind: "login", ok: true });
  enable();
};

async function dial(video) {
  const next = window.calllab.next ?? {};
  window.calllab.next = null;
  state.recorder = null;
  let call;
  try {
    call = state.session.createCall({
      callee: $("number").value,
      constraints: { audio: true, video },
      numberRule: lab.numbers,
      callId: next.callId,
      headers: next.headers,
    });
  } catch (err) {
    say(err.message, true);
    report({ kind: "refused", reason: err.message });
    return;
  }
  state.call = call;
  note("");
  window.calllab.videoSeen = { frames: 0, width: 0, height: 0 };
  call.addEventListener("status", (e) => {
    say(statusText(e.detail), [CALL_STATUS.FAILED, CALL_STATUS.BUSY].includes(e.detail.status));
    report({ kind: "status", call_id: call.id, ...e.detail });
    enable();
    if (call.final) {
      window.calllab.recordings = state.recorder?.stop() ?? Promise.resolve({});
      show("local-video", null);
      show("remote-video", null);
    }
  });
  call.addEventListener("event", (e) => {
    if (e.detail.type === "error") say(e.detail.reason, true);
    if (e.detail.event === "video") note(e.detail.reason);
    report({ kind: "message", call_id: call.id, json: JSON.stringify(e.detail) });
  });
  call.addEventListener("local", (e) => {
    const camera = e.detail.stream.getVideoTracks();
    if (camera.length) show("local-video", new MediaStream(camera));
  });
  call.addEventListener("track", (e) => {
    if (e.detail.track.kind !== "video") return;
    show("remote-video", new MediaStream([e.detail.track]));
    countFrames($("remote-video"), window.calllab.videoSeen);
  });
  call.addEventListener("offer", (e) => report({ kind: "offer", call_id: call.id, sdp: e.detail.sdp }));
  call.addEventListener("answer", (e) => report({ kind: "answer", call_id: call.id, sdp: e.detail.sdp }));
  // Made while the call starts, so it adds nothing to the setup time.
  const recorder = Recorder.create(lab.audio_rate);
  call.addEventListener("answer", async () => {
    $("remote-audio").srcObject = call.remoteStream; // Chromium feeds Web Audio a remote stream only once it plays
    state.recorder = await recorder;
    state.recorder.record("sent", call.localStream);
    state.recorder.record("heard", call.remoteStream);
  });
  await call.call();
  enable();
}

$("voice-call").onclick = () => dial(false);
$("video-call").onclick = () => dial(true);
$("hangup").onclick = () => state.call?.hangup();
$("hold").onclick = () => (state.call.status === CALL_STATUS.HOLD ? state.call.unhold() : state.call.hold());
$("transfer").onclick = () => {
  try {
    state.call.transfer($("transfer-target").value, lab.numbers);
  } catch (err) {
    say(err.message, true);
  }
};
enable();
