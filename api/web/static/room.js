// The room page's shell: join token → signaling WebSocket → answer the server's offers with an
// RTCPeerConnection; render the state kept by room-state.js. The server always offers (m-line
// 0 is our mic; the others carry each other speaker, or the room mix for listeners) and we
// answer; ICE candidates travel inside the SDP (gathering completes before we answer).
import * as api from "./api.js";
import * as rs from "./room-state.js";

const $ = (id) => document.getElementById(id);
const roomId = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
const GATHER_TIMEOUT_MS = 3000;
const PING_MS = 20000;

const CLOSE_REASONS = {
  4001: ["Cannot join", "Your join token was refused. Reload the page to get a new one."],
  4003: ["Removed", "A moderator removed you from this room."],
  4004: ["Room not found", "This room is not live."],
  4008: ["Disconnected", "Too many messages: the server closed the connection."],
  4009: ["Joined elsewhere", "You joined this room from another tab or device."],
  4010: ["This room has ended", ""],
};

let state = null;
let join = null;
let ws = null;
let pc = null;
let mic = null;
let offers = Promise.resolve();
let requests = 0;
let pingTimer = null;
const audioByMid = new Map();

// Read-only view for tests and debugging (never used by the page itself).
const debug = {
  negotiations: 0,
  closeCode: null,
  errors: [],
  get state() { return state; },
  get connectionState() { return pc ? pc.connectionState : "new"; },
  get signaling() { return ws ? ws.readyState : -1; },
  /** Room streams received now (a speaker's id, or "mix"), in m-line order. */
  get streams() {
    if (!pc) return [];
    return pc
      .getTransceivers()
      .filter((t) => ["recvonly", "sendrecv"].includes(t.currentDirection) && audioByMid.has(t.mid))
      .map((t) => audioByMid.get(t.mid).dataset.stream);
  },
  async stats() {
    if (!pc) return [];
    const report = await pc.getStats();
    return [...report.values()].filter((s) => s.type === "outbound-rtp" || s.type === "inbound-rtp");
  },
};
window.roomcast = debug;

function send(type, fields = {}) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  const message = { type, ...fields };
  if (type !== "answer" && type !== "ping") message.request_id = `r${++requests}`;
  ws.send(JSON.stringify(message));
}

function showEnded(title, text) {
  $("ended-title").textContent = title;
  $("ended-text").textContent = text;
  $("ended").hidden = false;
  $("leave").disabled = true;
  document.body.dataset.ended = "yes";
  stopMedia();
}

function stopMedia() {
  clearInterval(pingTimer);
  if (pc) pc.close();
  pc = null;
  if (mic) for (const track of mic.getTracks()) track.stop();
  mic = null;
  for (const audio of audioByMid.values()) audio.srcObject = null;
}

function setStatus(text) {
  $("status").textContent = text;
}

// -- media ---------------------------------------------------------------------------------

async function microphone() {
  if (!mic) {
    // No processing: echo cancellation and AGC would reshape the audio the room records.
    mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  }
  return mic.getAudioTracks()[0];
}

function peerConnection() {
  if (pc) return pc;
  pc = new RTCPeerConnection({ iceServers: join.ice_servers || [], bundlePolicy: "max-bundle" });
  pc.addEventListener("track", (event) => {
    const mid = event.transceiver.mid;
    const stream = event.streams[0] || new MediaStream([event.track]);
    let audio = audioByMid.get(mid);
    if (!audio) {
      audio = audioElement(mid);
      audioByMid.set(mid, audio);
    }
    audio.dataset.stream = stream.id;
    audio.srcObject = stream;
    audio.play().catch((error) => debug.errors.push(`autoplay: ${error.message}`));
  });
  pc.addEventListener("connectionstatechange", () => {
    document.body.dataset.media = pc ? pc.connectionState : "closed";
    render();
  });
  return pc;
}

function audioElement(mid) {
  const audio = document.createElement("audio");
  audio.autoplay = true;
  audio.dataset.mid = mid;
  $("audio").append(audio);
  return audio;
}

function gathered(connection) {
  if (connection.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (connection.iceGatheringState !== "complete") return;
      connection.removeEventListener("icegatheringstatechange", done);
      resolve();
    };
    connection.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_TIMEOUT_MS); // answer with what we have rather than never
  });
}

async function answerOffer(offer) {
  const connection = peerConnection();
  await connection.setRemoteDescription({ type: "offer", sdp: offer.sdp });
  const [mine] = connection.getTransceivers();
  if (mine) {
    let track = null;
    if (state && state.grants.publish) {
      try {
        track = await microphone();
        const self = rs.me(state);
        track.enabled = !(self && self.muted);
      } catch (error) {
        api.showError($("error"), { code: "microphone_unavailable", message: error.message });
      }
    }
    await mine.sender.replaceTrack(track);
    mine.direction = track ? "sendrecv" : "recvonly";
  }
  await connection.setLocalDescription(await connection.createAnswer());
  await gathered(connection);
  send("answer", { sdp: connection.localDescription.sdp, negotiation: offer.negotiation });
  debug.negotiations += 1;
}

// -- signaling -----------------------------------------------------------------------------

function onMessage(event) {
  let message;
  try {
    message = JSON.parse(event.data);
  } catch {
    return;
  }
  if (message.type === "offer") {
    offers = offers
      .then(() => answerOffer(message))
      .catch((error) => {
        debug.errors.push(`negotiation: ${error.message}`);
        api.showError($("error"), { code: "negotiation_failed", message: error.message });
      });
    return;
  }
  const before = state;
  state = rs.reduce(state, message);
  if (message.type === "error") api.showError($("error"), message);
  if (message.type === "ack") api.showError($("error"), null);
  if (state && message.type === "muted" && message.user_id === state.you && mic) {
    for (const track of mic.getAudioTracks()) track.enabled = !message.muted;
  }
  if (state && before && rs.onStage(rs.me(before)?.role ?? "listener") && !state.grants.publish) {
    // Moved back to the audience: stop capturing (the next offer stops sending).
    if (mic) for (const track of mic.getTracks()) track.stop();
    mic = null;
  }
  render();
  if (state && state.ended) {
    const reason = state.ended;
    if (reason === "removed") showEnded(...CLOSE_REASONS[4003]);
    else if (reason !== "left") showEnded("This room has ended", rs.END_REASONS[reason] || reason);
  }
}

function onClose(event) {
  debug.closeCode = event.code;
  clearInterval(pingTimer);
  if (state && state.ended) return;
  const known = CLOSE_REASONS[event.code];
  if (known) {
    showEnded(known[0], known[1]);
  } else if (event.code !== 1000) {
    setStatus(`Disconnected (${event.code}). Reload to rejoin.`);
    stopMedia();
  }
}

async function connect() {
  if (!api.session()) {
    $("signed-out").hidden = false;
    $("sign-in-link").href = `/?next=${encodeURIComponent(location.pathname)}`;
    setStatus("Signed out");
    return;
  }
  try {
    const room = await api.getRoom(roomId);
    $("title").textContent = room.title;
    document.title = `Roomcast — ${room.title}`;
    $("description").textContent = room.description;
    if (room.status === "ended" || room.status === "interrupted") {
      showEnded("This room has ended", "");
      return;
    }
    join = await api.joinToken(roomId);
  } catch (error) {
    if (error.code === "room_ended") showEnded("This room has ended", "");
    else if (error.code === "removed_from_room") showEnded(...CLOSE_REASONS[4003]);
    else api.showError($("error"), error);
    setStatus("Not joined");
    return;
  }
  ws = new WebSocket(`${join.ws_url}?token=${encodeURIComponent(join.token)}`);
  ws.addEventListener("open", () => {
    setStatus("Connected");
    $("leave").disabled = false;
    pingTimer = setInterval(() => send("ping"), PING_MS);
  });
  ws.addEventListener("message", onMessage);
  ws.addEventListener("close", onClose);
}

// -- rendering -----------------------------------------------------------------------------

function actionButton(action) {
  return api.el(
    "button",
    {
      type: "button",
      class: action.type === "remove" || action.type === "end_room" ? "danger" : "secondary",
      dataset: { action: action.type },
      onclick: () => send(action.type, action.fields),
    },
    action.label,
  );
}

function personCard(person) {
  const speaking = state.speaking.includes(person.user_id);
  const initials = person.display_name
    .split(/\s+/)
    .map((word) => word[0] || "")
    .join("")
    .slice(0, 2)
    .toUpperCase();
  return api.el(
    "li",
    {
      class: ["person", speaking ? "speaking" : "", person.user_id === state.you ? "me" : ""]
        .filter(Boolean)
        .join(" "),
      dataset: { userId: person.user_id, role: person.role },
    },
    api.el("span", { class: "avatar", "aria-hidden": "true" }, initials),
    api.el(
      "span",
      { class: "name" },
      person.display_name,
      person.user_id === state.you ? " (you)" : "",
    ),
    api.el("span", { class: `role ${person.role}` }, rs.ROLE_LABELS[person.role] || person.role),
    person.muted ? api.el("span", { class: "flag muted", title: "Muted" }, "muted") : null,
    person.hand_raised ? api.el("span", { class: "flag hand", title: "Hand raised" }, "✋") : null,
    state.invited.has(person.user_id) ? api.el("span", { class: "flag" }, "invited") : null,
    api.el("span", { class: "actions" }, rs.actionsOn(state, person).map(actionButton)),
  );
}

function render() {
  if (!state) return;
  const self = rs.me(state);
  $("rec").hidden = !state.recording;
  const stage = rs.stage(state);
  const audience = rs.audience(state);
  $("stage").replaceChildren(...stage.map(personCard));
  $("audience").replaceChildren(...audience.map(personCard));
  $("stage-count").textContent = `${stage.length} / ${state.maxStage}`;
  $("audience-count").textContent = String(audience.length);
  const names = rs.speakingNames(state);
  $("speaking").textContent = names.length ? `Speaking: ${names.join(", ")}` : "";
  if (self) {
    $("me").hidden = false;
    $("my-role").textContent = rs.ROLE_LABELS[self.role].toLowerCase();
    $("my-muted").hidden = !self.muted;
    const own = rs.ownActions(state).filter((a) => !a.type.endsWith("_invite"));
    $("my-actions").replaceChildren(...own.map(actionButton));
    $("invitation").hidden = !(self.role === "listener" && state.invited.has(self.user_id));
  }
  const media = pc ? pc.connectionState : "new";
  $("mic-state").textContent = mic && state.grants.publish ? `Microphone on (${media}).` : "";
  if (ws && ws.readyState === WebSocket.OPEN) {
    setStatus(media === "connected" ? "Live" : "Connected");
  }
  document.body.dataset.role = self ? self.role : "";
}

$("accept-invite").addEventListener("click", () => send("accept_invite"));
$("decline-invite").addEventListener("click", () => send("decline_invite"));
$("leave").addEventListener("click", () => {
  send("leave");
  stopMedia();
  if (ws) ws.close(1000);
  location.assign("/");
});

await connect();
