// The replay player's decisions as pure functions: who speaks at a time, where "next speaker"
// jumps, which chapter is current, waveform peaks, time labels. No DOM, no network:
// replay.js is the shell. Times are seconds from the start of the replay, as in
// GET /v1/replays/{id} (timeline turns {speaker_id, start, end}, chapters {start_time, title}).

/** Playback speeds the player offers, in menu order. */
export const SPEEDS = [1, 1.25, 1.5, 2];

/** A turn "starts after" t only past this margin, so pressing "Next speaker" right at a turn's
 * start (where the last jump landed) moves on instead of staying. */
const EPSILON = 0.05;

/** Turns sorted by start (the API sends them sorted; sorting again keeps the rest honest). */
export function sortedTurns(turns) {
  return [...turns].sort((a, b) => a.start - b.start || a.end - b.end);
}

/** Index of the turn playing at `t` (start ≤ t < end), or -1 in a pause. */
export function turnAt(turns, t) {
  let found = -1;
  turns.forEach((turn, index) => {
    if (turn.start <= t && t < turn.end) found = index;
  });
  return found;
}

/** Who holds the floor at `t`: the speaker of the turn playing, else of the last turn that
 * started before `t` (a pause belongs to whoever spoke last); null before anyone spoke. */
export function floorHolder(turns, t) {
  const playing = turnAt(turns, t);
  if (playing >= 0) return turns[playing].speaker_id;
  let holder = null;
  for (const turn of sortedTurns(turns)) if (turn.start <= t) holder = turn.speaker_id;
  return holder;
}

/** Where "Next speaker" jumps from `t`: the start of the first later turn by someone other
 * than the floor holder, or null when nobody else speaks after `t`. */
export function nextSpeakerStart(turns, t) {
  const holder = floorHolder(turns, t);
  for (const turn of sortedTurns(turns)) {
    if (turn.start > t + EPSILON && turn.speaker_id !== holder) return turn.start;
  }
  return null;
}

/** Index of the chapter in force at `t` (the last one started), or -1 before the first. */
export function chapterAt(chapters, t) {
  let found = -1;
  chapters.forEach((chapter, index) => {
    if (chapter.start_time <= t + EPSILON && (found < 0 || chapter.start_time >= chapters[found].start_time)) {
      found = index;
    }
  });
  return found;
}

/** Speaking names by id, from the detail's `speakers` (unknown ids show as themselves). */
export function speakerNames(speakers) {
  const names = new Map();
  for (const speaker of speakers) names.set(speaker.id, speaker.name);
  return (id) => names.get(id) ?? id;
}

/** `m:ss` (or `h:mm:ss`) for a number of seconds; `--:--` for an unknown duration. */
export function formatTime(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "--:--";
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = String(whole % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** Peaks in 0..1 from waveform JSON: BBC audiowaveform's layout ({bits, data: [min, max, ...]},
 * what post-production writes) or a plain {peaks: [...]} list. Anything else gives []. */
export function peaksFrom(document) {
  if (!document || typeof document !== "object") return [];
  if (Array.isArray(document.peaks)) {
    return document.peaks.map((v) => clamp01(Math.abs(Number(v) || 0)));
  }
  if (!Array.isArray(document.data)) return [];
  const full = 2 ** ((Number(document.bits) || 8) - 1);
  const channels = Math.max(1, Number(document.channels) || 1);
  const stride = 2 * channels; // min, max per channel per pixel
  const peaks = [];
  for (let i = 0; i + 1 < document.data.length; i += stride) {
    let peak = 0;
    for (let c = 0; c < stride; c += 1) {
      peak = Math.max(peak, Math.abs(Number(document.data[i + c]) || 0) / full);
    }
    peaks.push(clamp01(peak));
  }
  return peaks;
}

/** Bars to draw: `peaks` resampled to `columns` (max of each bucket), each 0..1. */
export function bars(peaks, columns) {
  if (!peaks.length || columns <= 0) return [];
  const out = [];
  for (let c = 0; c < columns; c += 1) {
    const from = Math.floor((c * peaks.length) / columns);
    const to = Math.max(from + 1, Math.floor(((c + 1) * peaks.length) / columns));
    let peak = 0;
    for (let i = from; i < to && i < peaks.length; i += 1) peak = Math.max(peak, peaks[i]);
    out.push(peak);
  }
  return out;
}

/** The time a click at `x` of a `width`-wide waveform stands for. */
export function timeAtX(x, width, duration) {
  if (!(width > 0) || !Number.isFinite(duration) || duration <= 0) return 0;
  return clamp01(x / width) * duration;
}

/** Which outputs the page offers as downloads (hosts and co-hosts), in a fixed order. */
export function downloads(detail) {
  const wanted = [
    ["mp3", "MP3"],
    ["m4a", "M4A"],
    ["stems", "Stems (zip)"],
  ];
  const byKind = new Map(detail.outputs.map((o) => [o.kind, o]));
  if (!detail.can_download_stems) return [];
  return wanted.filter(([kind]) => byKind.has(kind)).map(([kind, label]) => ({
    kind,
    label,
    url: byKind.get(kind).url,
    size: byKind.get(kind).size,
  }));
}

/** The URL the audio element plays: the MP3 if there is one, else the M4A; null without. */
export function audioUrl(detail) {
  for (const kind of ["mp3", "m4a"]) {
    const output = detail.outputs.find((o) => o.kind === kind);
    if (output) return output.url;
  }
  return null;
}

/** `url` as a same-origin path (the API announces absolute public URLs; the page's policy
 * only lets media come from its own origin), with `params` added to the query. */
export function localUrl(url, params = {}, base = "http://localhost/") {
  const parsed = new URL(url, base);
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined) parsed.searchParams.set(name, String(value));
  }
  return parsed.pathname + parsed.search;
}

function clamp01(value) {
  return Math.min(1, Math.max(0, value));
}
