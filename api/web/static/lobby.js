// The lobby: sign in / register, live and scheduled rooms, create a room.
import * as api from "./api.js";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 10000;

function nextPage() {
  // Only same-site paths: an open redirect would let a link send users anywhere.
  const next = new URLSearchParams(location.search).get("next");
  return next && next.startsWith("/") && !next.startsWith("//") ? next : null;
}

function roomItem(room) {
  const badges = [
    room.status === "live" ? api.el("span", { class: "badge live" }, "LIVE") : null,
    room.record ? api.el("span", { class: "badge rec", title: "Recorded" }, "REC") : null,
    room.is_private ? api.el("span", { class: "badge" }, "private") : null,
  ];
  const when =
    room.status === "scheduled"
      ? api.el("span", { class: "when" }, api.formatWhen(room.scheduled_start))
      : null;
  return api.el(
    "li",
    { class: "room", dataset: { roomId: room.id } },
    api.el("a", { href: `/rooms/${encodeURIComponent(room.id)}` }, room.title),
    " ",
    badges,
    when,
    room.description ? api.el("p", { class: "description" }, room.description) : null,
  );
}

function fill(list, rooms, emptyText) {
  list.replaceChildren(
    ...(rooms.length ? rooms.map(roomItem) : [api.el("li", { class: "empty" }, emptyText)]),
  );
}

function replayItem(replay) {
  const minutes = replay.duration_seconds ? Math.round(replay.duration_seconds / 60) : null;
  return api.el(
    "li",
    { class: "room replay", dataset: { replayId: replay.id } },
    api.el("a", { href: `/replays/${encodeURIComponent(replay.id)}` }, replay.title),
    " ",
    replay.status === "processing" ? api.el("span", { class: "badge" }, "processing") : null,
    replay.is_private ? api.el("span", { class: "badge" }, "private") : null,
    api.el(
      "span",
      { class: "when" },
      api.formatWhen(replay.ended_at || replay.created_at),
      minutes !== null ? ` · ${minutes} min` : "",
    ),
  );
}

async function refreshReplays() {
  const { replays } = await api.request("GET", "/v1/replays?limit=20");
  $("past-rooms").replaceChildren(
    ...(replays.length
      ? replays.map(replayItem)
      : [api.el("li", { class: "empty" }, "No replays yet.")]),
  );
}

async function refreshRooms() {
  try {
    const { rooms } = await api.listRooms();
    fill($("live-rooms"), rooms.filter((r) => r.status === "live"), "No live rooms right now.");
    fill(
      $("scheduled-rooms"),
      rooms.filter((r) => r.status === "scheduled"),
      "Nothing scheduled.",
    );
    await refreshReplays();
  } catch (error) {
    api.showError($("error"), error);
    if (error.code === "token_expired" || error.code === "invalid_token") await showAccount();
  }
}

async function showAccount() {
  const signedIn = api.session();
  let user = null;
  if (signedIn) {
    try {
      user = await api.me();
    } catch (error) {
      if (error.status !== 401) api.showError($("error"), error);
    }
  }
  $("auth").hidden = Boolean(user);
  $("create").hidden = !user;
  $("sign-out").hidden = !user;
  $("whoami").textContent = user ? `Signed in as ${user.display_name}` : "";
  document.body.dataset.signedIn = user ? "yes" : "no";
  return user;
}

function fieldsOf(form) {
  return Object.fromEntries(new FormData(form).entries());
}

async function afterSignIn() {
  api.showError($("error"), null);
  const next = nextPage();
  if (next) {
    location.assign(next);
    return;
  }
  await showAccount();
  await refreshRooms();
}

function onSubmit(form, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await action(fieldsOf(form), form);
    } catch (error) {
      api.showError($("error"), error);
    } finally {
      button.disabled = false;
    }
  });
}

onSubmit($("sign-in-form"), async ({ email, password }) => {
  await api.signIn(email, password);
  await afterSignIn();
});

onSubmit($("register-form"), async ({ email, password, display_name }) => {
  await api.register(email, password, display_name);
  await api.signIn(email, password);
  await afterSignIn();
});

onSubmit($("create-form"), async (fields, form) => {
  const body = {
    title: fields.title,
    description: fields.description || "",
    record: form.elements.record.checked,
    is_private: form.elements.is_private.checked,
  };
  if (fields.scheduled_start) {
    // datetime-local is local time without an offset; the API wants one.
    body.scheduled_start = new Date(fields.scheduled_start).toISOString();
  }
  const room = await api.createRoom(body);
  form.reset();
  api.showError($("error"), null);
  if (room.status === "live") {
    location.assign(`/rooms/${encodeURIComponent(room.id)}`);
  } else {
    await refreshRooms();
  }
});

$("sign-out").addEventListener("click", async () => {
  api.signOut();
  await showAccount();
  await refreshRooms();
});

if ((await showAccount()) && nextPage()) {
  location.assign(nextPage());
} else {
  await refreshRooms();
  setInterval(refreshRooms, REFRESH_MS);
}
