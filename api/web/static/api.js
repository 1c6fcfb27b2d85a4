// Roomcast web client: the signed-in session, JSON API calls and small DOM helpers.
// Plain ES module, no build step. Every call goes through `request`, which turns the API's
// error shape {"error": {"code", "message"}} into an ApiError with the stable code.

const SESSION_KEY = "roomcast.session";

/** An API error: HTTP status, stable machine-readable code, human message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/** The stored session {accessToken, expiresAt, email} or null when signed out or expired. */
export function session() {
  let stored;
  try {
    stored = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
  } catch {
    stored = null;
  }
  if (!stored || typeof stored.accessToken !== "string") return null;
  if (typeof stored.expiresAt === "number" && stored.expiresAt <= Date.now()) {
    signOut();
    return null;
  }
  return stored;
}

export function saveSession(accessToken, expiresInSeconds, email) {
  const expiresAt = Date.now() + Math.max(0, expiresInSeconds - 30) * 1000;
  localStorage.setItem(SESSION_KEY, JSON.stringify({ accessToken, expiresAt, email }));
}

export function signOut() {
  localStorage.removeItem(SESSION_KEY);
}

/** Call the JSON API. `json` sends a JSON body, `form` an urlencoded one. */
export async function request(method, path, { json, form } = {}) {
  const headers = { Accept: "application/json" };
  const current = session();
  if (current) headers.Authorization = `Bearer ${current.accessToken}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body });
  } catch (error) {
    throw new ApiError(0, "network_error", `cannot reach the server (${error.message})`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    const code = error.code || `http_${response.status}`;
    if (code === "token_expired" || code === "invalid_token") signOut();
    throw new ApiError(response.status, code, error.message || response.statusText);
  }
  return data;
}

export async function register(email, password, displayName) {
  return request("POST", "/v1/auth/register", {
    json: { email, password, display_name: displayName },
  });
}

/** OAuth2 password grant; stores the session. */
export async function signIn(email, password) {
  const token = await request("POST", "/v1/auth/token", {
    form: { username: email, password },
  });
  saveSession(token.access_token, token.expires_in, email);
  return token;
}

export const me = () => request("GET", "/v1/me");
export const listRooms = () => request("GET", "/v1/rooms");
export const getRoom = (roomId) => request("GET", `/v1/rooms/${encodeURIComponent(roomId)}`);
export const createRoom = (fields) => request("POST", "/v1/rooms", { json: fields });
export const endRoom = (roomId) =>
  request("POST", `/v1/rooms/${encodeURIComponent(roomId)}/end`);
/** A join token: {token, ws_url, ice_servers, expires_in, role, grants}. */
export const joinToken = (roomId) =>
  request("POST", `/v1/rooms/${encodeURIComponent(roomId)}/token`);

/** Build an element: el("a", {href: "/", class: "x"}, "text", child...). Text is never HTML. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Show an error (ApiError or other) in `target`, or clear it with null. */
export function showError(target, error) {
  target.replaceChildren();
  target.hidden = !error;
  if (!error) return;
  const code = error.code ? el("code", {}, error.code) : null;
  target.append(code || "", code ? " " : "", error.message || String(error));
}

/** A short local date and time for an ISO 8601 string. */
export function formatWhen(iso) {
  if (!iso) return "";
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  return when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}
