// The demo chat page, built on @openmeet/bridge-client (served next to it
// from the bridge binary): the page has no transport code of its own. The
// client keeps one EventSource for all rooms and resumes it by position
// after every cut, loads history consistent with the stream, and queues
// sends (in IndexedDB) until the bridge has them, in order, also across a
// reload. Everything shown comes from stream events and history pages,
// matched by event ID, so nothing is shown twice.
import { ChatClient, IndexedDBQueueStorage, MemoryQueueStorage, newTxnId } from "./bridge-client.js";

const REACTION = "👍";
const $ = (id) => document.getElementById(id);

const state = {
  token: "",
  /** @type {ChatClient | null} */
  chat: null,
  me: null, // whoami
  rooms: [],
  unread: new Map(), // room_id -> count
  current: null, // the open room
  detail: null, // the open room with power levels
  view: null, // what is shown of the open room (see newView)
  typingSent: false,
  lastReceipt: "",
};

// ---- notices: problems are shown in the page, never as alerts ----

let noticeTimer;
function notify(text) {
  const el = $("notice");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { el.hidden = true; }, 8000);
}
const reason = (err) => (err && err.message) || String(err);

// limitedFor is how long the bridge asked to wait when it refused a request
// for going over the user's limits (429 M_LIMIT_EXCEEDED), in whole
// seconds, or 0 for any other error.
const limitedFor = (err) =>
  err && err.status === 429 && err.errcode === "M_LIMIT_EXCEEDED" && err.retryAfterMs !== undefined ? Math.ceil(err.retryAfterMs / 1000) : 0;

// ---- sign-in ----

async function signIn(token) {
  state.token = token;
  const tokenProvider = () => state.token;
  const me = await new ChatClient({ baseUrl: "", token: tokenProvider, watchOnline: false }).whoami();
  sessionStorage.setItem("openmeet_token", token);
  state.me = me;
  const storage = typeof indexedDB === "undefined"
    ? new MemoryQueueStorage()
    : new IndexedDBQueueStorage({ namespace: me.tenant + "/" + me.slug });
  const chat = new ChatClient({ baseUrl: "", token: tokenProvider, queue: { storage }, stream: { transport: "eventsource" } });
  state.chat = chat;
  chat.on("status", showStatus);
  chat.on("event", (ev) => onEvent(ev));
  chat.on("queue", onQueue);
  chat.on("reset", () => { loadRooms().catch((err) => notify("Could not reload rooms: " + reason(err))); });
  chat.on("error", (err) => console.warn("bridge client:", err));
  $("whoami").textContent = me.displayname + " (" + me.tenant + ")";
  $("signin").hidden = true;
  $("app").hidden = false;
  // What an earlier visit left in the queue is drawn as pending once its
  // room is open, and sent.
  await chat.startQueue().catch((err) => notify("Offline queue unavailable: " + reason(err)));
  await loadRooms();
  chat.connect();
}

function showStatus(s) {
  const el = $("connection");
  const text = { open: "live", connecting: "connecting", reconnecting: "reconnecting", closed: "offline" }[s.state] || s.state;
  el.textContent = text;
  el.classList.toggle("live", s.state === "open");
  el.classList.toggle("connecting", s.state === "connecting" || s.state === "reconnecting");
  if (s.state === "closed" && s.error) {
    notify("Signed out: " + reason(s.error));
    sessionStorage.removeItem("openmeet_token");
    $("signin").hidden = false;
  }
}

// ---- rooms ----

async function loadRooms() {
  const rooms = await state.chat.rooms();
  state.rooms = rooms;
  for (const r of rooms) state.unread.set(r.room_id, r.unread);
  const open = state.current && rooms.find((r) => r.room_id === state.current.room_id);
  if (open) {
    await openRoom(open); // reloads its history (after a reset, or a join)
  } else if (rooms.length) {
    await openRoom(rooms[0]);
  } else {
    closeRoom();
  }
}

function renderRooms() {
  $("no-rooms").hidden = state.rooms.length > 0;
  $("rooms").replaceChildren(...state.rooms.map((room) => {
    const li = document.createElement("li");
    li.dataset.roomId = room.room_id;
    li.classList.toggle("active", state.current?.room_id === room.room_id);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = room.name;
    li.append(name);
    const n = state.current?.room_id === room.room_id ? 0 : state.unread.get(room.room_id) || 0;
    if (n > 0) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = n >= 100 ? "99+" : String(n);
      li.append(badge);
    }
    li.onclick = () => openRoom(room).catch((err) => notify("Could not open the room: " + reason(err)));
    return li;
  }));
}

function closeRoom() {
  state.current = state.detail = state.view = null;
  $("room-name").textContent = "Pick a room";
  $("room-topic").hidden = true;
  $("messages").replaceChildren();
  $("empty").hidden = true;
  setComposer(false);
  renderRooms();
}

function setComposer(on) {
  $("text").disabled = !on;
  $("attach").disabled = !on;
  $("composer").querySelector("button[type=submit]").disabled = !on;
}

function showRoomHeader(room) {
  $("room-name").textContent = room.name;
  $("room-topic").textContent = room.topic || "";
  $("room-topic").hidden = !room.topic;
}

// The open room's view: its messages by event ID, its pending sends by txn
// ID, and reactions by their own event ID (so that removing one, from any
// client, takes away exactly that reaction).
function newView(room) {
  return {
    roomId: room.room_id,
    loading: true,
    early: [], // stream events that arrived while history loaded
    messages: new Map(), // event ID -> {li, sender, redacted, reactions: Map key -> Map reaction ID -> sender}
    pending: new Map(), // txn ID -> li
    reactions: new Map(), // reaction event ID -> {target, key, sender}
    busy: new Set(), // "target key" of reactions being added or taken back
  };
}

async function openRoom(room) {
  const view = newView(room);
  state.current = room;
  state.view = view;
  state.detail = null;
  state.lastReceipt = "";
  state.unread.set(room.room_id, 0);
  renderRooms();
  showRoomHeader(room);
  $("messages").replaceChildren();
  $("empty").hidden = true;
  $("typing").textContent = "";
  setComposer(true);
  const [page, detail] = await Promise.all([
    state.chat.history(room, { limit: 50 }),
    state.chat.room(room).catch(() => null), // without it, only one's own messages can be removed
  ]);
  if (state.view !== view) return; // another room was opened meanwhile
  state.detail = detail;
  if (detail) showRoomHeader(detail);
  for (const ev of [...page.events].reverse()) apply(ev);
  for (const item of state.chat.pending(room)) {
    if (item.action === "send") addPending(item.txnId, String(item.body.body ?? ""));
  }
  view.loading = false;
  for (const ev of view.early.splice(0)) apply(ev);
  refreshEmpty();
  markRead();
}

async function refreshPower() {
  const room = state.current;
  const detail = await state.chat.room(room).catch(() => null);
  if (!detail || state.current !== room) return;
  state.detail = detail;
  for (const [id, msg] of state.view.messages) renderActions(msg.li, id, msg);
}

// ---- stream events ----

function onEvent(ev) {
  if (ev.kind === "member" && ev.userId === state.me.user_id) {
    loadRooms().catch((err) => notify("Could not reload rooms: " + reason(err)));
    return;
  }
  const open = state.view && ev.roomId === state.view.roomId;
  if (!open) {
    if (ev.kind === "message" && ev.sender?.user_id !== state.me.user_id && state.unread.has(ev.roomId)) {
      state.unread.set(ev.roomId, (state.unread.get(ev.roomId) || 0) + 1);
      renderRooms();
    }
    if (ev.kind === "unknown") roomStateChanged(ev);
    return;
  }
  if (state.view.loading) {
    if (ev.kind !== "typing") state.view.early.push(ev);
    return;
  }
  apply(ev);
  refreshEmpty();
  if (ev.kind === "message" && document.visibilityState === "visible") markRead();
}

// apply shows what one event (live or from history) means for the open room.
function apply(ev) {
  switch (ev.kind) {
    case "message": return addMessage(ev);
    case "edit": return applyEdit(ev);
    case "reaction": return addReaction(ev.eventId, ev.targetEventId, ev.key, ev.sender?.user_id);
    case "redaction": return applyRedaction(ev.redacts);
    case "typing": return showTyping(ev);
    case "unknown": return roomStateChanged(ev);
  }
}

function roomStateChanged(ev) {
  const content = ev.event.content || {};
  const room = state.rooms.find((r) => r.room_id === ev.roomId);
  if (!room || !ev.live) return;
  if (ev.type === "m.room.topic") room.topic = typeof content.topic === "string" ? content.topic : "";
  else if (ev.type === "m.room.name" && typeof content.name === "string") room.name = content.name;
  else if (ev.type === "m.room.power_levels" && state.current?.room_id === ev.roomId) {
    refreshPower();
    return;
  } else return;
  renderRooms();
  if (state.current?.room_id === ev.roomId) showRoomHeader(room);
}

function addMessage(ev) {
  const view = state.view;
  if (!ev.eventId || view.messages.has(ev.eventId)) {
    if (ev.txnId) dropPending(ev.txnId);
    return;
  }
  const own = ev.sender?.user_id === state.me.user_id;
  let li = own && ev.txnId ? view.pending.get(ev.txnId) : undefined;
  if (li) {
    view.pending.delete(ev.txnId);
    li.classList.remove("pending", "failed");
    li.querySelector(".state").textContent = "";
  } else {
    li = messageItem(ev.sender?.displayname || ev.sender?.user_id || ev.event.sender, ev.body, own);
    insertConfirmed(li);
  }
  li.dataset.eventId = ev.eventId;
  showMedia(li.querySelector(".body"), ev);
  const msg = { li, sender: ev.sender?.user_id, redacted: false, reactions: new Map() };
  view.messages.set(ev.eventId, msg);
  if (ev.event.unsigned && ev.event.unsigned.redacted_because) markRedacted(msg);
  renderActions(li, ev.eventId, msg);
  li.scrollIntoView({ block: "end" });
}

// Confirmed messages go before the pending ones, which leave in order.
function insertConfirmed(li) {
  const firstPending = $("messages").querySelector("li.pending, li.failed");
  $("messages").insertBefore(li, firstPending);
}

function applyEdit(ev) {
  const msg = state.view.messages.get(ev.targetEventId);
  // Only the sender's own edits count (as in Matrix clients).
  if (!msg || msg.redacted || msg.sender !== ev.sender?.user_id) return;
  msg.li.querySelector(".body").textContent = ev.body;
  msg.li.querySelector(".edited").textContent = "(edited)";
}

function addReaction(reactionId, target, key, sender) {
  const view = state.view;
  if (!reactionId || view.reactions.has(reactionId)) return;
  view.reactions.set(reactionId, { target, key, sender });
  const msg = view.messages.get(target);
  if (!msg) return;
  if (!msg.reactions.has(key)) msg.reactions.set(key, new Map());
  msg.reactions.get(key).set(reactionId, sender);
  if (sender === state.me.user_id) view.busy.delete(target + " " + key);
  renderReactions(target, msg);
}

function applyRedaction(redacts) {
  const view = state.view;
  const reaction = view.reactions.get(redacts);
  if (reaction) {
    // A reaction taken back: only that reaction goes.
    view.reactions.delete(redacts);
    const msg = view.messages.get(reaction.target);
    if (!msg) return;
    msg.reactions.get(reaction.key)?.delete(redacts);
    if (reaction.sender === state.me.user_id) view.busy.delete(reaction.target + " " + reaction.key);
    renderReactions(reaction.target, msg);
    return;
  }
  const msg = view.messages.get(redacts);
  if (msg) markRedacted(msg);
}

function markRedacted(msg) {
  msg.redacted = true;
  msg.reactions.clear();
  msg.li.classList.add("redacted");
  msg.li.querySelector(".body").textContent = "(message removed)";
  msg.li.querySelector(".edited").textContent = "";
  msg.li.querySelector(".reactions").replaceChildren();
  renderActions(msg.li, msg.li.dataset.eventId, msg);
}

function refreshEmpty() {
  $("empty").hidden = !state.view || $("messages").children.length > 0;
}

// ---- drawing one message ----

function messageItem(senderName, body, own) {
  const li = document.createElement("li");
  li.classList.toggle("own", own);
  const parts = {};
  for (const name of ["actions", "confirm", "sender", "body", "edited", "state", "reactions"]) {
    parts[name] = document.createElement("span");
    parts[name].className = name;
  }
  parts.confirm.hidden = true;
  parts.sender.textContent = senderName;
  parts.body.textContent = body;
  li.append(parts.actions, parts.confirm, parts.sender, parts.body, parts.edited, parts.state, parts.reactions);
  return li;
}

function button(label, title, onclick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.title = title;
  b.onclick = onclick;
  return b;
}

// The actions offered are those the bridge will allow: react to any
// message, edit one's own, remove one's own, and others' only with the
// room's redact level.
function renderActions(li, eventId, msg) {
  const actions = li.querySelector(".actions");
  actions.replaceChildren();
  if (msg.redacted) return;
  const own = msg.sender === state.me.user_id;
  const mayRemove = own || (state.detail && state.detail.power_level >= state.detail.redact_level);
  actions.append(button(REACTION, "React " + REACTION + " (again to take it back)", () => toggleReaction(eventId, REACTION)));
  if (own) actions.append(button("edit", "Edit your message", () => startEdit(li, eventId)));
  if (mayRemove) actions.append(button("remove", own ? "Remove your message" : "Remove this message", () => confirmRemove(li, eventId)));
}

function renderReactions(target, msg) {
  const span = msg.li.querySelector(".reactions");
  span.replaceChildren();
  for (const [key, byId] of msg.reactions) {
    if (byId.size === 0) continue;
    const mine = [...byId.values()].includes(state.me.user_id);
    const chip = button(key + " " + byId.size, mine ? "Take your reaction back" : "React " + key, () => toggleReaction(target, key));
    chip.classList.toggle("mine", mine);
    chip.dataset.key = key;
    span.append(chip);
  }
}

// ---- actions ----

function myReaction(target, key) {
  for (const [id, r] of state.view.reactions) {
    if (r.target === target && r.key === key && r.sender === state.me.user_id) return id;
  }
  return undefined;
}

async function toggleReaction(target, key) {
  const view = state.view;
  const busyKey = target + " " + key;
  if (view.busy.has(busyKey)) return; // the last click is still on its way
  view.busy.add(busyKey);
  const existing = myReaction(target, key);
  try {
    // Taking a reaction back is redacting it; its echo (or the refusal)
    // ends the busy state.
    const { accepted } = existing
      ? await state.chat.redact(state.current, existing)
      : await state.chat.react(state.current, target, key);
    const result = await accepted;
    // Shown at once when the bridge names the new reaction: its echo is
    // then a repeat. A duplicate (reacted elsewhere meanwhile) is there
    // already, or arrives by stream.
    if (!existing && result.eventId && state.view === view) addReaction(result.eventId, target, key, state.me.user_id);
    else if (result.duplicate) view.busy.delete(busyKey);
  } catch {
    view.busy.delete(busyKey); // the queue's failed update tells why
  }
}

function startEdit(li, eventId) {
  const body = li.querySelector(".body");
  const box = document.createElement("input");
  box.className = "edit-box";
  box.value = body.textContent;
  body.hidden = true;
  body.after(box);
  box.focus();
  // Removing the box blurs it, which calls done again: once is enough.
  let closed = false;
  const done = () => {
    if (closed) return;
    closed = true;
    box.remove();
    body.hidden = false;
  };
  box.addEventListener("keydown", (e) => {
    if (e.key === "Escape") done();
    if (e.key !== "Enter") return;
    e.preventDefault();
    const text = box.value.trim();
    done();
    if (!text || text === body.textContent) return;
    body.textContent = text;
    li.querySelector(".edited").textContent = "(edited)";
    state.chat.edit(state.current, eventId, text).catch((err) => notify("Could not queue the edit: " + reason(err)));
  });
  box.addEventListener("blur", done);
}

function confirmRemove(li, eventId) {
  const confirm = li.querySelector(".confirm");
  const actions = li.querySelector(".actions");
  const close = () => { confirm.hidden = true; confirm.replaceChildren(); actions.hidden = false; };
  confirm.replaceChildren(
    document.createTextNode("Remove this message? "),
    button("Remove", "Remove it for everyone", () => {
      close();
      state.chat.redact(state.current, eventId).catch((err) => notify("Could not queue the removal: " + reason(err)));
    }),
    button("Cancel", "Keep it", close),
  );
  actions.hidden = true;
  confirm.hidden = false;
}

// ---- sending ----

function addPending(txnId, text) {
  const view = state.view;
  if (view.pending.has(txnId)) return;
  const li = messageItem(state.me.displayname, text, true);
  li.classList.add("pending");
  li.dataset.txnId = txnId;
  li.querySelector(".state").textContent = "sending…";
  view.pending.set(txnId, li);
  $("messages").append(li);
  refreshEmpty();
  li.scrollIntoView({ block: "end" });
}

function dropPending(txnId) {
  const li = state.view.pending.get(txnId);
  if (!li) return;
  state.view.pending.delete(txnId);
  li.remove();
}

const isOpen = (item) => state.current && item.room.slug === state.current.slug && item.room.kind === state.current.kind + "s";

// onQueue draws what the send queue does with the open room's messages.
function onQueue(u) {
  if (u.item.action !== "send" || !state.view || !isOpen(u.item)) {
    const what = { send: "Message", edit: "Edit", react: "Reaction", redact: "Removal" }[u.item.action];
    if (u.state === "failed") notify(what + " not sent: " + u.error.message);
    // The queue waits as long as the bridge asked, then sends again.
    else if (u.state === "retrying" && limitedFor(u.error)) notify(what + ": too many at once; sending again in " + Math.ceil(u.retryInMs / 1000) + " s");
    return;
  }
  const li = state.view.pending.get(u.item.txnId);
  switch (u.state) {
    case "queued":
      addPending(u.item.txnId, String(u.item.body.body ?? ""));
      break;
    case "retrying":
      if (li) {
        li.querySelector(".state").textContent = limitedFor(u.error)
          ? "too many messages at once; sending again in " + Math.ceil(u.retryInMs / 1000) + " s…"
          : navigator.onLine ? "retrying…" : "waiting for the network…";
      }
      break;
    case "accepted":
      // 200: Synapse has it (the echo may still be on its way); 202: the
      // bridge's outbox has it. Either way it will not be lost.
      if (li) li.querySelector(".state").textContent = u.result.state === "sent" ? "" : "on its way…";
      break;
    case "failed":
      if (li) {
        li.classList.add("failed");
        li.querySelector(".state").textContent = "not sent: " + u.error.message;
      }
      break;
  }
}

// ---- files ----

const FILE_TYPES = new Set(["m.image", "m.file", "m.video", "m.audio"]);

// showMedia draws an image as its thumbnail (linking to the file) and any
// other file as a link, from the signed URLs the bridge puts into stream
// events and history: an <img> needs no token.
function showMedia(body, ev) {
  const url = ev.media?.url;
  if (!FILE_TYPES.has(ev.msgtype) || !url) return;
  const a = document.createElement("a");
  a.href = url;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  if (ev.msgtype === "m.image") {
    const img = document.createElement("img");
    img.className = "thumb";
    img.src = ev.media.thumbnail_url || url;
    img.alt = ev.body;
    img.loading = "lazy";
    a.append(img);
  } else {
    a.className = "file";
    a.textContent = ev.body;
  }
  body.replaceChildren(a);
}

// What the bridge takes, asked once: a file it would refuse is refused
// here with the reason, before its bytes are sent (a browser may report a
// refusal that comes while it still sends as a broken connection).
let mediaConfig;
function refusalOf(file, cfg) {
  if (!cfg) return "";
  const type = file.type || "application/octet-stream";
  const [top] = type.split("/");
  if (!cfg.allowed_types.includes(type) && !cfg.allowed_types.includes(top + "/*")) return "files of type " + type + " are not allowed";
  if (file.size > cfg.max_upload_bytes) return "larger than the limit of " + Math.floor(cfg.max_upload_bytes / 1048576 * 10) / 10 + " MiB";
  if (file.size === 0) return "the file is empty";
  return "";
}

// sendFiles uploads files at once (they are not kept in the offline
// queue), each shown as pending until its echo replaces it.
async function sendFiles(files) {
  const room = state.current;
  if (!room) return;
  mediaConfig ??= state.chat.mediaConfig().catch(() => null);
  const cfg = await mediaConfig;
  if (!cfg) mediaConfig = undefined; // ask again next time
  for (const file of files) {
    const txnId = newTxnId();
    if (state.view && state.current === room) addPending(txnId, "uploading " + (file.name || "a file") + "…");
    try {
      const refusal = refusalOf(file, cfg);
      if (refusal) throw new Error(refusal);
      const resp = await state.chat.upload(room, file, { txnId, filename: file.name || undefined });
      const li = state.view?.pending.get(txnId);
      if (li) li.querySelector(".state").textContent = resp.state === "sent" ? "" : "on its way…";
    } catch (err) {
      const li = state.view?.pending.get(txnId);
      if (li) {
        li.classList.add("failed");
        li.querySelector(".state").textContent = "not sent: " + reason(err);
      }
      // The client already waited and tried again a few times.
      const wait = limitedFor(err);
      notify("File not sent: " + reason(err) + (wait ? " (try again in " + wait + " s)" : ""));
    }
  }
}

$("attach").addEventListener("click", () => $("file").click());
$("file").addEventListener("change", () => {
  const files = [...$("file").files];
  $("file").value = "";
  sendFiles(files);
});
$("text").addEventListener("paste", (e) => {
  const files = [...(e.clipboardData?.files || [])];
  if (files.length === 0) return; // text is pasted as usual
  e.preventDefault();
  sendFiles(files);
});

// ---- typing and receipts ----

function showTyping(ev) {
  const names = ev.users.filter((u) => u.user_id !== state.me.user_id).map((u) => u.displayname || u.user_id);
  $("typing").textContent = names.length === 0 ? ""
    : names.length <= 3 ? names.join(", ") + (names.length === 1 ? " is" : " are") + " typing…"
    : names.length + " people are typing…";
}

// markRead sends a receipt for the newest message shown, once.
function markRead() {
  const items = $("messages").querySelectorAll("li[data-event-id]");
  const last = items[items.length - 1];
  if (!last || !state.current || last.dataset.eventId === state.lastReceipt) return;
  state.lastReceipt = last.dataset.eventId;
  state.chat.markRead(state.current, last.dataset.eventId).catch(() => { state.lastReceipt = ""; });
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && state.view && !state.view.loading) markRead();
});

$("text").addEventListener("input", () => {
  const typing = $("text").value !== "";
  if (typing !== state.typingSent && state.current) {
    state.typingSent = typing;
    state.chat.typing(state.current, typing).catch(() => {});
  }
});

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text || !state.current) return;
  $("text").value = "";
  if (state.typingSent) state.chat.typing(state.current, false).catch(() => {});
  state.typingSent = false;
  // Stored first, then sent until the bridge has it; the queue events
  // draw it (pending, then replaced by its echo).
  state.chat.send(state.current, text).catch((err) => notify("Could not queue the message: " + reason(err)));
});

$("signin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  signIn($("token").value.trim()).catch((err) => notify("Sign-in failed: " + reason(err)));
});

const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) history.replaceState(null, "", location.pathname);
const saved = fromHash || sessionStorage.getItem("openmeet_token");
if (saved) signIn(saved).catch((err) => notify("Sign-in failed: " + reason(err)));
