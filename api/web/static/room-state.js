// The room as the page sees it: a pure reducer over signaling messages (docs/protocol.md),
// and pure helpers deciding which controls to show. No DOM, no network: room.js is the shell.

export const ROLE_LABELS = { host: "Host", cohost: "Co-host", speaker: "Speaker", listener: "Listener" };
const RANK = { host: 3, cohost: 2, speaker: 1, listener: 0 };

export const END_REASONS = {
  ended_by_host: "The host ended the room.",
  host_left: "The host left and did not come back in time.",
};

/** Grants that follow a role, as the server derives them (core/rooms/roles.py). */
export function grantsFor(role) {
  return {
    subscribe: true,
    publish: role !== "listener",
    moderate: role === "host" || role === "cohost",
    record: role === "host",
  };
}

export const onStage = (role) => role !== "listener";
export const moderates = (role) => role === "host" || role === "cohost";

/** The state built from a `snapshot` message. */
export function fromSnapshot(snapshot) {
  const participants = new Map();
  for (const p of snapshot.participants) participants.set(p.user_id, { ...p });
  return {
    roomId: snapshot.room_id,
    you: snapshot.you,
    hostId: snapshot.host_id,
    participants,
    invited: new Set(snapshot.invited),
    recording: snapshot.recording,
    maxStage: snapshot.max_stage,
    grants: { ...snapshot.grants },
    speaking: [],
    markers: [],
    ended: null,
    lastError: null,
  };
}

function withParticipant(state, userId, change) {
  const current = state.participants.get(userId);
  if (!current) return state;
  const participants = new Map(state.participants);
  participants.set(userId, { ...current, ...change });
  return { ...state, participants };
}

function without(set, value) {
  const copy = new Set(set);
  copy.delete(value);
  return copy;
}

/** The next state after one server message (offers, acks and pongs change nothing). */
export function reduce(state, message) {
  if (message.type === "snapshot") return fromSnapshot(message);
  if (state === null) return null;
  switch (message.type) {
    case "participant_joined": {
      const participants = new Map(state.participants);
      participants.set(message.user_id, {
        user_id: message.user_id,
        display_name: message.display_name,
        role: message.role,
        hand_raised: false,
        muted: false,
      });
      return { ...state, participants };
    }
    case "participant_left": {
      const participants = new Map(state.participants);
      participants.delete(message.user_id);
      const next = {
        ...state,
        participants,
        invited: without(state.invited, message.user_id),
        speaking: state.speaking.filter((id) => id !== message.user_id),
      };
      if (message.user_id === state.you) next.ended = message.reason === "removed" ? "removed" : "left";
      return next;
    }
    case "role_changed": {
      const change = { role: message.role };
      // A role change lowers the hand and clears `muted` unless the user stays on stage.
      change.hand_raised = false;
      if (!onStage(message.role)) change.muted = false;
      let next = withParticipant(state, message.user_id, change);
      next = { ...next, invited: without(next.invited, message.user_id) };
      if (message.role === "host") next.hostId = message.user_id;
      if (message.user_id === state.you) next.grants = grantsFor(message.role);
      return next;
    }
    case "hand_raised":
      return withParticipant(state, message.user_id, { hand_raised: true });
    case "hand_lowered":
      return withParticipant(state, message.user_id, { hand_raised: false });
    case "invited":
      return { ...state, invited: new Set(state.invited).add(message.user_id) };
    case "invite_declined":
      return { ...state, invited: without(state.invited, message.user_id) };
    case "muted":
      return withParticipant(state, message.user_id, { muted: message.muted });
    case "recording":
      return { ...state, recording: message.on };
    case "marker_added":
      return { ...state, markers: [...state.markers, { at: message.at, title: message.title }] };
    case "active_speakers":
      return { ...state, speaking: [...message.user_ids] };
    case "room_ended":
      return { ...state, ended: message.reason, recording: false, speaking: [] };
    case "error":
      return { ...state, lastError: { code: message.code, message: message.message } };
    default:
      return state;
  }
}

/** The signed-in participant, or undefined once they left. */
export const me = (state) => state.participants.get(state.you);

/** Participants on stage (host, co-hosts, speakers), by rank then join order. */
export function stage(state) {
  return [...state.participants.values()]
    .filter((p) => onStage(p.role))
    .sort((a, b) => RANK[b.role] - RANK[a.role]);
}

/** Listeners; raised hands first (in join order), then the rest. */
export function audience(state) {
  const listeners = [...state.participants.values()].filter((p) => p.role === "listener");
  return [...listeners.filter((p) => p.hand_raised), ...listeners.filter((p) => !p.hand_raised)];
}

const action = (type, label, fields = {}) => ({ type, label, fields });

/** What the signed-in user may do to `target` (moderator controls); the server re-checks. */
export function actionsOn(state, target) {
  const self = me(state);
  if (!self || state.ended || target.user_id === self.user_id) return [];
  if (!moderates(self.role) || RANK[self.role] <= RANK[target.role]) return [];
  const on = { target: target.user_id };
  const actions = [];
  if (target.role === "listener") {
    if (target.hand_raised) actions.push(action("bring_up", "Bring up", on));
    else if (!state.invited.has(target.user_id)) actions.push(action("invite", "Invite to speak", on));
  } else {
    if (!target.muted) actions.push(action("mute", "Mute", { ...on, muted: true }));
    actions.push(action("move_to_audience", "Move to audience", on));
  }
  if (self.role === "host") {
    if (target.role === "cohost") actions.push(action("revoke_cohost", "Revoke co-host", on));
    else actions.push(action("make_cohost", "Make co-host", on));
    if (onStage(target.role)) actions.push(action("transfer_host", "Make host", on));
  }
  actions.push(action("remove", "Remove", on));
  return actions;
}

/** The signed-in user's own controls. */
export function ownActions(state) {
  const self = me(state);
  if (!self || state.ended) return [];
  const actions = [];
  if (self.role === "listener") {
    if (state.invited.has(self.user_id)) {
      actions.push(action("accept_invite", "Accept invitation"));
      actions.push(action("decline_invite", "Decline"));
    }
    actions.push(
      self.hand_raised ? action("lower_hand", "Lower hand") : action("raise_hand", "Raise hand"),
    );
  } else {
    actions.push(
      self.muted
        ? action("mute", "Unmute", { target: self.user_id, muted: false })
        : action("mute", "Mute", { target: self.user_id, muted: true }),
    );
    if (self.role !== "host") actions.push(action("step_down", "Step down"));
  }
  if (self.role === "host") {
    actions.push(
      state.recording
        ? action("set_recording", "Stop recording", { on: false })
        : action("set_recording", "Start recording", { on: true }),
    );
    actions.push(action("end_room", "End room"));
  }
  return actions;
}

/** Display names of the active speakers, loudest first. */
export function speakingNames(state) {
  return state.speaking
    .map((id) => state.participants.get(id))
    .filter(Boolean)
    .map((p) => p.display_name);
}
