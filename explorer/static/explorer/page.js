// The explorer's page: one WebSocket per pane, driven by hand, and a log of
// what the browser saw. Message content only ever reaches the page through
// textContent, never as HTML.
"use strict";

const HEX_PREVIEW = 16; // bytes of a binary message shown as hex

function clock() {
  const now = new Date();
  return now.toTimeString().slice(0, 8) + "." + String(now.getMilliseconds()).padStart(3, "0");
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
    const url = `${scheme}//${location.host}${this.path}${query ? "?" + query : ""}`;
    this.log("info", `connecting to ${url}` + (subprotocols.length ? `, offering ${subprotocols.join(", ")}` : ""));
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
      this.log("open", `open, subprotocol: ${this.socket.protocol || "none"}`);
    });
    this.socket.addEventListener("message", (event) => {
      const text = typeof event.data === "string" ? event.data : describeBinary(event.data);
      this.log("in", text);
    });
    this.socket.addEventListener("error", () => {
      this.log("error", "error (browsers give no detail; the close below says how it ended)");
    });
    this.socket.addEventListener("close", (event) => {
      this.log("close", `close, code ${event.code}, reason ${JSON.stringify(event.reason)}, wasClean ${event.wasClean}`);
      this.socket = null;
      this.setState("closed");
    });
  }

  send(text, binary = false) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) {
      this.log("error", "not open: connect first");
      return;
    }
    if (binary) {
      const bytes = new TextEncoder().encode(text);
      this.socket.send(bytes);
      this.log("out", describeBinary(bytes.buffer));
    } else {
      this.socket.send(text);
      this.log("out", text);
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

  log(kind, text) {
    const arrows = { in: "←", out: "→", open: "●", close: "■", error: "✖", info: "·" };
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
    this.logList.append(item);
    this.logList.scrollTop = this.logList.scrollHeight;
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
