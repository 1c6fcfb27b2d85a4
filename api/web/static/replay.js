// The replay player page: GET /v1/replays/{id}, an <audio> element on the stable audio URL,
// waveform, speaker timeline, chapters, downloads and clips. Decisions live in
// replay-state.js; this file only reads the API and moves the DOM.
//
// Private replays: <audio>, <a download> and fetch-less loads cannot send the bearer token, so
// a signed-in page asks POST /v1/replays/{id}/media-token for a short-lived token scoped to
// this replay and adds it as ?media_token=... to the file URLs (docs/api.md, "Media tokens").
import * as api from "./api.js";
import * as state from "./replay-state.js";

const $ = (id) => document.getElementById(id);
const CLIP_POLL_MS = 1500;
const CLIP_POLL_LIMIT = 80;

const audio = $("audio");
const replayId = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
let detail = null;
let turns = [];
let peaks = [];
let mediaToken = null;
let refreshedAt = 0;
let speakerName = (id) => id;

function duration() {
  if (Number.isFinite(audio.duration) && audio.duration > 0) return audio.duration;
  return detail && detail.duration_seconds ? detail.duration_seconds : NaN;
}

function fileUrl(url, extra = {}) {
  return state.localUrl(url, { ...extra, media_token: mediaToken }, location.href);
}

/** Seek to `t` seconds (clamped to the replay) and redraw at once. */
function seek(t) {
  const end = duration();
  audio.currentTime = Math.max(0, Number.isFinite(end) ? Math.min(t, end) : t);
  render();
}

// -- drawing -----------------------------------------------------------------------------------

function drawWaveform() {
  const canvas = $("waveform");
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, width, height);
  const barWidth = 3 * ratio;
  const gap = 1 * ratio;
  const columns = Math.floor(width / (barWidth + gap));
  const heights = state.bars(peaks.length ? peaks : [0.02], columns);
  const end = duration();
  const playedX = Number.isFinite(end) && end > 0 ? (audio.currentTime / end) * width : 0;
  const styles = getComputedStyle(document.documentElement);
  const played = styles.getPropertyValue("--accent").trim() || "#2f6f4f";
  const rest = styles.getPropertyValue("--line").trim() || "#e3e1da";
  heights.forEach((peak, column) => {
    const x = column * (barWidth + gap);
    const h = Math.max(ratio, peak * (height - 4 * ratio));
    context.fillStyle = x < playedX ? played : rest;
    context.fillRect(x, (height - h) / 2, barWidth, h);
  });
}

function markCurrent(list, index) {
  [...list.children].forEach((item, i) => item.classList.toggle("current", i === index));
}

function render() {
  const t = audio.currentTime;
  const end = duration();
  $("current").textContent = state.formatTime(t);
  $("duration").textContent = state.formatTime(end);
  const seekBar = $("seek");
  if (Number.isFinite(end)) seekBar.max = String(end);
  if (document.activeElement !== seekBar) seekBar.value = String(t);
  $("play").textContent = audio.paused ? "Play" : "Pause";
  const playing = state.turnAt(turns, t);
  $("speaker-now").textContent = playing >= 0 ? speakerName(turns[playing].speaker_id) : "—";
  $("next-speaker").disabled = state.nextSpeakerStart(turns, t) === null;
  markCurrent($("turns"), playing);
  if (detail) markCurrent($("chapters"), state.chapterAt(detail.chapters, t));
  drawWaveform();
}

// -- the page's parts ---------------------------------------------------------------------------

function jumpButton(at, label, onClick) {
  return api.el(
    "button",
    { type: "button", onclick: onClick },
    api.el("span", { class: "at" }, state.formatTime(at)),
    api.el("span", { class: "label" }, label),
  );
}

function fillTurns() {
  turns = state.sortedTurns(detail.timeline);
  const items = turns.map((turn, index) =>
    api.el(
      "li",
      { dataset: { start: turn.start, index } },
      jumpButton(turn.start, speakerName(turn.speaker_id), () => seek(turn.start)),
    ),
  );
  if (items.length) $("turns").replaceChildren(...items);
}

function fillChapters() {
  const items = detail.chapters.map((chapter) =>
    api.el(
      "li",
      { dataset: { start: chapter.start_time } },
      jumpButton(chapter.start_time, chapter.title, () => seek(chapter.start_time)),
    ),
  );
  if (items.length) $("chapters").replaceChildren(...items);
}

function fillDownloads() {
  const offered = state.downloads(detail);
  $("downloads-panel").hidden = offered.length === 0;
  $("downloads").replaceChildren(
    ...offered.map((d) =>
      api.el(
        "li",
        {},
        api.el(
          "a",
          { href: fileUrl(d.url, { download: d.kind === "stems" ? null : 1 }), download: true },
          d.label,
        ),
        ` (${(d.size / 1e6).toFixed(1)} MB)`,
      ),
    ),
  );
}

function fillSpeeds() {
  $("speed").replaceChildren(
    ...state.SPEEDS.map((speed) => api.el("option", { value: speed }, `${speed}×`)),
  );
  $("speed").addEventListener("change", (event) => {
    const speed = Number(event.target.value);
    audio.playbackRate = speed;
    audio.defaultPlaybackRate = speed;
  });
}

async function loadWaveform() {
  if (!detail.waveform_url) return;
  try {
    const response = await fetch(fileUrl(detail.waveform_url), { credentials: "omit" });
    if (response.ok) peaks = state.peaksFrom(await response.json());
  } catch {
    peaks = []; // the player works without a waveform
  }
  drawWaveform();
}

async function fetchMediaToken() {
  if (!api.session()) return null;
  const path = `/v1/replays/${encodeURIComponent(replayId)}/media-token`;
  const issued = await api.request("POST", path);
  return issued.token;
}

// -- clips --------------------------------------------------------------------------------------

function clipMessage(...parts) {
  const target = $("clip-status");
  target.hidden = false;
  target.replaceChildren(...parts);
}

async function makeClip() {
  const button = $("make-clip");
  button.disabled = true;
  try {
    const path = `/v1/replays/${encodeURIComponent(replayId)}/clips`;
    let clip = await api.request("POST", path, {
      json: { start_seconds: Math.round(audio.currentTime * 100) / 100 },
    });
    clipMessage(`Rendering the clip from ${state.formatTime(clip.start_seconds)}…`);
    for (let i = 0; clip.status === "pending" && i < CLIP_POLL_LIMIT; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, CLIP_POLL_MS));
      clip = await api.request("GET", `/v1/clips/${encodeURIComponent(clip.id)}`);
    }
    if (clip.status === "ready") {
      const link = api.el("a", { id: "clip-link", href: state.localUrl(clip.page_url, {}, location.href) }, "Open the clip");
      clipMessage(`Clip ready (${clip.duration_seconds} s): `, link);
    } else {
      clipMessage(`The clip is ${clip.status}; look again later.`);
    }
  } catch (error) {
    api.showError($("error"), error);
    $("clip-status").hidden = true;
  } finally {
    button.disabled = false;
  }
}

// -- start --------------------------------------------------------------------------------------

function wireControls() {
  $("play").addEventListener("click", () => {
    if (audio.paused) {
      audio.play().catch((error) => api.showError($("error"), error));
    } else {
      audio.pause();
    }
  });
  $("seek").addEventListener("input", (event) => seek(Number(event.target.value)));
  $("waveform").addEventListener("click", (event) => {
    const box = event.currentTarget.getBoundingClientRect();
    seek(state.timeAtX(event.clientX - box.left, box.width, duration()));
  });
  $("next-speaker").addEventListener("click", () => {
    const next = state.nextSpeakerStart(turns, audio.currentTime);
    if (next !== null) seek(next);
  });
  for (const name of ["timeupdate", "play", "pause", "loadedmetadata", "seeked", "ratechange"]) {
    audio.addEventListener(name, render);
  }
  audio.addEventListener("error", recoverAudio);
  window.addEventListener("resize", drawWaveform);
}

async function recoverAudio() {
  // An expired media token fails the next range request: fetch a new one once a minute at
  // most and carry on from the same place.
  if (!mediaToken || Date.now() - refreshedAt < 60000) {
    api.showError($("error"), new Error("the audio could not be loaded"));
    return;
  }
  refreshedAt = Date.now();
  const at = audio.currentTime;
  const wasPlaying = !audio.paused;
  try {
    mediaToken = await fetchMediaToken();
    audio.src = fileUrl(state.audioUrl(detail));
    audio.currentTime = at;
    if (wasPlaying) await audio.play();
  } catch (error) {
    api.showError($("error"), error);
  }
}

async function start() {
  fillSpeeds();
  wireControls();
  try {
    detail = await api.request("GET", `/v1/replays/${encodeURIComponent(replayId)}`);
  } catch (error) {
    api.showError($("error"), error);
    $("status").textContent = error.status === 404 ? "Not found" : "Unavailable";
    return;
  }
  document.title = `Roomcast — ${detail.title}`;
  $("title").textContent = detail.title;
  $("status").textContent = detail.status === "ready" ? "Replay" : `Replay ${detail.status}`;
  speakerName = state.speakerNames(detail.speakers);
  try {
    mediaToken = await fetchMediaToken();
    refreshedAt = Date.now();
  } catch (error) {
    api.showError($("error"), error);
  }
  fillTurns();
  fillChapters();
  fillDownloads();
  const source = state.audioUrl(detail);
  if (source) {
    audio.src = fileUrl(source);
    $("play").disabled = false;
    $("seek").disabled = false;
  }
  const signedIn = Boolean(api.session());
  $("make-clip").disabled = !signedIn || !source || detail.status !== "ready";
  if (!signedIn) $("make-clip").textContent = "Sign in to make a clip";
  $("make-clip").addEventListener("click", makeClip);
  render();
  await loadWaveform();
  document.body.dataset.ready = "yes";
}

await start();
