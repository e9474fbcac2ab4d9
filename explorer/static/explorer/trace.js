// The server's side of the page: the trace's records as a filtered list, a
// record's whole dict, and a timeline of the threads and connections. Fed live
// by the panel's WebSocket (explorer/trace/panel.py), or, in a file written by
// `manage.py trace FILE --html`, by the records embedded in it. Whatever a
// record holds (a client's text, a path, a header) reaches the page through
// textContent only, never as markup.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const KEPT = 5000; // records the page keeps; older ones are let go, counted
  const ROWS = 2000; // rows in the list at most: the newest that pass the filters
  const LANES = 24; // connection lanes in the timeline at most: the most recently active
  const DRAWN = 4000; // timeline bars at most: the newest
  const LATE = 0.06; // seconds before an arrival in which a hold of the event loop may have delayed it
  const BODY = 300; // characters of an event shown in its row; the whole dict is a click away
  const ARROWS = {
    server: "◆", scope: "●", in: "→", out: "←", layer: "⇄", query: "⛁", done: "✓", note: "ℹ", error: "✖", exit: "■", message: "⚠",
  };
  const FAILED = { raised: ["✗", "failed"], cancelled: ["⊘", "cancelled"] };
  const LAYER_CALLS = new Set(["group_add", "group_discard", "group_send", "send"]);
  // Characters that would hide or reorder text (controls, bidi and zero-width marks): shown as escapes.
  const HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g;

  function escaped(char) {
    return "\\u" + char.charCodeAt(0).toString(16).padStart(4, "0");
  }

  function printable(text) {
    return String(text).replace(HIDDEN, escaped);
  }

  function pyString(text) {
    const body = String(text)
      .replace(/\\/g, "\\\\").replace(/'/g, "\\'")
      .replace(/\n/g, "\\n").replace(/\r/g, "\\r").replace(/\t/g, "\\t");
    return "'" + printable(body) + "'";
  }

  // A recorded value as the console shows it (Python's repr), its tagged objects read back.
  function show(value, depth = 0) {
    if (depth > 32) return "…";
    if (value === null || value === undefined) return "None";
    if (value === true) return "True";
    if (value === false) return "False";
    if (typeof value === "number") return String(value);
    if (typeof value === "string") return pyString(value);
    if (Array.isArray(value)) return "[" + value.map((item) => show(item, depth + 1)).join(", ") + "]";
    if (typeof value !== "object") return printable(String(value));
    const keys = Object.keys(value);
    if (keys.length === 1 && typeof value.$bytes === "string") return "b" + pyString(value.$bytes);
    if (keys.length === 1 && Array.isArray(value.$tuple)) {
      const items = value.$tuple.map((item) => show(item, depth + 1));
      return "(" + items.join(", ") + (items.length === 1 ? ",)" : ")");
    }
    if (keys.length === 1 && value.$redacted === true) return "<redacted>";
    if (keys.length === 1 && typeof value.$repr === "string") return printable(value.$repr);
    if (keys.length === 1 && Array.isArray(value.$dict)) {
      const pairs = value.$dict.filter((pair) => Array.isArray(pair) && pair.length === 2);
      return "{" + pairs.map(([k, v]) => show(k, depth + 1) + ": " + show(v, depth + 1)).join(", ") + "}";
    }
    if (keys.length === 2 && "$shortened" in value && typeof value.length === "number") {
      const head = value.$shortened;
      const unit = head && typeof head === "object" ? "bytes" : "chars";
      return show(head, depth + 1) + "…<" + value.length.toLocaleString("en") + " " + unit + ">";
    }
    return "{" + keys.map((key) => pyString(key) + ": " + show(value[key], depth + 1)).join(", ") + "}";
  }

  function duration(seconds) {
    if (seconds >= 1) return seconds.toFixed(3) + "s";
    if (seconds >= 0.001) return (seconds * 1000).toFixed(1) + "ms";
    return Math.round(seconds * 1e6) + "µs";
  }

  // An ISO moment with microseconds ("2025-01-01T10:00:00.123456+00:00") as epoch seconds.
  function moment(text) {
    if (typeof text !== "string") return null;
    const match = /^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$/.exec(text);
    if (!match) return null;
    const whole = Date.parse(match[1] + (match[3] || "Z"));
    if (Number.isNaN(whole)) return null;
    return whole / 1000 + (match[2] ? Number(match[2]) : 0);
  }

  function texts(value) {
    return Array.isArray(value) ? value.filter((item) => typeof item === "string") : [];
  }

  function number(value) {
    return typeof value === "number" && Number.isFinite(value) ? value : null;
  }

  // One record as the page uses it; ``raw`` is the record as it came, shown whole when clicked.
  function normalize(raw, started) {
    const event = raw.event && typeof raw.event === "object" && !Array.isArray(raw.event) ? raw.event : null;
    const held = Array.isArray(raw.held_loop) && raw.held_loop.length === 2 ? raw.held_loop.map(number) : null;
    return {
      raw,
      seq: raw.seq,
      kind: typeof raw.kind === "string" ? raw.kind : "?",
      connection: typeof raw.connection === "string" ? raw.connection : "",
      endpoint: typeof raw.endpoint === "string" ? raw.endpoint : "",
      consumer: typeof raw.consumer === "string" ? raw.consumer : null,
      t: moment(raw.at),
      started: number(raw.started) ?? started,
      event,
      type: event && typeof event.type === "string" ? event.type : null,
      thread: typeof raw.thread === "string" ? raw.thread : null,
      wait: number(raw.wait),
      handler: number(raw.handler),
      took: number(raw.took),
      queries: Array.isArray(raw.queries) && raw.queries.length === 2 && raw.queries.every((v) => number(v) !== null) ? raw.queries : null,
      seconds: number(raw.seconds) ?? 0,
      note: typeof raw.note === "string" ? raw.note : null,
      notes: texts(raw.notes),
      violations: Array.isArray(raw.violations) ? raw.violations.filter((v) => v && typeof v === "object") : [],
      heldBy: texts(raw.held_by),
      onLoop: typeof raw.on_loop === "boolean" ? raw.on_loop : null,
      heldLoop: held && held[0] !== null && held[1] !== null ? held : null,
      outcome: typeof raw.outcome === "string" ? raw.outcome : null,
      traceback: typeof raw.traceback === "string" ? raw.traceback : null,
      dropped: Number.isInteger(raw.dropped) ? raw.dropped : 0,
    };
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // The records in order, the list and the detail, the filters; the timeline draws from the same records.
  class TraceView {
    constructor(root, options = {}) {
      this.root = root;
      this.records = [];
      this.bySeq = new Map();
      this.started = null;
      this.letGo = 0; // records the page let go of itself (over KEPT)
      this.droppedPage = 0; // records the server dropped because this page fell behind
      this.droppedQueue = 0; // records the trace's own queue dropped (the console's too)
      this.listeners = new Set();
      this.consumers = new Map(); // connection -> its consumer's dotted path, from its scope
      this.offered = new Set(); // "filter value": the choices the filters have
      this.linked = new Set();
      this.selected = null;
      this.live = Boolean(options.live);
      this.paused = false;
      this.resumed = () => {};
      this.build(options.window || (this.live ? "30" : "all"));
      this.timeline = new Timeline(this, this.part("timeline"), this.part("window"));
    }

    part(role) {
      return this.root.querySelector(`[data-role="${role}"]`);
    }

    build(windowChoice) {
      const controls = element("div", "row trace-controls");
      const windowLabel = element("label", "", "timeline ");
      const windowSelect = element("select");
      windowSelect.dataset.role = "window";
      for (const [value, text] of [["10", "last 10 s"], ["30", "last 30 s"], ["120", "last 2 min"], ["all", "all"]]) {
        const option = element("option", "", text);
        option.value = value;
        option.selected = value === windowChoice;
        windowSelect.append(option);
      }
      windowLabel.append(windowSelect);
      const status = element("span", "trace-status");
      status.dataset.role = "trace-status";
      controls.append(windowLabel);
      if (this.live) {
        // Paused, the page takes no more batches: the panel keeps what it may for it and counts the rest.
        const pause = element("button", "", "Pause");
        pause.type = "button";
        pause.dataset.role = "trace-pause";
        pause.addEventListener("click", () => this.pause(!this.paused));
        controls.append(pause);
      }
      controls.append(status);

      const timeline = svg("svg", { class: "timeline", "data-role": "timeline", role: "img" });
      timeline.setAttribute("aria-label", "timeline of the threads and connections");
      const legend = element("div", "legend");
      for (const [cls, text] of [
        ["on-worker", "handler on the sync thread"], ["on-loop", "handler on the event loop"],
        ["wait", "wait before its handler"], ["link", "waited for this handler"], ["blocked", "event loop blocked"],
      ]) {
        const key = element("span", `key ${cls}`);
        legend.append(key, element("span", "", text));
      }
      const filters = element("form", "row trace-filters");
      filters.dataset.role = "filters";
      filters.addEventListener("submit", (event) => event.preventDefault());
      for (const [name, every] of [["connection", "every connection"], ["endpoint", "every endpoint"], ["event", "every event"]]) {
        const label = element("label", "", name + " ");
        const select = element("select");
        select.name = name;
        const option = element("option", "", every);
        option.value = "";
        select.append(option);
        label.append(select);
        filters.append(label);
      }
      const violations = element("label", "");
      const box = element("input");
      box.type = "checkbox";
      box.name = "violations";
      violations.append(box, " rule violations only");
      const clear = element("button", "", "Clear");
      clear.type = "button";
      clear.dataset.role = "trace-clear";
      filters.append(violations, clear);
      filters.addEventListener("change", () => this.refilter());
      clear.addEventListener("click", () => this.clear());

      const body = element("div", "trace-body");
      const list = element("ol", "records");
      list.dataset.role = "records";
      list.setAttribute("aria-label", "trace records");
      list.addEventListener("click", (event) => {
        const row = event.target.closest("li[data-seq]");
        if (row) this.select(Number(row.dataset.seq));
      });
      const detail = element("pre", "detail", "Click a record (or a bar in the timeline) to see its whole dict.");
      detail.dataset.role = "detail";
      body.append(list, detail);
      this.root.append(controls, timeline, legend, filters, body);
      this.list = list;
      this.filters = filters.elements;
      this.counts();
    }

    // Records in, from the live panel or a file: kept, listed, drawn.
    add(raws) {
      const added = [];
      for (const raw of raws) {
        if (!raw || typeof raw !== "object") continue;
        if (raw.seq === undefined) raw.seq = this.records.length + this.letGo + 1;
        if (this.bySeq.has(raw.seq)) continue; // sent twice (the recent ones, to a page that opened again)
        const record = normalize(raw, this.started);
        this.droppedQueue += record.dropped;
        this.records.push(record);
        this.bySeq.set(record.seq, record);
        this.learn(record);
        added.push(record);
      }
      this.forget();
      const follow = this.list.scrollTop + this.list.clientHeight >= this.list.scrollHeight - 4;
      for (const record of added) if (this.passes(record)) this.list.append(this.row(record));
      while (this.list.children.length > ROWS) this.list.firstElementChild.remove();
      if (follow) this.list.scrollTop = this.list.scrollHeight;
      this.counts();
      this.timeline.schedule();
      for (const listener of this.listeners) listener(added);
    }

    forget() {
      const over = this.records.length - KEPT;
      if (over <= 0) return;
      for (const record of this.records.splice(0, over)) {
        this.bySeq.delete(record.seq);
        this.list.querySelector(`li[data-seq="${record.seq}"]`)?.remove();
      }
      this.letGo += over;
    }

    clear() {
      this.records = [];
      this.bySeq.clear();
      this.list.replaceChildren();
      this.counts();
      this.timeline.draw();
    }

    // A new connection, endpoint or event type becomes a choice in its filter.
    learn(record) {
      const offer = (name, value) => {
        if (!value || this.offered.has(name + " " + value)) return;
        this.offered.add(name + " " + value);
        const option = element("option", "", value.startsWith("kind:") ? value.slice(5) + " (kind)" : printable(value));
        option.value = value;
        this.filters[name].append(option);
      };
      offer("connection", record.connection);
      offer("endpoint", record.endpoint);
      if (record.consumer) {
        this.consumers.set(record.connection, record.consumer);
        offer("endpoint", record.consumer);
      }
      offer("event", "kind:" + record.kind);
      if (record.type && ["in", "out", "layer", "done"].includes(record.kind)) offer("event", record.type);
    }

    passes(record) {
      const { connection, endpoint, event, violations } = this.filters;
      if (connection.value && record.connection !== connection.value) return false;
      if (endpoint.value && record.endpoint !== endpoint.value && this.consumers.get(record.connection) !== endpoint.value) {
        return false;
      }
      if (event.value.startsWith("kind:") ? record.kind !== event.value.slice(5) : event.value && record.type !== event.value) {
        return false;
      }
      return !violations.checked || record.violations.length > 0;
    }

    refilter() {
      const rows = this.records.filter((record) => this.passes(record)).slice(-ROWS);
      this.list.replaceChildren(...rows.map((record) => this.row(record)));
      this.list.scrollTop = this.list.scrollHeight;
      this.counts();
    }

    counts() {
      const status = this.part("trace-status");
      if (!status) return;
      const parts = [`${this.records.length.toLocaleString("en")} records`, `${this.list.children.length.toLocaleString("en")} shown`];
      if (this.droppedPage) parts.push(`${this.droppedPage.toLocaleString("en")} dropped: this page fell behind`);
      if (this.droppedQueue) parts.push(`${this.droppedQueue.toLocaleString("en")} dropped by the trace's queue (queue full)`);
      if (this.letGo) parts.push(`${this.letGo.toLocaleString("en")} older let go`);
      status.textContent = parts.join(" · ");
      status.dataset.droppedPage = String(this.droppedPage);
    }

    clock(record) {
      if (record.t === null) return "";
      const zero = record.started ?? this.started ?? this.records[0]?.t ?? record.t;
      return (record.t - zero).toFixed(3).padStart(8) + "s";
    }

    row(record) {
      const item = element("li", `record kind-${record.kind}`);
      item.dataset.seq = String(record.seq);
      item.dataset.kind = record.kind;
      item.dataset.connection = record.connection;
      item.dataset.endpoint = record.endpoint;
      if (record.type) item.dataset.type = record.type;
      if (this.linked.has(record.seq)) item.classList.add("linked");
      if (this.selected === record.seq) item.classList.add("selected");
      const line = element("div", "line");
      let [arrow, label] = [ARROWS[record.kind] || "?", record.kind];
      if (record.kind === "done" && FAILED[record.outcome]) [arrow, label] = FAILED[record.outcome];
      if (record.kind === "message") label = "trace";
      line.append(
        element("span", "time", this.clock(record)),
        element("span", "connection", printable(record.connection)),
        element("span", "direction", `${arrow} ${label}`),
      );
      if (record.type && ["in", "out", "layer", "done"].includes(record.kind)) line.append(element("span", "type", printable(record.type)));
      if (record.thread) line.append(element("span", "thread", `[${printable(record.thread)}]`));
      if (record.wait !== null) line.append(element("span", record.raw.slow ? "wait slow" : "wait", `wait ${duration(record.wait)}`));
      if (record.handler !== null) line.append(element("span", "handler", `handler ${duration(record.handler)}`));
      if (record.took !== null) line.append(element("span", "handler", `took ${duration(record.took)}`));
      if (record.queries) {
        const [count, seconds] = record.queries;
        line.append(element("span", "handler", `${count} quer${count === 1 ? "y" : "ies"} ${duration(seconds)}`));
      }
      if (record.note) line.append(element("span", "note", printable(record.note)));
      if (record.kind === "message") {
        const lost = Number.isInteger(record.raw.page_dropped) ? record.raw.page_dropped : 0;
        if (lost) item.classList.add("dropped");
        const text = lost ? `${lost.toLocaleString("en")} records dropped here: this page fell behind`
          : record.dropped ? `${record.dropped.toLocaleString("en")} records dropped (the trace's queue was full)`
          : printable(typeof record.raw.text === "string" ? record.raw.text : "");
        line.append(element("span", "note", text));
      }
      if (record.event && record.kind !== "done") {
        const rest = Object.fromEntries(Object.entries(record.event).filter(([key]) => !(key === "type" && ["in", "out", "layer"].includes(record.kind))));
        const body = Object.keys(rest).length ? show(rest) : "";
        if (body) line.append(element("span", "body", body.length > BODY ? body.slice(0, BODY) + " …" : body));
      }
      if (record.traceback) line.append(element("span", "note", "(traceback: click)"));
      item.append(line);
      for (const violation of record.violations) {
        const hint = typeof violation.hint === "string" && violation.hint ? ` (hint: ${printable(violation.hint)})` : "";
        item.append(element("div", "remark violation", `⚠ ${printable(violation.rule)} ${printable(violation.problem)}${hint}`));
      }
      for (const note of record.notes) item.append(element("div", "remark", `ℹ ${printable(note)}`));
      if (record.dropped && record.kind !== "message") {
        item.append(element("div", "remark violation", `⚠ ${record.dropped.toLocaleString("en")} records dropped before this one (the trace's queue was full)`));
      }
      return item;
    }

    // A record's whole dict, as it came; a traceback as its lines.
    select(seq) {
      const record = this.bySeq.get(seq);
      if (!record) return;
      this.selected = seq;
      for (const row of this.list.querySelectorAll("li.selected")) row.classList.remove("selected");
      this.list.querySelector(`li[data-seq="${seq}"]`)?.classList.add("selected");
      const { traceback, ...rest } = record.raw;
      const detail = this.part("detail");
      detail.textContent = printable(JSON.stringify(rest, null, 2));
      detail.dataset.seq = String(seq);
      if (traceback !== undefined) {
        detail.append("\n\ntraceback:\n" + String(traceback).split("\n").map(printable).join("\n"));
      }
      this.timeline.mark();
    }

    // The records of one message lit up in the list and the timeline (hovering a pane's log line).
    highlight(seqs) {
      this.linked = new Set(seqs);
      let first = null;
      for (const row of this.list.children) {
        const lit = this.linked.has(Number(row.dataset.seq));
        row.classList.toggle("linked", lit);
        if (lit && !first) first = row;
      }
      if (first) this.list.scrollTop = first.offsetTop - 8;
      this.timeline.mark();
    }

    recordsOf(connection) {
      return this.records.filter((record) => record.connection === connection);
    }

    pause(paused) {
      this.paused = paused;
      const button = this.part("trace-pause");
      button.textContent = paused ? "Resume" : "Pause";
      button.setAttribute("aria-pressed", String(paused));
      if (!paused) this.resumed();
    }

    // The hello of the live panel: the process clock's zero, and the panel's bounds.
    hello(message) {
      this.started = moment(message.started);
    }

    // The panel lost records for this page just before the ones that follow: a line says so, there.
    droppedByServer(count, nextSeq) {
      this.droppedPage += count;
      const last = this.records.length ? this.records[this.records.length - 1].seq : 0;
      this.add([{ kind: "message", seq: (nextSeq ?? last + 1) - 0.5, page_dropped: count }]);
    }
  }

  // Lanes, one per thread and one per connection; handlers as bars, waits as other bars, linked to
  // the handler that held the thread; where the event loop was held, marked.
  class Timeline {
    constructor(view, node, windowSelect) {
      this.view = view;
      this.node = node;
      this.windowSelect = windowSelect;
      this.pending = null;
      this.offset = null; // the browser's clock minus the server's, at best: for handlers still running
      windowSelect.addEventListener("change", () => this.draw());
      node.addEventListener("click", (event) => {
        const bar = event.target.closest("[data-seq]");
        if (bar) this.view.select(Number(bar.dataset.seq));
      });
      window.addEventListener("resize", () => this.schedule());
      this.draw();
    }

    schedule() {
      if (this.pending !== null) return;
      this.pending = setTimeout(() => {
        this.pending = null;
        this.draw();
      }, 150);
    }

    now(latest) {
      if (!this.view.live || this.offset === null) return latest;
      return Math.max(latest, Date.now() / 1000 - this.offset);
    }

    heard(records) {
      // Records reach the page a little after they happen: the smallest gap is the clocks' offset.
      const now = Date.now() / 1000;
      for (const record of records) {
        if (record.t !== null && (this.offset === null || now - record.t < this.offset)) this.offset = now - record.t;
      }
    }

    // What to draw, from the records: handler bars, waits, loop holds, and links.
    items() {
      const handlers = [];
      const waits = [];
      const holds = [];
      const open = new Map(); // connection -> its handler under way (an in with a wait, no done yet)
      const loops = new Map(); // thread -> true when it is the event loop's
      for (const record of this.view.records) {
        if (record.t === null) continue;
        if ((record.kind === "in" || record.kind === "layer") && record.wait !== null && !LAYER_CALLS.has(record.type)) {
          waits.push({ record, start: record.t, end: record.t + record.wait });
          open.set(record.connection, record);
        } else if (record.kind === "done" && record.handler !== null) {
          open.delete(record.connection);
          const thread = record.thread || "?";
          if (record.onLoop !== null) loops.set(thread, loops.get(thread) || record.onLoop);
          handlers.push({ record, thread, start: record.t - record.handler, end: record.t });
          if (record.heldLoop) {
            const opened = record.t - record.seconds;
            holds.push({ record, thread, start: opened + record.heldLoop[0], end: opened + record.heldLoop[0] + record.heldLoop[1] });
          }
        }
      }
      const running = [...open.values()].map((record) => ({ record, thread: record.thread || "?", start: record.t + record.wait, end: null }));
      return { handlers, waits, holds, running, loops };
    }

    draw() {
      const node = this.node;
      const width = Math.max(node.clientWidth || node.parentNode?.clientWidth || 900, 480);
      const { handlers, waits, holds, running, loops } = this.items();
      const moments = [...handlers.map((h) => h.end), ...waits.map((w) => w.end), ...this.view.records.map((r) => r.t).filter((t) => t !== null)];
      node.replaceChildren();
      if (!moments.length) {
        node.setAttribute("viewBox", `0 0 ${width} 40`);
        node.setAttribute("height", "40");
        node.append(svg("text", { x: 10, y: 24, class: "empty" }, "no handler has run yet"));
        return;
      }
      const latest = this.now(Math.max(...moments));
      const choice = this.windowSelect.value;
      const earliest = Math.min(...this.view.records.map((r) => r.t).filter((t) => t !== null), ...waits.map((w) => w.start), ...handlers.map((h) => h.start));
      const from = choice === "all" ? earliest : Math.max(earliest, latest - Number(choice));
      const span = Math.max(latest - from, 0.001);
      const inView = (item) => (item.end ?? latest) >= from;
      const shownHandlers = handlers.filter(inView).slice(-DRAWN);
      const shownWaits = waits.filter(inView).filter((w) => w.end - w.start > 0).slice(-DRAWN);
      const shownHolds = holds.filter(inView);
      const shownRunning = running.filter(inView);

      // Lanes: the event loop first, then the other threads, then connections, most recently active last.
      const threads = [...new Set([...shownHandlers, ...shownHolds, ...shownRunning].map((h) => h.thread))];
      threads.sort((a, b) => Number(Boolean(loops.get(b))) - Number(Boolean(loops.get(a))) || a.localeCompare(b));
      const lastActive = new Map();
      for (const item of [...shownHandlers, ...shownWaits, ...shownRunning]) {
        lastActive.set(item.record.connection, Math.max(lastActive.get(item.record.connection) ?? -Infinity, item.end ?? latest));
      }
      let connections = [...lastActive.keys()];
      const hidden = Math.max(connections.length - LANES, 0);
      if (hidden) connections = connections.sort((a, b) => lastActive.get(a) - lastActive.get(b)).slice(-LANES);
      const firstSeen = new Map(this.view.records.map((r, index) => [r.connection, index]).reverse());
      connections.sort((a, b) => (firstSeen.get(a) ?? 0) - (firstSeen.get(b) ?? 0));

      const LABEL = 250;
      const LANE = 22;
      const AXIS = 20;
      const lanes = new Map();
      const laneKeys = [...threads.map((t) => "thread:" + t), ...connections.map((c) => "connection:" + c)];
      const height = AXIS + laneKeys.length * LANE + (hidden ? LANE : 0) + 6;
      node.setAttribute("viewBox", `0 0 ${width} ${height}`);
      node.setAttribute("height", String(height));
      const x = (t) => LABEL + ((Math.max(t, from) - from) / span) * (width - LABEL - 12);

      const defs = svg("defs");
      const marker = svg("marker", { id: "trace-arrow", viewBox: "0 0 8 8", refX: "7", refY: "4", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
      marker.append(svg("path", { d: "M0,0 L8,4 L0,8 z", class: "arrowhead" }));
      const hatch = svg("pattern", { id: "trace-wait", width: "6", height: "6", patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" });
      hatch.append(svg("rect", { width: "6", height: "6", class: "wait-fill" }), svg("line", { x1: "0", y1: "0", x2: "0", y2: "6", class: "wait-stripe" }));
      defs.append(marker, hatch);
      node.append(defs);

      laneKeys.forEach((key, index) => {
        const y = AXIS + index * LANE;
        lanes.set(key, y);
        const [kind, name] = [key.slice(0, key.indexOf(":")), key.slice(key.indexOf(":") + 1)];
        const group = svg("g", { class: `lane lane-${kind}`, "data-lane": kind, "data-name": name });
        group.append(svg("rect", { x: 0, y, width, height: LANE, class: index % 2 ? "lane-bg odd" : "lane-bg" }));
        let label = printable(name);
        if (kind === "thread") label = (loops.get(name) ? "event loop · " : loops.get(name) === false ? "sync thread · " : "") + label;
        group.append(svg("text", { x: 6, y: y + 15, class: "lane-label" }, label.length > 36 ? label.slice(0, 35) + "…" : label));
        node.append(group);
      });
      if (hidden) node.append(svg("text", { x: 6, y: AXIS + laneKeys.length * LANE + 15, class: "lane-label more" }, `+${hidden} connections not drawn`));

      // The axis: the process clock, as in the list's time column.
      const zero = this.view.records.find((r) => r.t !== null)?.started ?? this.view.started ?? earliest;
      const step = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600].find((s) => span / s <= 10) || 1200;
      const axis = svg("g", { class: "axis" });
      for (let tick = Math.ceil((from - zero) / step) * step; tick <= latest - zero + 1e-9; tick += step) {
        const tx = x(zero + tick);
        axis.append(svg("line", { x1: tx, y1: AXIS - 4, x2: tx, y2: height, class: "tick" }));
        axis.append(svg("text", { x: tx + 2, y: AXIS - 7, class: "tick-label" }, `${Number(tick.toFixed(3))}s`));
      }
      node.append(axis);

      const bar = (lane, start, end, cls, record, title, extra = {}) => {
        const y = lanes.get(lane);
        if (y === undefined) return null;
        const x0 = x(start);
        const rect = svg("rect", {
          x: x0, y: y + 4, width: Math.max(x(end) - x0, 1.5), height: LANE - 8, class: cls,
          "data-seq": String(record.seq), "data-connection": record.connection, ...extra,
        });
        rect.append(svg("title", {}, title));
        node.append(rect);
        return rect;
      };
      const threadBars = new Map(); // seq of a done -> its bar on the thread lane
      for (const h of shownHandlers) {
        const r = h.record;
        const what = `${r.connection} ${r.type || ""} handler ${duration(r.handler)} on ${r.thread}`;
        const cls = `handler ${loops.get(h.thread) ? "on-loop" : "on-worker"}${r.outcome ? " failed" : ""}`;
        threadBars.set(r.seq, bar("thread:" + h.thread, h.start, h.end, cls, r, printable(what), { "data-lane": "thread", "data-thread": h.thread }));
        bar("connection:" + r.connection, h.start, h.end, cls, r, printable(what), { "data-lane": "connection" });
      }
      for (const h of shownRunning) {
        const r = h.record;
        const what = `${r.connection} ${r.type || ""} handler still running on ${r.thread}`;
        bar("thread:" + h.thread, h.start, latest, "handler running", r, printable(what), { "data-lane": "thread", "data-thread": h.thread });
        bar("connection:" + r.connection, h.start, latest, "handler running", r, printable(what), { "data-lane": "connection" });
      }
      for (const hold of shownHolds) {
        const r = hold.record;
        const what = `${r.connection}'s handler held the event loop for ${duration(hold.end - hold.start)} without letting go`;
        bar("thread:" + hold.thread, hold.start, hold.end, "blocked", r, printable(what), { "data-lane": "thread", "data-thread": hold.thread });
        const y = lanes.get("thread:" + hold.thread);
        if (y !== undefined && x(hold.end) - x(hold.start) > 60) {
          node.append(svg("text", { x: x(hold.start) + 4, y: y + 15, class: "blocked-label" }, "event loop blocked"));
        }
      }
      // Waits, and what each waited for: the handler of another connection that held the thread.
      for (const w of shownWaits) {
        const r = w.record;
        const why = r.notes.find((note) => note.startsWith("waited")) || "";
        const rect = bar("connection:" + r.connection, w.start, w.end, r.raw.slow ? "wait slow" : "wait", r,
          printable(`${r.connection} ${r.type || ""} waited ${duration(r.wait)} before its handler${why ? ": " + why : ""}`),
          { "data-lane": "connection", "data-held-by": r.heldBy.join(" ") });
        if (rect && r.heldBy.length) this.link(rect, r, w.start - (r.raw.slow ? 0 : LATE), w.end, shownHandlers, shownHolds, threadBars);
      }
      // An arrival the event loop's hold delayed before the server could read it.
      for (const record of this.view.records) {
        if (record.heldBy.length && record.wait !== null && !record.raw.slow && record.t !== null && record.t >= from) {
          const y = lanes.get("connection:" + record.connection);
          if (y === undefined) continue;
          const tick = svg("rect", { x: x(record.t) - 1, y: y + 2, width: 3, height: LANE - 4, class: "late", "data-seq": String(record.seq), "data-connection": record.connection, "data-held-by": record.heldBy.join(" ") });
          tick.append(svg("title", {}, printable(record.notes.find((n) => n.startsWith("arrived")) || "arrived late")));
          node.append(tick);
          this.link(tick, record, record.t - LATE, record.t, shownHandlers, shownHolds, threadBars);
        }
      }
      this.mark();
    }

    // A curve from a wait to the bar of the handler that held the thread meanwhile.
    link(from, record, start, end, handlers, holds, threadBars) {
      let best = null;
      let overlap = -Infinity;
      for (const h of handlers) {
        if (!record.heldBy.includes(h.record.connection)) continue;
        const shared = Math.min(end, h.end) - Math.max(start, h.start);
        if (shared > overlap) [best, overlap] = [h, shared];
      }
      if (!best || overlap < -LATE) return;
      const target = threadBars.get(best.record.seq);
      if (!target) return;
      const fx = Number(from.getAttribute("x")) + Number(from.getAttribute("width")) / 2;
      const fy = Number(from.getAttribute("y"));
      const tx = Math.min(Math.max(fx, Number(target.getAttribute("x"))), Number(target.getAttribute("x")) + Number(target.getAttribute("width")));
      const ty = Number(target.getAttribute("y")) + Number(target.getAttribute("height"));
      const bend = (fy - ty) / 2;
      const path = svg("path", {
        d: `M${fx},${fy} C${fx},${fy - bend} ${tx},${ty + bend} ${tx},${ty}`,
        class: "link", "marker-end": "url(#trace-arrow)",
        "data-from": String(record.seq), "data-to": String(best.record.seq),
        "data-connection": record.connection, "data-held-by": best.record.connection,
      });
      path.append(svg("title", {}, printable(`${record.connection} waited for ${best.record.connection}'s handler (${best.record.type || "?"}, ${duration(best.record.handler)})`)));
      this.node.append(path);
    }

    // The hovered message's records and the selected one, lit up.
    mark() {
      for (const item of this.node.querySelectorAll("[data-seq]")) {
        const seq = Number(item.dataset.seq);
        item.classList.toggle("linked", this.view.linked.has(seq));
        item.classList.toggle("selected", this.view.selected === seq);
      }
    }
  }

  // The live panel: batches of records from the server, each acknowledged once drawn (or, paused, held
  // unacknowledged until the page resumes).
  function connectLive(view, path) {
    const state = view.root.closest("section")?.querySelector('[data-role="trace-state"]');
    const say = (text) => {
      if (!state) return;
      state.textContent = text;
      state.dataset.state = text;
    };
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let socket;
    let opened = false;
    try {
      socket = new WebSocket(`${scheme}//${location.host}${path}`);
    } catch (error) {
      say("unavailable");
      return;
    }
    say("connecting");
    socket.addEventListener("open", () => {
      opened = true;
      say("live");
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      if (message.type === "hello") {
        view.hello(message);
      } else if (message.type === "records") {
        held.push(message);
        if (!view.paused) take();
      }
    });
    const held = [];
    const take = () => {
      for (const message of held.splice(0)) {
        const records = Array.isArray(message.records) ? message.records : [];
        if (message.dropped) view.droppedByServer(message.dropped, records[0]?.seq);
        view.timeline.heard(records.map((raw) => ({ t: moment(raw.at) })));
        view.add(records);
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ ack: message.batch }));
      }
    };
    view.resumed = take;
    socket.addEventListener("close", () => {
      say(opened ? "closed" : "refused");
      if (!opened && state) {
        state.title = "The server refused the panel: this page's origin is not one the origin check allows "
          + "(DJANGO_ALLOWED_ORIGINS), or as many pages as it serves already watch.";
      }
    });
    view.socket = socket;
  }

  window.ExplorerTrace = { TraceView, Timeline, normalize, show, printable, duration, moment };

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.querySelector('[data-role="trace"]');
    if (!root) return;
    const live = root.dataset.live;
    const view = new TraceView(root, { live: Boolean(live) });
    window.explorerTrace = view;
    if (live) {
      connectLive(view, live);
      // Handlers still running grow as time passes.
      setInterval(() => {
        if (view.timeline.items().running.length) view.timeline.schedule();
      }, 500);
    } else {
      const data = document.getElementById("trace-records");
      const records = data ? JSON.parse(data.textContent) : [];
      view.add(records);
    }
  });
})();
