// The live console: reads /v1/... every second with the operator's token; the buttons call the
// same API (halt, reduce, resume, acknowledge, confirm) and are enabled only for roles that may.
// No external script, style or font: everything it needs is in this package.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const history = {};  // strategy -> recent signal_mid values (drawn with the bands)
  let may = new Set();
  let token = sessionStorage.getItem("xmc-token") || "";

  function esc(v) {
    return String(v === undefined || v === null ? "" : v).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  }
  function signed(n) {
    const v = Number(n) || 0;
    return `<td class="num ${v > 0 ? "pos" : v < 0 ? "neg" : "zero"}">${esc(n)}</td>`;
  }
  function say(text, ok) {
    const m = $("msg");
    m.textContent = text;
    m.className = ok ? "ok" : "err";
  }
  async function api(path, method, body) {
    // X-XMC-Via: the ledger records a change made here as via "console" (the token decides what is allowed)
    const headers = {"Accept": "application/json", "X-XMC-Via": "console"};
    if (token) headers["Authorization"] = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, {method: method || "GET", headers, body: body === undefined ? undefined : JSON.stringify(body)});
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    return {status: r.status, data};
  }

  async function whoami() {
    const r = await api("/v1/whoami");
    if (r.status === 200) {
      may = new Set(r.data.may);
      $("who").textContent = `${r.data.operator} (${r.data.role})`;
    } else {
      may = new Set();
      $("who").textContent = r.data && r.data.error ? `not signed in: ${r.data.error}` : "not signed in";
    }
    for (const b of document.querySelectorAll("button.act")) b.disabled = !may.has(b.dataset.action);
  }

  async function act(action, params) {
    const reason = $("reason").value || "";
    const body = Object.assign({reason: "console: " + reason}, params || {});
    const r = await api(`/v1/${action}`, "POST", body);
    if (r.status === 200) say(`${action}: ${r.data.state} by ${r.data.operator}` + (r.data.event_id ? ` (event ${r.data.event_id})` : ""), true);
    else if (r.status === 202) say(`${action} waits for a second operator: ${r.data.why} (confirmation ${r.data.confirmation_id})`, true);
    else say(`${action} refused (${r.status}): ${r.data ? r.data.error : "no answer"}`, false);
    refresh();
  }

  async function ack(alertId) {
    const r = await api(`/v1/alerts/${encodeURIComponent(alertId)}/acknowledge`, "POST", {note: "console"});
    if (r.status === 200) say(`alert ${alertId} acknowledged by ${r.data.operator}`, true);
    else say(`acknowledge refused (${r.status}): ${r.data ? r.data.error : ""}`, false);
    refresh();
  }

  async function confirm(cid) {
    const r = await api(`/v1/confirmations/${encodeURIComponent(cid)}`, "POST", {});
    if (r.status === 200) say(`confirmed ${cid}: done by ${r.data.operator}, confirmed by ${r.data.confirmed_by}`, true);
    else say(`confirm refused (${r.status}): ${r.data ? r.data.error : ""}`, false);
    refresh();
  }

  function spark(name, sig) {
    const h = history[name] = history[name] || [];
    if (typeof sig.signal_mid === "number") { h.push(sig.signal_mid); if (h.length > 120) h.shift(); }
    if (h.length < 2 || typeof sig.center !== "number") return "";
    const lines = [sig.center];
    for (const w of [sig.entry, sig.exit]) if (typeof w === "number") lines.push(sig.center + w, sig.center - w);
    const all = h.concat(lines);
    const lo = Math.min(...all), hi = Math.max(...all), span = (hi - lo) || 1;
    const y = (v) => (38 - (v - lo) / span * 36).toFixed(1);
    const pts = h.map((v, i) => `${(i / (h.length - 1) * 218 + 1).toFixed(1)},${y(v)}`).join(" ");
    const bands = lines.map((v, i) => `<line x1="0" x2="220" y1="${y(v)}" y2="${y(v)}" stroke="${i === 0 ? "#999" : i < 3 ? "#d97706" : "#0a7d32"}" stroke-dasharray="3 2"/>`).join("");
    return `<svg class="spark" viewBox="0 0 220 40">${bands}<polyline fill="none" stroke="#1d4ed8" points="${pts}"/></svg>`;
  }

  function money(v) {
    const n = Number(v);
    return isFinite(n) ? n.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2}) : esc(v);
  }
  function fmt(v) { return typeof v === "number" ? v.toPrecision(6) : esc(v); }

  async function refresh() {
    const [st, ss, pos, occ, outc, al, cf] = await Promise.all(["/v1/status", "/v1/strategies", "/v1/positions", "/v1/occupancy", "/v1/outcomes?limit=15", "/v1/alerts", "/v1/confirmations"].map((p) => api(p)));
    if (st.status !== 200) { say(`cannot read: ${st.data ? st.data.error : st.status}`, false); return; }
    if ($("msg").className === "err" && $("msg").textContent.startsWith("cannot read")) say("", true);
    $("depname").textContent = `· ${st.data.deployment.name || ""} (${st.data.deployment.namespace || ""})`;
    $("states").innerHTML = Object.entries(st.data.trading_states).map(([k, v]) => `<span class="state state-${esc(v)}" data-scope="${esc(k)}">${esc(k)}: ${esc(v)}</span>`).join("")
      + (st.data.throttled || []).map((k) => `<span class="state state-REDUCING">${esc(k)}: THROTTLED</span>`).join("");
    if (ss.status === 200) {
      $("strategies").tBodies[0].innerHTML = Object.entries(ss.data).map(([n, s]) => {
        const sig = s.last_signal || {};
        const band = typeof sig.center === "number" ? `${fmt(sig.center)} ± ${fmt(sig.entry)} (exit ${fmt(sig.exit)})` : esc(sig.reason);
        const scopeState = s.trading_state || "ACTIVE";
        return `<tr data-strategy="${esc(n)}"><td>${esc(n)}</td><td><span class="state state-${esc(scopeState)}">${esc(scopeState)}</span> ${esc(s.state)}</td>`
          + `<td class="num">${fmt(sig.signal_mid)}</td><td>${band}</td><td>${spark(n, sig)}</td>${signed(s.position)}`
          + `<td><button class="act danger" data-action="halt" data-strategy="${esc(n)}">Halt</button> <button class="act" data-action="resume" data-strategy="${esc(n)}">Resume</button></td></tr>`;
      }).join("");
    }
    if (pos.status === 200) {
      const rows = [];
      for (const [acc, insts] of Object.entries(pos.data.accounts)) for (const [i, q] of Object.entries(insts)) rows.push(`<tr><td>${esc(acc)}</td><td>${esc(i)}</td>${signed(q)}</tr>`);
      $("positions").tBodies[0].innerHTML = rows.join("") || `<tr><td colspan="3">flat</td></tr>`;
      $("twosided").tBodies[0].innerHTML = Object.entries(pos.data.two_sided || {}).map(([k, p]) => {
        const l = p.long || {}, s = p.short || {};
        return `<tr><td>${esc(k)}</td>${signed(l.today || 0)}${signed(l.yesterday || 0)}${signed(-(s.today || 0))}${signed(-(s.yesterday || 0))}</tr>`;
      }).join("");
    }
    if (occ.status === 200) {
      const all = Object.entries(occ.data.accounts).concat(occ.data.overall ? [["overall", occ.data.overall]] : []);
      $("occupancy").tBodies[0].innerHTML = all.map(([a, o]) => `<tr class="${o.level ? "level-" + esc(o.level) : ""}"><td>${esc(a)}</td><td class="num">${(o.ratio * 100).toFixed(2)}%</td><td class="num">${money(o.used)}</td><td class="num">${money(o.equity)} ${esc(o.currency)}</td><td>${esc(o.level || "")}</td></tr>`).join("");
    }
    $("pairs").innerHTML = `in flight: ${esc(JSON.stringify(st.data.pairs.in_flight))} · outcomes: ${esc(JSON.stringify(st.data.pairs.outcomes))}`
      + (st.data.unresolved_escalations.length ? ` · <b>unresolved escalations: ${esc(st.data.unresolved_escalations.join(", "))}</b>` : "");
    if (outc.status === 200) {
      $("outcomes").tBodies[0].innerHTML = outc.data.pairs.map((p) => `<tr><td>${esc(p.decision_id)}</td><td>${esc(p.strategy)}</td><td>${esc(p.outcome || p.state)}</td><td class="num">${esc(p.unhedged_ms === undefined ? "" : Number(p.unhedged_ms).toFixed(1))}</td></tr>`).join("");
    }
    if (al.status === 200) {
      $("alerts").tBodies[0].innerHTML = al.data.open.map((a) => `<tr class="level-${esc(a.level)}" data-alert="${esc(a.alert_id)}"><td>${esc(a.level)}</td><td>${esc(a.monitor)}</td><td>${esc(a.scope)}=${esc(a.key)}</td><td>${esc(a.message)}</td><td>${esc(a.action)}</td>`
        + `<td>${a.acknowledged ? "ack " + esc(a.acknowledged.operator) : `<button class="act" data-action="acknowledge" data-alert="${esc(a.alert_id)}">Acknowledge</button>`}</td></tr>`).join("") || `<tr><td colspan="6">no open alert</td></tr>`;
    }
    if (cf.status === 200) {
      $("confirmations").innerHTML = cf.data.map((c) => `<div>waiting for a second operator: ${esc(c.action)} ${esc(JSON.stringify(c.params))} by ${esc(c.proposer)} — ${esc(c.why)} <button class="act" data-action="confirm" data-confirm="${esc(c.confirmation_id)}">Confirm</button></div>`).join("");
    }
    for (const b of document.querySelectorAll("button.act")) b.disabled = !may.has(b.dataset.action);
    $("updated").textContent = new Date().toLocaleTimeString();
  }

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button.act");
    if (!b || b.disabled) return;
    const a = b.dataset.action;
    if (a === "acknowledge") return ack(b.dataset.alert);
    if (a === "confirm") return confirm(b.dataset.confirm);
    act(a, b.dataset.strategy ? {strategy: b.dataset.strategy} : {});
  });
  $("signin").addEventListener("click", async () => {
    token = $("token").value.trim();
    $("token").value = "";
    sessionStorage.setItem("xmc-token", token);
    await whoami();
    refresh();
  });
  $("signout").addEventListener("click", async () => {
    token = "";
    sessionStorage.removeItem("xmc-token");
    await whoami();
  });
  whoami().then(refresh);
  setInterval(refresh, 1000);
})();
