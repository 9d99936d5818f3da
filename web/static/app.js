// The demo chat page: talks to the bridge's client API like the OpenMeet
// frontend would. One EventSource for all rooms; on any error it asks for a
// new single-use ticket and reconnects with the last stream position, so
// nothing is missed and nothing is shown twice.
"use strict";

const API = "/_openmeet/client/v1";
const state = {
  token: "", me: "", rooms: [], current: null, lastEventId: "",
  source: null, retry: 500, byEventId: new Map(), byTxnId: new Map(), typing: new Map(),
};
const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const resp = await fetch(API + path, {
    method, headers: { Authorization: "Bearer " + state.token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok && resp.status !== 202) throw new Error(data.error || resp.statusText);
  return data;
}

function txnId() { return "web-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 8); }

async function signIn(token) {
  state.token = token;
  sessionStorage.setItem("openmeet_token", token);
  const who = await api("GET", "/whoami");
  state.me = who.user_id;
  $("whoami").textContent = who.displayname + " (" + who.tenant + ")";
  $("signin").hidden = true;
  $("app").hidden = false;
  await loadRooms();
  connect();
}

async function loadRooms() {
  const { rooms } = await api("GET", "/rooms");
  state.rooms = rooms;
  const list = $("rooms");
  list.replaceChildren(...rooms.map((room) => {
    const li = document.createElement("li");
    li.textContent = room.name + (room.unread ? " (" + (room.unread >= 100 ? "99+" : room.unread) + ")" : "");
    li.dataset.roomId = room.room_id;
    li.onclick = () => openRoom(room);
    return li;
  }));
  if (!state.current && rooms.length) openRoom(rooms[0]);
}

function roomPath(room) { return "/rooms/" + room.kind + "s/" + encodeURIComponent(room.slug); }

async function openRoom(room) {
  state.current = room;
  state.byEventId.clear();
  state.byTxnId.clear();
  for (const li of $("rooms").children) li.classList.toggle("active", li.dataset.roomId === room.room_id);
  $("room-name").textContent = room.name;
  $("messages").replaceChildren();
  $("text").disabled = false;
  $("composer").querySelector("button").disabled = false;
  const { chunk } = await api("GET", roomPath(room) + "/messages?limit=50");
  for (const item of chunk.reverse()) render(item);
  markRead();
}

// markRead sends a receipt for the newest message shown.
function markRead() {
  const items = $("messages").querySelectorAll("li[data-event-id]");
  const last = items[items.length - 1];
  if (last && state.current) api("POST", roomPath(state.current) + "/receipt", { event_id: last.dataset.eventId }).catch(() => {});
}

// render adds or updates what one payload means for the open room.
function render(p) {
  if (!state.current || p.room_id !== state.current.room_id) return;
  const evt = p.event;
  const content = evt.content || {};
  const rel = content["m.relates_to"] || {};
  if (evt.type === "m.room.redaction") {
    const target = state.byEventId.get(evt.redacts || content.redacts);
    if (target) markRedacted(target);
    return;
  }
  if (evt.type === "m.reaction" && rel.rel_type === "m.annotation") {
    const target = state.byEventId.get(rel.event_id);
    if (target) addReaction(target, rel.key, evt.event_id);
    return;
  }
  if (evt.type !== "m.room.message") return;
  if (rel.rel_type === "m.replace") {
    const target = state.byEventId.get(rel.event_id);
    if (target && content["m.new_content"]) {
      target.querySelector(".body").textContent = content["m.new_content"].body;
      target.querySelector(".edited").textContent = "(edited)";
    }
    return;
  }
  if (state.byEventId.has(evt.event_id)) return;
  // Our own message coming back replaces its optimistic copy.
  let li = p.txn_id && evt.sender === state.me ? state.byTxnId.get(p.txn_id) : null;
  if (!li) {
    li = messageItem(p.sender ? p.sender.displayname : evt.sender, content.body || "");
    $("messages").append(li);
  }
  li.classList.remove("pending");
  li.dataset.eventId = evt.event_id;
  li.dataset.own = String(evt.sender === state.me);
  state.byEventId.set(evt.event_id, li);
  li.scrollIntoView({ block: "end" });
}

function messageItem(sender, body) {
  const li = document.createElement("li");
  const who = document.createElement("span");
  who.className = "sender";
  who.textContent = sender;
  const text = document.createElement("span");
  text.className = "body";
  text.textContent = body;
  const edited = document.createElement("span");
  edited.className = "edited";
  const reactions = document.createElement("span");
  reactions.className = "reactions";
  const actions = document.createElement("span");
  actions.className = "actions";
  for (const [label, fn] of [["👍", react], ["edit", edit], ["remove", redact]]) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.onclick = () => fn(li).catch((e) => alert(e.message));
    actions.append(b);
  }
  li.append(actions, who, text, edited, reactions);
  return li;
}

function addReaction(li, key, eventId) {
  const span = li.querySelector(".reactions");
  const counts = JSON.parse(span.dataset.counts || "{}");
  counts[key] = (counts[key] || 0) + 1;
  span.dataset.counts = JSON.stringify(counts);
  span.textContent = Object.entries(counts).map(([k, n]) => k + " " + n).join("  ");
  state.byEventId.set(eventId, li);
}

function markRedacted(li) {
  li.classList.add("redacted");
  li.querySelector(".body").textContent = "(message removed)";
}

async function send(text) {
  const id = txnId();
  const li = messageItem("me", text);
  li.classList.add("pending");
  state.byTxnId.set(id, li);
  $("messages").append(li);
  await api("PUT", roomPath(state.current) + "/send/" + id, { body: text });
}

async function react(li) { await api("PUT", roomPath(state.current) + "/react/" + txnId(), { event_id: li.dataset.eventId, key: "👍" }); }
async function redact(li) { await api("PUT", roomPath(state.current) + "/redact/" + txnId(), { event_id: li.dataset.eventId }); }
async function edit(li) {
  const text = prompt("New text", li.querySelector(".body").textContent);
  if (text) await api("PUT", roomPath(state.current) + "/edit/" + txnId(), { event_id: li.dataset.eventId, body: text });
}

function showTyping(p) {
  if (!state.current || p.room_id !== state.current.room_id) return;
  const names = (p.users || []).filter((u) => u.user_id !== state.me).map((u) => u.displayname);
  $("typing").textContent = names.length === 0 ? ""
    : names.length <= 3 ? names.join(", ") + (names.length === 1 ? " is" : " are") + " typing…"
    : names.length + " people are typing…";
}

// connect opens the stream with a fresh ticket, resuming after the last
// position seen. EventSource's own retry would reuse a spent ticket, so
// every error closes it and connects anew, with backoff.
async function connect() {
  if (state.source) state.source.close();
  let ticket;
  try {
    ({ ticket } = await api("POST", "/events/ticket"));
  } catch {
    return reconnectLater();
  }
  let url = API + "/events?ticket=" + encodeURIComponent(ticket);
  if (state.lastEventId) url += "&last_event_id=" + encodeURIComponent(state.lastEventId);
  const source = new EventSource(url);
  state.source = source;
  source.onopen = () => { state.retry = 500; $("connection").textContent = "live"; $("connection").classList.add("live"); };
  source.onerror = () => { source.close(); reconnectLater(); };
  const handle = (e) => {
    if (e.lastEventId) state.lastEventId = e.lastEventId;
    const p = JSON.parse(e.data);
    // Only our own joins and leaves change the room list; others' are
    // shown by nothing on this page (nor are "members" events).
    if (e.type === "m.room.member" && p.event.state_key === state.me) { loadRooms(); }
    render(p);
  };
  // The event names are a fixed set; any other Matrix type comes as
  // m.event (its real type in p.event.type), which render ignores.
  for (const type of ["m.room.message", "m.reaction", "m.room.redaction", "m.room.member", "m.event"]) source.addEventListener(type, handle);
  source.addEventListener("m.typing", (e) => showTyping(JSON.parse(e.data)));
  source.addEventListener("reset", (e) => {
    state.lastEventId = e.lastEventId || "";
    if (state.current) openRoom(state.current);
  });
}

function reconnectLater() {
  $("connection").textContent = "reconnecting";
  $("connection").classList.remove("live");
  setTimeout(connect, state.retry);
  state.retry = Math.min(state.retry * 2, 10000);
}

let typingSent = false;
$("text").addEventListener("input", () => {
  const typing = $("text").value !== "";
  if (typing !== typingSent && state.current) {
    typingSent = typing;
    api("PUT", roomPath(state.current) + "/typing", { typing }).catch(() => {});
  }
});

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  $("text").value = "";
  if (typingSent) api("PUT", roomPath(state.current) + "/typing", { typing: false }).catch(() => {});
  typingSent = false;
  send(text).catch((err) => alert(err.message));
});

$("signin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  signIn($("token").value.trim()).catch((err) => alert(err.message));
});

const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) history.replaceState(null, "", location.pathname);
const saved = fromHash || sessionStorage.getItem("openmeet_token");
if (saved) signIn(saved).catch((err) => alert(err.message));
