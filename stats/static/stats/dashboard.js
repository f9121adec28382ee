// The live dashboard: every number comes from the JSON API; the WebSocket says what changed.
// On an event we refetch exactly the endpoints that event can change (the server updated or
// invalidated their cache keys before sending it), except what the event itself carries: a
// reading's card, its trend's bucket and the stats' compliance, as the server's cache now has
// them (the catalogue's patches). After every (re)connect we refetch everything, because events
// sent while we were away are lost.
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  const csrfInput = document.querySelector("input[name=csrfmiddlewaretoken]");
  const SVG_NS = "http://www.w3.org/2000/svg";
  const BACKOFF_START_MS = 250;
  const BACKOFF_CAP_MS = 5000;

  const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
  const units = new Map(); // unit id -> unit from /units
  // The page's copy of each answer it paints events' patches on, by loader name ("stats",
  // "temperature:trends:<unit>"): {body, at: the generation of the last patch painted (null: not
  // known), inflight: the patches painted while a request for it was on its way}
  const copies = new Map();
  const latest = new Map(); // loader name -> sequence number of its newest request

  // --- fetching ----------------------------------------------------------------------------
  class HttpError extends Error {
    constructor(status, path) {
      super(`${path}: HTTP ${status}`);
      this.status = status;
    }
  }

  async function api(path, options = {}) {
    const response = await fetch(config.apiBase + path, {
      credentials: "same-origin",
      headers: { Accept: "application/json", ...(options.headers || {}) },
      method: options.method || "GET",
    });
    if (response.status === 401) {
      window.location.assign(`/accounts/login/?next=${encodeURIComponent(window.location.pathname)}`);
    }
    if (!response.ok) throw new HttpError(response.status, path);
    return response.json();
  }

  // Responses can arrive out of order (an event's refetch overtaking a resync); only the
  // newest request of each loader may paint, so an older answer never overwrites a newer one.
  async function load(name, path, render) {
    const seq = (latest.get(name) || 0) + 1;
    latest.set(name, seq);
    try {
      const body = await api(path);
      if (latest.get(name) === seq) render(body);
      showError(name, null);
    } catch (err) {
      if (latest.get(name) === seq) showError(name, err);
    }
  }

  const errors = new Map();
  function showError(name, err) {
    if (err) errors.set(name, err.message);
    else errors.delete(name);
    const box = $("load-error");
    box.hidden = errors.size === 0;
    box.textContent = errors.size ? `Could not load: ${[...errors.values()].join("; ")}` : "";
  }

  // --- rendering -----------------------------------------------------------------------------
  function setNumber(testid, value, text) {
    const el = $(testid);
    if (!el) return;
    const target = el.querySelector(".n") || el;
    target.textContent = text !== undefined ? text : value === null || value === undefined ? "–" : String(value);
    el.dataset.value = value === null || value === undefined ? "" : String(value);
  }

  function renderUnitCounts(counts) {
    setNumber("tile-normal", counts.normal);
    setNumber("tile-warning", counts.warning);
    setNumber("tile-critical", counts.critical);
    setNumber("tile-offline", counts.offline);
    setNumber("tile-too-hot", counts.too_hot);
    setNumber("tile-too-cold", counts.too_cold);
    for (const state of ["normal", "warning", "critical", "offline", "too-hot", "too-cold"]) {
      $(`tile-${state}`).classList.toggle("zero", $(`tile-${state}`).dataset.value === "0");
    }
  }

  function renderDeviceCounts(counts) {
    setNumber("devices-online", counts.online);
    setNumber("devices-offline", counts.offline);
  }

  function renderStats(stats) {
    renderUnitCounts(stats.unitCounts);
    renderDeviceCounts(stats.deviceCounts);
    setNumber("alerts-unresolved", stats.alertCounts.unresolved);
    setNumber("alerts-acknowledged", stats.alertCounts.acknowledged);
    const pct = stats.compliancePercentage;
    setNumber("compliance", pct, pct === null ? "–" : `${pct.toFixed(1)} %`);
    setNumber("last-updated", stats.lastUpdated, formatTime(stats.lastUpdated));
    document.body.dataset.worstState = stats.worstState;
  }

  function formatTime(iso) {
    if (!iso) return "–";
    const at = new Date(iso);
    const time = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    // An alert can be days old: say which day unless it is today.
    return at.toDateString() === new Date().toDateString() ? time : `${at.toLocaleDateString()} ${time}`;
  }

  function formatTemp(value) {
    return value === null || value === undefined ? "–" : `${Number(value).toFixed(1)} °C`;
  }

  function el(tag, attrs = {}, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const BUCKETS = { ok: "normal", restoring: "normal", excursion: "warning", alarm_active: "critical", offline: "offline" };

  function unitBucket(unit) {
    return BUCKETS[unit.status] || "normal";
  }

  function unitDirection(unit) {
    if (unit.lastTemperature === null || unit.lastTemperature === undefined) return "";
    if (unit.status !== "excursion" && unit.status !== "alarm_active") return "";
    if (unit.lastTemperature > unit.tempMax) return "too hot";
    if (unit.lastTemperature < unit.tempMin) return "too cold";
    return "";
  }

  function renderUnits(body) {
    const list = $("unit-list");
    const seen = new Set();
    for (const unit of body.units) {
      seen.add(unit.id);
      units.set(unit.id, unit);
      let card = list.querySelector(`[data-unit-id="${CSS.escape(unit.id)}"]`);
      const created = !card;
      if (created) {
        card = el("article", { class: "unit", "data-testid": "unit-card", "data-unit-id": unit.id });
        const head = el("header");
        head.append(el("h3", { "data-testid": "unit-name" }), el("span", { class: "badge", "data-testid": "unit-status" }));
        const meta = el("p", { class: "meta" });
        meta.append(
          el("span", { class: "temp", "data-testid": "unit-temp" }),
          el("span", { class: "range" }),
          el("span", { class: "devices", "data-testid": "unit-devices" }),
        );
        const fault = el("p", { class: "fault", "data-testid": "probe-fault", hidden: "" });
        card.append(head, meta, fault, el("div", { class: "chart", "data-testid": "unit-chart" }));
        list.append(card);
      }
      paintUnit(card, unit);
      // A trend that came before its card.
      if (created) renderTrend(unit.id, (copies.get(loaderOf("temperature:trends", unit.id)) || {}).body);
    }
    for (const card of list.querySelectorAll("[data-unit-id]")) {
      if (!seen.has(card.dataset.unitId)) {
        units.delete(card.dataset.unitId);
        copies.delete(loaderOf("temperature:trends", card.dataset.unitId));
        card.remove();
      }
    }
  }

  function paintUnit(card, unit) {
    const bucket = unitBucket(unit);
    const direction = unitDirection(unit);
    card.dataset.state = bucket;
    card.querySelector("h3").textContent = unit.name;
    card.querySelector("h3").title = unit.siteName;
    const badge = card.querySelector(".badge");
    badge.textContent = direction ? `${bucket} · ${direction}` : bucket;
    badge.className = `badge ${bucket}`;
    card.querySelector(".temp").textContent = formatTemp(unit.lastTemperature);
    card.querySelector(".range").textContent = `${unit.siteName} · ${unit.tempMin}…${unit.tempMax} °C`;
    const devices = unit.devices || [];
    const online = devices.filter((d) => d.online).length;
    const devText = card.querySelector(".devices");
    devText.textContent = devices.length ? `${online}/${devices.length} online` : "no sensor";
    devText.classList.toggle("down", online < devices.length);
    // A probe fault stores no reading: the card keeps the last true temperature and says why
    // nothing newer came, instead of looking like an excursion.
    const faults = devices.filter((d) => d.probeFault);
    const fault = card.querySelector(".fault");
    fault.hidden = faults.length === 0;
    fault.textContent = faults.map((d) => `probe fault (${d.devEui}): ${d.probeFault}`).join("; ");
  }

  // A unitUpdate carries the unit's new state: paint it at once, no request needed.
  function patchUnit(data) {
    const unit = units.get(data.unitId);
    if (!unit) return false;
    if (data.status !== undefined) unit.status = data.status;
    if (data.lastTemperature !== undefined) unit.lastTemperature = data.lastTemperature;
    if (data.lastReadingAt !== undefined) unit.lastReadingAt = data.lastReadingAt;
    const card = $("unit-list").querySelector(`[data-unit-id="${CSS.escape(data.unitId)}"]`);
    if (card) paintUnit(card, unit);
    return true;
  }

  function patchReading(data) {
    const unit = units.get(data.unitId);
    if (!unit) return false;
    const newer = !unit.lastReadingAt || Date.parse(data.recordedAt) >= Date.parse(unit.lastReadingAt);
    return newer ? patchUnit({ unitId: data.unitId, lastTemperature: data.temperature, lastReadingAt: data.recordedAt }) : true;
  }

  function renderAlerts(body) {
    const tbody = $("alert-list");
    tbody.replaceChildren();
    for (const alert of body.alerts) {
      const row = el("tr", { "data-testid": "alert-row", "data-alert-id": String(alert.id), class: alert.severity });
      row.append(
        el("td", {}, alert.unitName),
        el("td", {}, alert.severity),
        el("td", { "data-testid": "alert-status" }, alert.status),
        el("td", {}, `${formatTemp(alert.triggerTemperature)} (${alert.thresholdViolated === "min" ? "below min" : "above max"})`),
        el("td", {}, formatTime(alert.triggeredAt)),
      );
      const actions = el("td", { class: "actions" });
      if (config.canManageAlerts) {
        if (alert.status === "active" || alert.status === "escalated") {
          actions.append(actionButton(alert, "acknowledge", "Acknowledge", "ack-button"));
        }
        actions.append(actionButton(alert, "resolve", "Resolve", "resolve-button"));
      }
      row.append(actions);
      tbody.append(row);
    }
    $("alerts-empty").hidden = body.alerts.length > 0;
    tbody.dataset.count = String(body.alerts.length);
  }

  function actionButton(alert, action, label, testid) {
    const button = el("button", { type: "button", "data-testid": testid }, label);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await api(`/alerts/${alert.id}/${action}`, { method: "POST", headers: { "X-CSRFToken": csrfInput.value } });
        showError("alert-action", null);
      } catch (err) {
        showError("alert-action", err);
        button.disabled = false;
      }
      // Do not wait for the event: the acting user sees the result of their own click at once.
      refresh.alerts();
    });
    return button;
  }

  // --- chart: the 24 h mean line inside its per-bucket min/max band, the unit's range dashed --
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    return node;
  }

  function renderTrend(unitId, body) {
    const card = $("unit-list").querySelector(`[data-unit-id="${CSS.escape(unitId)}"]`);
    const unit = units.get(unitId);
    if (!card || !unit || !body) return;
    const box = card.querySelector(".chart");
    const points = body.points || [];
    box.dataset.points = String(points.length);
    // The points as drawn, for whoever checks the chart against the API (the browser tests).
    box.dataset.trend = JSON.stringify(points);
    const W = 320, H = 120, PAD_L = 34, PAD_R = 6, PAD_T = 8, PAD_B = 18;
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${unit.name}, last 24 hours` });
    if (!points.length) {
      const text = svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "nodata" });
      text.textContent = "no readings in the last 24 h";
      chart.append(text);
      box.replaceChildren(chart);
      return;
    }
    const now = Date.now();
    const t0 = now - 24 * 3600 * 1000;
    const lows = points.map((p) => p.min).concat([unit.tempMin]);
    const highs = points.map((p) => p.max).concat([unit.tempMax]);
    let yMin = Math.min(...lows), yMax = Math.max(...highs);
    const margin = Math.max((yMax - yMin) * 0.1, 0.5);
    yMin -= margin;
    yMax += margin;
    const x = (iso) => PAD_L + ((Date.parse(iso) - t0) / (now - t0)) * (W - PAD_L - PAD_R);
    const y = (v) => PAD_T + (1 - (v - yMin) / (yMax - yMin)) * (H - PAD_T - PAD_B);

    // The unit's allowed range, and the axis labels at its limits.
    chart.append(svg("rect", { x: PAD_L, y: y(unit.tempMax), width: W - PAD_L - PAD_R, height: Math.max(y(unit.tempMin) - y(unit.tempMax), 0), class: "allowed" }));
    for (const limit of [unit.tempMin, unit.tempMax]) {
      chart.append(svg("line", { x1: PAD_L, x2: W - PAD_R, y1: y(limit), y2: y(limit), class: "limit" }));
      const label = svg("text", { x: PAD_L - 4, y: y(limit) + 3, "text-anchor": "end", class: "axis" });
      label.textContent = `${limit}°`;
      chart.append(label);
    }
    for (const [hoursAgo, text] of [[24, "-24 h"], [12, "-12 h"], [0, "now"]]) {
      const label = svg("text", { x: PAD_L + ((24 - hoursAgo) / 24) * (W - PAD_L - PAD_R), y: H - 4, "text-anchor": hoursAgo === 0 ? "end" : hoursAgo === 24 ? "start" : "middle", class: "axis" });
      label.textContent = text;
      chart.append(label);
    }
    const upper = points.map((p) => `${x(p.timestamp).toFixed(1)},${y(p.max).toFixed(1)}`);
    const lower = points.map((p) => `${x(p.timestamp).toFixed(1)},${y(p.min).toFixed(1)}`).reverse();
    chart.append(svg("polygon", { points: upper.concat(lower).join(" "), class: "band", "data-testid": "chart-band" }));
    chart.append(svg("polyline", { points: points.map((p) => `${x(p.timestamp).toFixed(1)},${y(p.temperature).toFixed(1)}`).join(" "), class: "line", "data-testid": "chart-line" }));
    for (const p of points) {
      if (p.alarmState !== "normal") chart.append(svg("circle", { cx: x(p.timestamp), cy: y(p.temperature), r: 2.2, class: `out ${p.alarmState}` }));
    }
    box.replaceChildren(chart);
  }

  // --- what to refetch: the server's query catalogue says which queries each event changes ---
  const renderers = {
    stats: renderStats,
    "units:status": renderUnitCounts,
    "devices:online": renderDeviceCounts,
    units: renderUnits,
    alerts: renderAlerts,
  };

  // Each query's answers by loader: one per query, or per unit for a unit's query (the trend).
  function loaderOf(name, unitId) {
    return config.queries[name].includes("{unit}") ? `${name}:${unitId}` : name;
  }

  function renderOf(name, unitId) {
    return config.queries[name].includes("{unit}") ? (body) => renderTrend(unitId, body) : renderers[name];
  }

  function loadQuery(name, unitId) {
    const path = config.queries[name];
    if (path === undefined) return Promise.resolve();
    if (path.includes("{unit}") && !unitId) return Promise.resolve();
    const loader = loaderOf(name, unitId);
    const render = renderOf(name, unitId);
    if (!patchers[name]) return load(loader, `/${path.replace("{unit}", unitId)}`, render);
    const copy = copyOf(loader);
    copy.inflight = [];
    return load(loader, `/${path.replace("{unit}", unitId)}`, (body) => {
      // The patches painted while this was on its way are painted again over it: each sets what
      // it changed as the server had it then, so one the answer already holds changes nothing.
      for (const patch of copy.inflight || []) patchers[name](body, patch);
      copy.body = body;
      copy.inflight = null;
      render(body);
    });
  }

  function copyOf(loader) {
    if (!copies.has(loader)) copies.set(loader, { body: null, at: null, inflight: null });
    return copies.get(loader);
  }

  // How a patch a reading's event carries (the catalogue's patchers) changes the page's copy.
  const patchers = {
    stats(body, patch) {
      body.compliancePercentage = patch.compliancePercentage;
      body.lastUpdated = patch.lastUpdated;
    },
    "temperature:trends"(body, patch) {
      // The reading's bucket, whole; the buckets before the window's start dropped.
      const points = (body.points || []).filter((p) => p.timestamp >= patch.windowStart);
      if (patch.point) {
        const at = points.findIndex((p) => p.timestamp >= patch.point.timestamp);
        if (at === -1) points.push(patch.point);
        else points.splice(at, points[at].timestamp === patch.point.timestamp ? 1 : 0, patch.point);
      }
      body.points = points;
    },
  };

  // Paint an event's patch of query `name` on the page's copy, if it follows the last change
  // painted there: its "after" is that one's "at" (the cached key's generation, which every
  // write moves). Otherwise (an event missed or overtaken, or the key written by something else
  // than a patch) the page fetches the query: false.
  function paint(name, data) {
    const patch = (data.patches || {})[name];
    const copy = copies.get(loaderOf(name, data.unitId));
    if (!patch || !copy || copy.body === null) return false;
    const follows = copy.at === null || patch.after === copy.at;
    copy.at = patch.at;
    if (!follows) return false;
    patchers[name](copy.body, patch);
    if (copy.inflight) copy.inflight.push(patch);
    renderOf(name, data.unitId)(copy.body);
    return true;
  }

  const refresh = {
    alerts: () => Promise.all([loadQuery("stats"), loadQuery("alerts")]),
  };

  async function resync() {
    for (const copy of copies.values()) copy.at = null; // events may have been missed
    await Promise.all([loadQuery("stats"), loadQuery("units"), loadQuery("alerts")]);
    await Promise.all([...units.keys()].map((id) => loadQuery("temperature:trends", id)));
    document.body.dataset.synced = String(Number(document.body.dataset.synced || 0) + 1);
  }

  // Events that carry what a unit's card shows are painted from the event: no units list request
  // (every reading of every unit would cost each open dashboard one). A late reading (older
  // than the unit's latest) does not move the unit, here as on the server.
  const patches = { reading: patchReading, unitUpdate: patchUnit };

  function onEvent(message) {
    const data = message.data || {};
    if (message.type === "orgChanged") {
      resync(); // edited in the admin: units, thresholds or devices may all have changed
      return;
    }
    const names = config.refetch[message.type];
    if (!names) return; // unknown events are ignored, so the server can add new ones first
    const patched = config.patches[message.type] || [];
    for (const name of names) {
      if (name === "units" && patches[message.type] && patches[message.type](data)) continue;
      if (patched.includes(name) && patchers[name] && paint(name, data)) continue;
      loadQuery(name, data.unitId);
    }
  }

  // --- the socket ------------------------------------------------------------------------------
  const wsStatus = $("ws-status");
  let attempt = 0;

  function setWsStatus(state, text) {
    wsStatus.dataset.state = state;
    wsStatus.textContent = text;
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + config.wsPath);
    // The server accepts every handshake and then either greets ("hello") or closes with a
    // reason code, so "live" starts at the greeting, not at the socket's open event.
    socket.addEventListener("message", (msg) => {
      let message;
      try {
        message = JSON.parse(msg.data);
      } catch (err) {
        console.warn("bad event", err);
        return;
      }
      if (message.type === "hello") {
        attempt = 0;
        setWsStatus("live", "live");
        resync(); // events sent while we were connecting or away are gone
        return;
      }
      onEvent(message);
    });
    socket.addEventListener("close", (event) => {
      if (event.code === 4401) {
        setWsStatus("denied", "signed out");
        window.location.assign(`/accounts/login/?next=${encodeURIComponent(window.location.pathname)}`);
        return;
      }
      if (event.code === 4403) {
        setWsStatus("denied", "no access");
        return;
      }
      setWsStatus("reconnecting", "reconnecting");
      // Exponential backoff with jitter, so a restarted server is not hit by every tab at once.
      const delay = Math.min(BACKOFF_START_MS * 2 ** attempt, BACKOFF_CAP_MS);
      attempt += 1;
      setTimeout(connect, delay / 2 + Math.random() * (delay / 2));
    });
  }

  resync();
  connect();
})();
