// siemgate console: signs in with an admin API token (kept in this tab's sessionStorage),
// then shows sources, sinks and dead letters from the admin API, refreshed every 1.5 s.
// Action buttons appear only for a token with the admin role. Everything from the API is
// written as text (textContent), never as HTML.
"use strict";

const KEY = "siemgate.token";
const REFRESH_MS = 1500;
let role = null;
let timer = null;
let busy = false;
// The last outcome of each action, by button, so it stays shown across refreshes.
const results = {};

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(typeof c === "string" || typeof c === "number" ? String(c) : c);
  }
  return e;
}

function fact(label, value) {
  return el("span", {}, label + " ", el("b", {}, value === null || value === undefined ? "-" : String(value)));
}

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + sessionStorage.getItem(KEY) } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (r.status === 401) { signOut("The token was refused."); throw new Error("unauthorized"); }
  return { status: r.status, json };
}

function show(id, on) { document.getElementById(id).hidden = !on; }

function signOut(message) {
  sessionStorage.removeItem(KEY);
  role = null;
  if (timer) { clearInterval(timer); timer = null; }
  show("console", false);
  show("sign-out", false);
  show("sign-in", true);
  document.getElementById("who").textContent = "";
  document.getElementById("sign-in-error").textContent = message || "";
}

async function signIn(token) {
  sessionStorage.setItem(KEY, token);
  let who;
  try { who = await api("GET", "/api/v1/token"); } catch (_) { return; }
  if (who.status !== 200 || !who.json) { signOut("The token was refused."); return; }
  role = who.json.role;
  document.getElementById("who").textContent = "signed in as " + who.json.name + " (" + role + ")";
  show("sign-in", false);
  show("sign-out", true);
  show("console", true);
  await refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

// An action button (admin tokens only): runs `run`, shows its outcome next to the button, and
// refreshes.
function action(label, attrs, run) {
  if (role !== "admin") return null;
  const key = Object.values(attrs).join(" ");
  const out = el("span", { class: "result" }, results[key] || "");
  const b = el("button", Object.assign({ type: "button" }, attrs), label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    busy = true;
    out.textContent = "...";
    try {
      results[key] = await run();
    } catch (e) {
      results[key] = "failed: " + e.message;
    } finally {
      out.textContent = results[key];
      b.disabled = false;
      busy = false;
      refresh();
    }
  });
  return el("span", {}, b, out);
}

function withoutRaw(event) {
  const copy = Object.assign({}, event);
  delete copy.raw;
  return copy;
}

function sourceCard(s, recent) {
  const card = el("div", { class: "card", "data-source": s.id });
  const state = !s.enabled ? ["disabled", "bad"] : s.suppressed ? ["suppressed", "bad"] : ["enabled", "ok"];
  card.append(el("div", { class: "card-head" },
    el("h3", {}, s.id + (s.name ? " — " + s.name : "")),
    el("span", { class: "badge " + state[1] }, state[0]),
    action("Send the vendor's test", { "data-action": "source-test", "data-id": s.id }, async () => {
      const r = await api("POST", "/api/v1/sources/" + encodeURIComponent(s.id) + "/test");
      if (r.status !== 200) return "failed: " + (r.json && r.json.error);
      const sinks = r.json.sinks.map((k) => k.id + " " + k.status + (k.error ? " (" + k.error + ")" : "")).join(", ");
      return "test " + r.json.status + ": " + r.json.events + " event(s); " + (sinks || "no sinks");
    })));
  card.append(el("div", { class: "facts" },
    fact("hook", s.hook_path), fact("vendor", s.vendor), fact("auth", s.auth_scheme),
    fact("sinks", s.sinks.join(", ") || "-"), fact("events accepted", s.events_accepted),
    fact("last event", s.last_event_at), fact("auth failures", s.auth_failures)));
  if (recent) {
    const byReason = {};
    for (const r of recent.refusals) byReason[r.reason] = (byReason[r.reason] || 0) + 1;
    const reasons = Object.entries(byReason).map(([k, n]) => k + " × " + n).join(", ");
    card.append(el("div", { class: "facts" }, fact("recent refusals", reasons || "none")));
    const events = el("div", { class: "recent" });
    for (const e of recent.events.slice(0, 3)) {
      const normalized = e.event ? JSON.stringify(withoutRaw(e.event), null, 2) : "(" + e.bytes + " bytes: too large to keep)";
      const raw = e.event && e.event.raw !== undefined ? JSON.stringify(e.event.raw, null, 2) : "-";
      events.append(el("div", { class: "muted" }, "received " + e.received_at + (e.event ? " — " + (e.event.title || e.event.id) : "")),
        el("div", { class: "pair" },
          el("pre", { class: "normalized", "data-event-id": e.event ? String(e.event.id) : "" }, normalized),
          el("pre", { class: "raw" }, raw)));
    }
    if (!recent.events.length) events.append(el("p", { class: "muted" }, "No event yet."));
    card.append(events);
  }
  return card;
}

function sinkCard(k) {
  const card = el("div", { class: "card", "data-sink": k.id });
  card.append(el("div", { class: "card-head" },
    el("h3", {}, k.id),
    el("span", { class: "badge " + (k.ready ? "ok" : "bad") }, k.ready ? "ready" : "not ready"),
    action("Send a test event", { "data-action": "sink-test", "data-id": k.id }, async () => {
      const r = await api("POST", "/api/v1/sinks/" + encodeURIComponent(k.id) + "/test");
      if (r.status !== 200) return "failed: " + (r.json && r.json.error);
      return "test " + r.json.status + (r.json.http_status ? " (HTTP " + r.json.http_status + ")" : "") + (r.json.error ? ": " + r.json.error : "");
    })));
  card.append(el("div", { class: "facts" },
    fact("type", k.type), fact("queue", k.queue.events + " events (" + k.queue.type + ")"),
    fact("oldest", k.queue.oldest_event_age_seconds.toFixed(1) + " s"),
    fact("delivered", k.delivered), fact("failed", k.failed),
    fact("dead letters waiting", k.dead_letters_waiting)));
  if (k.last_error) {
    card.append(el("div", { class: k.ready ? "muted" : "error" }, "last error " + k.last_error.at + ": " + k.last_error.message));
  }
  return card;
}

function deadLetterBlock(sinkId, page) {
  const block = el("div", { class: "card", "data-dead-letters": sinkId });
  const path = "/api/v1/sinks/" + encodeURIComponent(sinkId) + "/dead-letters";
  const act = (verb, body) => async () => {
    const r = await api("POST", path + "/" + verb, body);
    if (r.status !== 200) return "failed: " + (r.json && r.json.error);
    return verb === "replay"
      ? r.json.replayed + " replayed" + (r.json.remaining ? ", " + r.json.remaining + " left (queue full)" : "")
      : r.json.purged + " purged";
  };
  block.append(el("div", { class: "card-head" },
    el("h3", {}, sinkId),
    el("span", { class: "muted" }, page.waiting + " waiting in " + page.path),
    page.waiting ? action("Replay all", { "data-action": "replay-all", "data-sink": sinkId }, act("replay", { all: true })) : null,
    page.waiting ? action("Purge all", { "data-action": "purge-all", "data-sink": sinkId }, act("purge", { all: true })) : null));
  if (page.entries.length) {
    const rows = page.entries.map((d) => el("tr", { "data-entry": String(d.entry) },
      el("td", {}, d.time || "-"), el("td", {}, d.reason || "-"), el("td", {}, d.event_id || "-"),
      el("td", {}, d.vendor || "-"), el("td", {}, d.title || "-"),
      el("td", {},
        action("Replay", { "data-action": "replay", "data-sink": sinkId, "data-entry": String(d.entry) }, act("replay", { entries: [d.entry] })),
        action("Purge", { "data-action": "purge", "data-sink": sinkId, "data-entry": String(d.entry) }, act("purge", { entries: [d.entry] })))));
    block.append(el("table", {},
      el("thead", {}, el("tr", {}, ...["time", "reason", "event id", "vendor", "title", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...rows)));
  }
  return block;
}

async function refresh() {
  if (busy || !sessionStorage.getItem(KEY)) return;
  try {
    const [sources, sinks] = await Promise.all([api("GET", "/api/v1/sources"), api("GET", "/api/v1/sinks")]);
    const recents = await Promise.all(sources.json.sources.map((s) => api("GET", "/api/v1/sources/" + encodeURIComponent(s.id) + "/recent")));
    const letters = await Promise.all(sinks.json.sinks.map((k) => api("GET", "/api/v1/sinks/" + encodeURIComponent(k.id) + "/dead-letters?limit=20")));
    if (busy) return;
    document.getElementById("sources").replaceChildren(
      ...sources.json.sources.map((s, i) => sourceCard(s, recents[i].json)));
    document.getElementById("sinks").replaceChildren(...sinks.json.sinks.map(sinkCard));
    const blocks = sinks.json.sinks
      .map((k, i) => [k.id, letters[i].json])
      .filter(([, page]) => page && page.path)
      .map(([id, page]) => deadLetterBlock(id, page));
    document.getElementById("dead-letters").replaceChildren(
      ...(blocks.length ? blocks : [el("p", { class: "muted" }, "No sink has a dead_letter_path.")]));
    document.getElementById("status").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById("status").textContent = "refresh failed: " + e.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("sign-in-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    signIn(document.getElementById("token").value.trim());
  });
  document.getElementById("sign-out").addEventListener("click", () => signOut(""));
  const token = sessionStorage.getItem(KEY);
  if (token) signIn(token); else signOut("");
});
