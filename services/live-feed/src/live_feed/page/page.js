// The live page: GET /state for what is, GET /events (SSE) for what happens.
//
// Every time the event stream opens (first load, and each reconnect after a
// dropped connection) and every time the gateway sends `resync` (it lost
// Redis for a while and is subscribed again, or this page fell behind), the
// page loads /state again:
// notices are lossy by design, the state is not. Notices that arrive while
// /state is loading are applied again on top of it, so a notice newer than
// the state's reads is not undone by it.
"use strict";

const MAX_ORDERS = 200;
const MAX_LOG = 40;

const view = {
  orders: new Map(), // order id -> order (see blankOrder)
  incidents: [], // dead-letter and mail.parked notices, newest first
  links: { trace_ui: "", mail_ui: "" },
  notices: 0,
  stateLoads: 0,
  fresh: new Set(), // order ids to highlight on the next render
};

let loading = null; // the /state load in flight
let loadAgain = false;
let buffered = null; // notices received while /state loads
let renderQueued = false;

function blankOrder(id) {
  return {
    id,
    customer: "",
    status: "placed",
    total: "",
    currency: "",
    placedAt: null, // ms since the epoch
    seenAt: null, // of the first notice heard about it, to sort it when placedAt is unknown
    traceId: null,
    points: [], // {kind, points, at}; null: point-service did not answer
    mails: {}, // kind ("order", "points") -> {at, attempts, state}; null: unknown
  };
}

// ---- applying the state and the notices --------------------------------

function applyState(state) {
  view.links = state.links;
  view.incidents = state.incidents.slice();
  view.stateLoads += 1;
  setBadge("feed", state.feed, `feed ${state.feed}`);
  renderServices(state.services);
  text("state-at", `at ${clock(Date.parse(state.at))}`);
  // Without order-service there is no list of orders: keep what is shown.
  if (state.services["order-service"].status !== "ok") return;
  const previous = view.orders;
  view.orders = new Map();
  for (const o of state.orders) {
    const known = previous.get(o.order_id);
    const order = blankOrder(o.order_id);
    order.customer = o.customer_id;
    order.status = o.status;
    order.total = o.total;
    order.currency = o.currency;
    order.placedAt = Date.parse(o.created_at);
    order.traceId = o.trace_id || (known ? known.traceId : null);
    // A service that did not answer: what the notices told stays shown.
    order.points = o.points === null ? (known ? known.points : null) : o.points.map((p) => ({
      kind: p.kind, points: p.points, at: Date.parse(p.created_at),
    }));
    if (o.mails === null) {
      order.mails = known ? known.mails : null;
    } else {
      for (const m of o.mails) {
        order.mails[m.kind] = {
          at: m.delivered_at ? Date.parse(m.delivered_at) : null,
          attempts: m.attempts,
          state: m.delivered_at ? "sent" : "pending",
        };
      }
      // Parked mails are not deliveries: only their notice tells of them.
      for (const [kind, mail] of Object.entries((known && known.mails) || {})) {
        if (mail.state === "parked" && !order.mails[kind]) order.mails[kind] = mail;
      }
    }
    view.orders.set(order.id, order);
  }
}

function orderOf(notice) {
  let order = view.orders.get(notice.order_id);
  if (!order) {
    order = blankOrder(notice.order_id);
    order.seenAt = Date.parse(notice.at);
    view.orders.set(order.id, order);
    view.fresh.add(order.id);
  }
  if (notice.trace_id && (notice.kind === "order.placed" || !order.traceId)) {
    order.traceId = notice.trace_id;
  }
  if (notice.customer_id && !order.customer) order.customer = notice.customer_id;
  return order;
}

function mailKind(detail) {
  return String(detail.mail || "");
}

function applyNotice(notice) {
  const at = Date.parse(notice.at);
  const detail = notice.detail || {};
  if (notice.kind === "dead-letter" || notice.kind === "mail.parked") {
    if (!view.incidents.some((i) => sameNotice(i, notice))) view.incidents.unshift(notice);
    view.incidents.length = Math.min(view.incidents.length, MAX_LOG);
  }
  if (!notice.order_id) return;
  const order = orderOf(notice);
  switch (notice.kind) {
    case "order.placed":
      order.placedAt = order.placedAt || at;
      if (detail.total !== undefined) order.total = String(detail.total);
      if (detail.currency !== undefined) order.currency = String(detail.currency);
      break;
    case "order.cancelled":
      order.status = "cancelled";
      break;
    case "points.granted":
    case "points.revoked": {
      const kind = notice.kind === "points.granted" ? "grant" : "revoke";
      const points = Number(detail.points || 0) * (kind === "revoke" ? -1 : 1);
      if (order.points === null) order.points = [];
      if (!order.points.some((p) => Math.sign(p.points) === Math.sign(points) && p.points !== 0)) {
        order.points.push({ kind, points, at });
      }
      break;
    }
    case "mail.sent":
    case "mail.parked": {
      const kind = mailKind(detail);
      if (!kind) break;
      if (order.mails === null) order.mails = {};
      const known = order.mails[kind];
      if (known && known.state === "sent") break;
      order.mails[kind] = {
        at,
        attempts: Number(detail.attempts || 1),
        state: notice.kind === "mail.sent" ? "sent" : "parked",
      };
      break;
    }
    default:
      break;
  }
}

function sameNotice(a, b) {
  return a.kind === b.kind && a.at === b.at && a.order_id === b.order_id && a.source === b.source;
}

function onNotice(notice) {
  view.notices += 1;
  logNotice(notice);
  if (buffered !== null) buffered.push(notice);
  applyNotice(notice);
  queueRender();
}

async function loadState() {
  if (loading) {
    loadAgain = true;
    return loading;
  }
  buffered = [];
  loading = (async () => {
    try {
      const response = await fetch("/state", { cache: "no-store" });
      if (!response.ok) throw new Error(`GET /state: HTTP ${response.status}`);
      const state = await response.json();
      const missed = buffered;
      applyState(state);
      for (const notice of missed) applyNotice(notice);
    } catch (error) {
      setBadge("feed", "error", `state: ${error.message}`);
    } finally {
      buffered = null;
      loading = null;
      queueRender();
      if (loadAgain) {
        loadAgain = false;
        loadState();
      }
    }
  })();
  return loading;
}

// ---- the event stream ---------------------------------------------------

function connect() {
  const events = new EventSource("/events");
  events.addEventListener("open", () => {
    setBadge("connection", "live", "live");
    loadState();
  });
  events.addEventListener("error", () => {
    // EventSource reconnects by itself (after the server's `retry:`).
    const closed = events.readyState === EventSource.CLOSED;
    setBadge("connection", closed ? "error" : "reconnecting", closed ? "closed" : "reconnecting…");
    if (closed) setTimeout(connect, 3000);
  });
  events.addEventListener("notice", (event) => onNotice(JSON.parse(event.data)));
  events.addEventListener("resync", () => loadState());
  events.addEventListener("feed", (event) => {
    const feed = JSON.parse(event.data).feed;
    setBadge("feed", feed, `feed ${feed}`);
  });
}

// ---- rendering ------------------------------------------------------------

function queueRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

function render() {
  const orders = [...view.orders.values()]
    .sort((a, b) => (b.placedAt || b.seenAt) - (a.placedAt || a.seenAt))
    .slice(0, MAX_ORDERS);
  const body = document.querySelector("#orders tbody");
  body.replaceChildren(...orders.map(orderRow));
  view.fresh.clear();
  document.getElementById("no-orders").hidden = orders.length > 0;
  const incidents = document.getElementById("incidents");
  incidents.replaceChildren(...view.incidents.map(logItem));
  document.getElementById("no-incidents").hidden = view.incidents.length > 0;
  text("notices-count", String(view.notices));
  text("state-loads", String(view.stateLoads));
}

function orderRow(order) {
  const row = el("tr");
  row.dataset.orderId = order.id;
  if (view.fresh.has(order.id)) row.className = "fresh";
  const points = pointsHop(order);
  const orderMail = mailHop(order, "order");
  const pointsMail = mailHop(order, "points");
  row.dataset.points = points.state;
  row.dataset.orderMail = orderMail.state;
  row.dataset.pointsMail = pointsMail.state;
  const status = el("td", order.status);
  status.className = `status-${order.status}`;
  const total = el("td", order.total ? `${order.total} ${order.currency}` : "");
  total.className = "num";
  const customer = el("td", order.customer);
  customer.className = "customer";
  customer.title = order.customer;
  const id = el("td");
  id.append(el("code", order.id.slice(0, 8)));
  id.title = order.id;
  const placed = el("td", order.placedAt ? clock(order.placedAt) : "?");
  placed.className = "placed";
  if (!order.placedAt) placed.title = "its placement was not heard (nor loaded from /state yet)";
  row.append(
    placed,
    id,
    customer,
    total,
    status,
    hopCell(points),
    hopCell(orderMail),
    hopCell(pointsMail),
    linksCell(order),
  );
  return row;
}

function pointsHop(order) {
  if (order.points === null) return { state: "unknown", value: "?", why: "point-service did not answer" };
  if (order.points.length === 0) return { state: "pending", value: "…" };
  const sum = order.points.reduce((total, p) => total + p.points, 0);
  const granted = order.points.filter((p) => p.points > 0).map((p) => p.at);
  const first = granted.length ? Math.min(...granted) : null;
  const revoked = order.points.some((p) => p.points < 0);
  return {
    state: "done",
    value: `${sum >= 0 ? "+" : ""}${sum} pts${revoked ? " (revoked)" : ""}`,
    latency: latency(order.placedAt, first),
  };
}

function mailHop(order, kind) {
  if (order.mails === null) return { state: "unknown", value: "?", why: "notification-service did not answer" };
  const mail = order.mails[kind];
  if (!mail || mail.state === "pending") return { state: "pending", value: "…" };
  if (mail.state === "parked") return { state: "parked", value: "parked", why: "in the parking lot" };
  const retried = mail.attempts > 1 ? ` (${mail.attempts} attempts)` : "";
  return { state: "done", value: `sent${retried}`, latency: latency(order.placedAt, mail.at) };
}

function hopCell(hop) {
  const cell = el("td");
  const span = el("span");
  span.className = "hop";
  span.dataset.state = hop.state;
  const value = el("span", hop.value);
  value.className = "value";
  span.append(value);
  if (hop.latency) {
    const took = el("span", ` ${hop.latency}`);
    took.className = "latency";
    span.append(took);
  }
  if (hop.why) span.title = hop.why;
  cell.append(span);
  return cell;
}

function linksCell(order) {
  const cell = el("td");
  cell.className = "links";
  if (view.links.trace_ui && order.traceId) {
    cell.append(link(`${view.links.trace_ui}/trace/${order.traceId}`, "trace", "The order's trace"));
  }
  if (view.links.mail_ui) {
    const url = `${view.links.mail_ui}/search?q=${encodeURIComponent(order.id)}`;
    cell.append(link(url, "mails", "The order's mails in the mail catcher"));
  }
  return cell;
}

function renderServices(services) {
  const badges = Object.entries(services).map(([name, s]) => {
    const badge = el("span", name);
    badge.className = "badge";
    badge.dataset.state = s.status;
    badge.dataset.service = name;
    badge.title = s.reason ? `${s.status}: ${s.reason}` : s.status;
    return badge;
  });
  document.getElementById("services").replaceChildren(...badges);
}

function logNotice(notice) {
  const list = document.getElementById("notices");
  list.prepend(logItem(notice));
  while (list.children.length > MAX_LOG) list.lastChild.remove();
}

function logItem(notice) {
  const item = el("li");
  const when = el("span", clock(Date.parse(notice.at)));
  when.className = "when";
  const kind = el("span", notice.kind);
  kind.className = "kind";
  item.append(when, kind, ` from ${notice.source}`);
  if (notice.order_id) {
    item.append(" · order ", el("code", notice.order_id.slice(0, 8)));
  }
  const detail = Object.entries(notice.detail || {}).map(([k, v]) => `${k}=${v}`).join(" ");
  if (detail) item.append(` · ${detail}`);
  return item;
}

// ---- small helpers --------------------------------------------------------

function latency(from, to) {
  if (!from || !to) return "";
  const ms = Math.max(0, to - from);
  return ms < 1000 ? `+${Math.round(ms)} ms` : `+${(ms / 1000).toFixed(1)} s`;
}

function clock(ms) {
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function el(tag, content) {
  const node = document.createElement(tag);
  if (content !== undefined) node.textContent = content;
  return node;
}

function link(href, label, title) {
  const a = el("a", label);
  a.href = href;
  a.title = title;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

function text(id, value) {
  document.getElementById(id).textContent = value;
}

function setBadge(id, state, label) {
  const badge = document.getElementById(id);
  badge.dataset.state = state;
  badge.textContent = label;
}

connect();
