// wsgw dashboard: the reference browser client (see docs/PROTOCOL.md, "Reference client").
// It connects to the node that served it, keeps its subscriptions across reconnects,
// tracks seq to show gaps, and charts the node's /stats.
"use strict";

const state = {
  ws: null,
  channels: [],          // what the user asked for; resubscribed after every reconnect
  credential: null,      // {token} or {api_key}, sent again after every reconnect
  lastSeq: 0,
  lastAck: "",           // id of the last "subscribed" reply
  messages: 0,
  gaps: 0,
  resyncs: 0,
  reconnects: 0,
  backoffMs: 500,
  node: "",
  session: "",
};
window.wsgwDashboard = state; // for tests and the curious

const $ = (id) => document.getElementById(id);
const MAX_ROWS = 200;

function setStatus(up, text) {
  const s = $("status");
  s.className = "status " + (up ? "up" : "down");
  s.textContent = text;
}

function banner(text) {
  const b = $("banner");
  b.hidden = !text;
  b.textContent = text || "";
}

function row(seq, channel, data, cls) {
  const tr = document.createElement("tr");
  if (cls) tr.className = cls;
  for (const v of [seq, channel, data]) {
    const td = document.createElement("td");
    td.textContent = v;
    tr.appendChild(td);
  }
  const body = $("log").tBodies[0];
  body.insertBefore(tr, body.firstChild);
  while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
}

function renderCounters() {
  $("count").textContent = state.messages;
  $("gaps").textContent = state.gaps;
  $("resyncs").textContent = state.resyncs;
  $("reconnects").textContent = state.reconnects;
  $("seq").textContent = state.lastSeq || "-";
  $("subscriptions").replaceChildren(...state.channels.map((c) => {
    const s = document.createElement("span");
    s.textContent = c;
    return s;
  }));
}

function send(obj) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(obj));
}

function subscribeAll() {
  if (state.channels.length) send({ type: "subscribe", channels: state.channels, id: "resubscribe" });
}

// Every frame carries seq: 1 on the welcome, +1 per frame for this connection. A jump
// means frames addressed to us were dropped (slow consumer); refetch what you show.
function trackSeq(m) {
  if (typeof m.seq !== "number") return false;
  const gap = state.lastSeq && m.seq !== state.lastSeq + 1;
  if (gap) state.gaps += m.seq - state.lastSeq - 1;
  state.lastSeq = m.seq;
  return gap;
}

function onFrame(ev) {
  let m;
  try { m = JSON.parse(ev.data); } catch (e) { return; }
  const gap = trackSeq(m);
  switch (m.type) {
    case "welcome":
      state.node = m.node;
      state.session = m.session;
      state.backoffMs = 500; // a healthy connection resets the backoff
      $("node").textContent = "node " + m.node + " · session " + m.session + " · role " + m.role;
      setStatus(true, "connected");
      subscribeAll();
      break;
    case "message":
      state.messages++;
      row(m.seq, m.channel, typeof m.data === "string" ? m.data : JSON.stringify(m.data), gap ? "gap" : "");
      break;
    case "resync":
      state.resyncs++;
      banner("Redis reconnected: messages may have been missed; refetch your state.");
      row(m.seq, "(resync)", m.reason, "control");
      break;
    case "auth_expiring":
      banner("credential expires in " + m.expires_in + " s: authenticate again");
      break;
    case "error":
      row(m.seq, "(error " + m.code + ")", m.message + (m.channel ? " " + m.channel : ""), "control");
      break;
    case "subscribed":
      state.lastAck = m.id || "";
      row(m.seq, "(subscribed)", (m.id ? m.id + ": " : "") + m.channels.join(", "), gap ? "gap" : "control");
      break;
    default:
      row(m.seq, "(" + m.type + ")", JSON.stringify(m.channels || m.id || ""), gap ? "gap" : "control");
  }
  renderCounters();
}

function connect() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  const ws = new WebSocket(url);
  state.ws = ws;
  state.lastSeq = 0; // seq starts again with every connection
  state.lastAck = "";
  setStatus(false, "connecting");
  ws.onopen = () => { if (state.credential) send(Object.assign({ type: "auth" }, state.credential)); };
  ws.onmessage = onFrame;
  ws.onclose = (ev) => {
    if (state.ws !== ws) return;
    // Reconnect with exponential backoff and jitter; a load balancer may send us to
    // another node: subscriptions are restored after the welcome.
    const delay = state.backoffMs * (0.8 + Math.random() * 0.4);
    state.backoffMs = Math.min(state.backoffMs * 2, 30000);
    state.reconnects++;
    setStatus(false, "closed " + ev.code + ", retrying in " + Math.round(delay) + " ms");
    renderCounters();
    setTimeout(connect, delay);
  };
}

$("subscribe-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const add = $("channels").value.split(",").map((s) => s.trim()).filter(Boolean);
  for (const c of add) if (!state.channels.includes(c)) state.channels.push(c);
  if (add.length) send({ type: "subscribe", channels: add, id: "ui" });
  $("channels").value = "";
  renderCounters();
});

$("auth-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const v = $("token").value.trim();
  if (!v) return;
  state.credential = v.split(".").length === 3 ? { token: v } : { api_key: v };
  send(Object.assign({ type: "auth" }, state.credential));
});

// ---- /stats as small live charts -----------------------------------------------------
const series = { conn: [], frames: [], in: [], drop: [] };
let prev = null;

function draw(id, values) {
  const c = $(id);
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const max = Math.max(1, ...values);
  g.strokeStyle = "#2d6cdf";
  g.beginPath();
  values.forEach((v, i) => {
    const x = (i / Math.max(1, values.length - 1)) * (c.width - 2) + 1;
    const y = c.height - 2 - (v / max) * (c.height - 4);
    if (i) g.lineTo(x, y); else g.moveTo(x, y);
  });
  g.stroke();
}

function push(key, v, label) {
  const s = series[key];
  s.push(v);
  if (s.length > 60) s.shift();
  draw("c-" + key, s);
  $("v-" + key).textContent = label;
}

async function pollStats() {
  try {
    const r = await fetch("/stats", { cache: "no-store" });
    if (r.ok) {
      const s = await r.json();
      $("stats-node").textContent = s.node;
      if (prev) {
        const dt = Math.max(0.001, (Date.now() - prev.t) / 1000);
        const rate = (a, b) => Math.max(0, (a - b) / dt);
        push("frames", rate(s.messages.frames_sent, prev.s.messages.frames_sent), "");
        push("in", rate(s.messages.from_redis, prev.s.messages.from_redis), "");
        push("drop", rate(s.slow_consumers.dropped, prev.s.slow_consumers.dropped), "");
        $("v-frames").textContent = Math.round(series.frames[series.frames.length - 1]);
        $("v-in").textContent = Math.round(series.in[series.in.length - 1]);
        $("v-drop").textContent = Math.round(series.drop[series.drop.length - 1]);
      }
      push("conn", s.connections.current, String(s.connections.current));
      prev = { t: Date.now(), s };
    }
  } catch (e) { /* the node may be down: the WebSocket side shows it */ }
  setTimeout(pollStats, 1000);
}

renderCounters();
connect();
pollStats();
