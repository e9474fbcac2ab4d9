// The explorer's page: one WebSocket per pane, driven by hand, and a log of
// what the browser saw, linked to the server's trace (trace.js): each pane
// finds its connection there by the ?pane= tag it adds to its URL, hovering a
// log line lights up the server's records for that message, and what the
// browser cannot see (why a handshake was refused, a handler's traceback, a
// long wait) is shown in the pane as the server told it. Message content only
// ever reaches the page through textContent, never as HTML.
"use strict";

const HEX_PREVIEW = 16; // bytes of a binary message shown as hex
// A channel-layer call a handler makes (not an event a handler takes).
const LAYER_CALLS = new Set(["group_add", "group_discard", "group_send", "send"]);
const SERVER_ARROWS = { in: "→", out: "←", layer: "⇄", note: "ℹ", error: "✖", exit: "■", done: "✓", scope: "●" };

function clock() {
  const now = new Date();
  return now.toTimeString().slice(0, 8) + "." + String(now.getMilliseconds()).padStart(3, "0");
}

function latin1(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let start = 0; start < bytes.length; start += 8192) {
    text += String.fromCharCode(...bytes.subarray(start, start + 8192));
  }
  return text;
}

function paneTag(scopeEvent) {
  // The scope's query string, as the trace records it: {"$bytes": ...}, perhaps shortened.
  let query = scopeEvent?.query_string;
  if (query && typeof query === "object" && "$shortened" in query) query = query.$shortened;
  if (query && typeof query === "object") query = query.$bytes;
  return typeof query === "string" ? new URLSearchParams(query).get("pane") : null;
}

// An event's payload as the trace recorded it: which key, its text (bytes as latin-1), and whether it was cut.
function payload(event) {
  for (const key of ["text", "bytes"]) {
    let value = event?.[key];
    if (value === null || value === undefined) continue;
    let cut = false;
    if (typeof value === "object" && "$shortened" in value) [value, cut] = [value.$shortened, true];
    if (value && typeof value === "object" && typeof value.$bytes === "string") return { binary: true, value: value.$bytes, cut };
    if (typeof value === "string") return { binary: key === "bytes", value, cut };
  }
  return null;
}

function sameMessage(event, message) {
  const recorded = payload(event);
  if (!recorded || recorded.binary !== message.binary) return false;
  return recorded.cut ? message.value.startsWith(recorded.value) : recorded.value === message.value;
}

// A connection's records in groups: each handler's event with what it did, up to its done line.
function groups(records) {
  const found = [];
  let current = null;
  for (const record of records) {
    const starts = ["in", "layer"].includes(record.kind) && record.wait !== null && !LAYER_CALLS.has(record.type);
    if (starts) {
      current = [record];
      found.push(current);
    } else if (current) {
      current.push(record);
      if (record.kind === "done") current = null;
    } else {
      found.push([record]);
    }
  }
  return found;
}

function groupOf(records, record) {
  return record ? groups(records).find((group) => group.includes(record)) || [record] : [];
}

// The n-th message the browser saw, matched in order and by content with the server's events of this type.
function nth(records, kind, type, messages, index) {
  const candidates = records.filter((r) => r.kind === kind && r.type === type);
  let next = 0;
  for (let i = 0; i <= index; i += 1) {
    while (next < candidates.length && !sameMessage(candidates[next].event, messages[i])) next += 1;
    if (next >= candidates.length) return null;
    if (i === index) return candidates[next];
    next += 1;
  }
  return null;
}

function describeBinary(buffer) {
  const bytes = new Uint8Array(buffer);
  const hex = Array.from(bytes.slice(0, HEX_PREVIEW), (b) => b.toString(16).padStart(2, "0")).join(" ");
  const more = bytes.length > HEX_PREVIEW ? " …" : "";
  return `binary, ${bytes.length} bytes: ${hex}${more}`;
}

class Pane {
  constructor(root) {
    this.root = root;
    this.path = root.dataset.path;
    this.socket = null;
    this.part = (role) => root.querySelector(`[data-role="${role}"]`);
    this.badge = this.part("state");
    this.logList = this.part("log");
    this.attempts = new Map(); // ?pane= tag -> one connection attempt: its name in the trace, what it sent
    this.byConnection = new Map(); // trace name (sc#3) -> its attempt
    this.attempt = null;
    this.trace = window.explorerTrace || null;
    if (this.trace) {
      this.trace.listeners.add((records) => this.heard(records));
      this.logList.addEventListener("mouseover", (event) => this.hover(event.target.closest("li")));
      this.logList.addEventListener("mouseleave", () => this.hover(null));
    }

    this.part("connect").addEventListener("submit", (event) => {
      event.preventDefault();
      this.socket ? this.socket.close(1000) : this.connect();
    });
    this.part("send").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = event.target.elements.message;
      this.send(input.value, event.submitter?.value === "binary");
      input.value = "";
    });
    this.part("room").addEventListener("submit", (event) => {
      event.preventDefault();
      const { room, say } = event.target.elements;
      const action = event.submitter?.value;
      if (action === "say") {
        this.send(`/say ${room.value} ${say.value}`);
        say.value = "";
      } else {
        this.send(`/${action} ${room.value}`);
      }
    });
    this.part("close").addEventListener("submit", (event) => {
      event.preventDefault();
      const { code, reason } = event.target.elements;
      try {
        this.socket.close(Number(code.value), reason.value);
        this.log("info", `closing with code ${code.value}, reason ${JSON.stringify(reason.value)}`);
      } catch (error) {
        this.log("error", `close refused by the browser: ${error.message}`);
      }
    });
    this.part("clear").addEventListener("click", () => this.logList.replaceChildren());
    this.part("commands").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-command]");
      if (!button) return;
      const example = button.dataset.example;
      if (example) {
        const input = this.part("send").elements.message;
        input.value = example;
        input.focus();
      } else {
        this.send(`/${button.dataset.command}`);
      }
    });
    this.setState("closed");
  }

  connect() {
    const form = this.part("connect").elements;
    const subprotocols = form.subprotocols.value.split(",").map((s) => s.trim()).filter(Boolean);
    const query = form.query.value.trim().replace(/^\?/, "");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    // The tag comes first, so a long query shortened in the trace still carries it.
    const tag = Math.random().toString(36).slice(2, 10);
    this.attempt = { tag, connection: null, accepted: false, sent: [], received: [] };
    this.attempts.set(tag, this.attempt);
    const url = `${scheme}//${location.host}${this.path}?pane=${tag}${query ? "&" + query : ""}`;
    const attempt = this.attempt;
    this.log("info", `connecting to ${url}` + (subprotocols.length ? `, offering ${subprotocols.join(", ")}` : ""), { attempt, kind: "scope" });
    try {
      this.socket = new WebSocket(url, subprotocols);
    } catch (error) {
      this.log("error", error.message);
      return;
    }
    this.socket.binaryType = "arraybuffer";
    this.setState("connecting");
    this.socket.addEventListener("open", () => {
      this.setState("open");
      this.log("open", `open, subprotocol: ${this.socket.protocol || "none"}`, { attempt, kind: "open" });
    });
    this.socket.addEventListener("message", (event) => {
      const binary = typeof event.data !== "string";
      const text = binary ? describeBinary(event.data) : event.data;
      attempt.received.push({ binary, value: binary ? latin1(event.data) : event.data });
      this.log("in", text, { attempt, kind: "received", index: attempt.received.length - 1 });
    });
    this.socket.addEventListener("error", () => {
      this.log("error", "error (browsers give no detail; the close below says how it ended)");
    });
    this.socket.addEventListener("close", (event) => {
      this.log("close", `close, code ${event.code}, reason ${JSON.stringify(event.reason)}, wasClean ${event.wasClean}`, { attempt, kind: "close" });
      this.socket = null;
      this.setState("closed");
    });
  }

  send(text, binary = false) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) {
      this.log("error", "not open: connect first");
      return;
    }
    const attempt = this.attempt;
    if (binary) {
      const bytes = new TextEncoder().encode(text);
      this.socket.send(bytes);
      attempt.sent.push({ binary: true, value: latin1(bytes.buffer) });
      this.log("out", describeBinary(bytes.buffer), { attempt, kind: "sent", index: attempt.sent.length - 1 });
    } else {
      this.socket.send(text);
      attempt.sent.push({ binary: false, value: text });
      this.log("out", text, { attempt, kind: "sent", index: attempt.sent.length - 1 });
    }
  }

  setState(state) {
    if (state === "closing" || (this.socket && this.socket.readyState === WebSocket.CLOSING)) state = "closing";
    this.badge.textContent = state;
    this.badge.dataset.state = state;
    const open = state === "open";
    this.root.querySelectorAll("[data-role=send] button, [data-role=room] button, [data-role=close] button[type=submit], [data-command]")
      .forEach((button) => { button.disabled = !open; });
    this.part("connect-button").textContent = state === "closed" ? "Connect" : "Disconnect";
  }

  log(kind, text, link = null, traceback = null) {
    const arrows = { in: "←", out: "→", open: "●", close: "■", error: "✖", info: "·", server: "◆" };
    const item = document.createElement("li");
    item.className = `entry ${kind}`;
    item.dataset.kind = kind;
    const time = document.createElement("time");
    time.textContent = clock();
    const arrow = document.createElement("span");
    arrow.className = "arrow";
    arrow.textContent = arrows[kind] || "·";
    const body = document.createElement("span");
    body.className = "body";
    body.textContent = text; // never innerHTML: a message is text, whatever it contains
    item.append(time, arrow, body);
    if (traceback) item.append(Object.assign(document.createElement("pre"), { className: "traceback", textContent: traceback }));
    item.link = link; // what the trace has for this line: looked up when it is hovered
    this.logList.append(item);
    this.logList.scrollTop = this.logList.scrollHeight;
  }

  // What the server's trace says about this pane's connections.
  heard(records) {
    for (const record of records) {
      if (record.kind === "scope") {
        const attempt = this.attempts.get(paneTag(record.event));
        if (attempt && !attempt.connection) {
          attempt.connection = record.connection;
          this.byConnection.set(record.connection, attempt);
          this.log("server", `traced as ${record.connection}`, { attempt, kind: "record", seq: record.seq });
        }
      }
      const attempt = this.byConnection.get(record.connection);
      if (attempt) this.told(attempt, record);
    }
  }

  // A server line in the pane: an error with its traceback always; until the handshake is
  // accepted, every note (why it was refused, or slow); afterwards, why an event waited long.
  told(attempt, record) {
    if (record.kind === "out" && record.type === "websocket.accept") attempt.accepted = true;
    const link = { attempt, kind: "record", seq: record.seq };
    const arrow = SERVER_ARROWS[record.kind] || "·";
    const printable = window.ExplorerTrace.printable;
    const said = (text) => `${record.connection} ${arrow} ${printable(text)}`;
    if (record.kind === "error") {
      this.log("server", said(record.note || "error"), link, record.traceback ? printable(record.traceback) : null);
    } else if (["note", "exit"].includes(record.kind) && !attempt.accepted) {
      this.log("server", said(record.note || record.kind), link);
    } else if (record.notes.length && (!attempt.accepted || record.raw.slow)) {
      const notes = record.raw.slow ? record.notes.filter((note) => note.startsWith("waited")) : record.notes;
      if (notes.length) this.log("server", said(`${record.type || record.kind}: ${notes.join(" · ")}`), link);
    }
  }

  // The server's records for a log line, from its link.
  linkedSeqs(link) {
    if (!link || !link.attempt.connection) return [];
    const records = this.trace.recordsOf(link.attempt.connection);
    const seqs = (found) => found.map((record) => record.seq);
    switch (link.kind) {
      case "scope":
        return seqs(records.filter((r) => r.kind === "scope"));
      case "open":
        return seqs([...records.filter((r) => r.kind === "scope"), ...groupOf(records, records.find((r) => r.type === "websocket.connect" && r.kind === "in"))]);
      case "sent":
        return seqs(groupOf(records, nth(records, "in", "websocket.receive", link.attempt.sent, link.index)));
      case "received":
        return seqs(groupOf(records, nth(records, "out", "websocket.send", link.attempt.received, link.index)));
      case "close":
        if (!link.attempt.accepted) return seqs(records);
        return seqs([...groupOf(records, records.find((r) => r.kind === "in" && r.type === "websocket.disconnect")), ...records.filter((r) => ["exit", "error"].includes(r.kind))]);
      case "record":
        return seqs(groupOf(records, records.find((r) => r.seq === link.seq)));
      default:
        return [];
    }
  }

  hover(item) {
    if (item === this.hovered) return;
    this.hovered = item;
    for (const lit of this.logList.querySelectorAll("li.linked")) lit.classList.remove("linked");
    const seqs = item ? this.linkedSeqs(item.link) : [];
    if (item && seqs.length) item.classList.add("linked");
    this.trace.highlight(seqs);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const root of document.querySelectorAll(".pane")) {
    root.pane = new Pane(root);
  }
  // Closing from the pane's own socket: show "closing" while the handshake runs.
  document.addEventListener("submit", (event) => {
    const root = event.target.closest(".pane");
    if (root && event.target.dataset.role === "close" && root.pane.socket) root.pane.setState("closing");
  });
});
