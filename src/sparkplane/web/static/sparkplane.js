// sparkplane's shared browser code (an ES module; no build step, no third-party code).
//
// Every page imports what it needs from here:
//   el(tag, attrs, ...children)    build DOM safely: children are nodes or strings (set as text, never HTML)
//   api(method, path, body, opts)  call the JSON API with the login cookie and the X-CSRF-Token header;
//                                  a FormData body is sent as multipart; errors become ApiError and are
//                                  shown in the message banner (opts.quiet: do not show); 401 -> login page
//   ApiError                       {status, message} of a failed call
//   showMessage(text, kind)        a banner at the top ("error" | "info" | "ok"); clearMessages()
//   poll(fn, ms)                   run async fn now and every ms after it settles, paused while the tab is
//                                  hidden; returns {stop(), now()}
//   renderTable(container, result, opts)
//                                  a Spark SQL result ({schema: {fields: [{name, type}]}, data: [[...]]})
//                                  as a table with sortable columns (click a header) and a row count
//   renderChart(container, result) a bar or line chart of the result in inline SVG; the user picks the
//                                  chart type and the x and y columns
//   renderOutput(container, output)
//                                  a statement's output: text/plain, application/json (SQL results become
//                                  a table plus a chart), image/png as <img src="data:...">, errors as
//                                  ename / evalue / traceback
//   stateBadge(state)              a coloured badge for a cluster, session, batch or statement state
//   formatTime(iso), formatDuration(ms), currentUser()
//   getOne(path, onGone)           GET the thing a page is about; a 404 calls onGone(message), gives null
//   showGone(container, what, backHref, backText, message)
//                                  replace a page about one thing with "not there" when the API says 404
//   wireForm(form, handler)        submit handler that disables the form while `handler(values)` runs

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

export function currentUser() {
  const meta = document.querySelector('meta[name="sp-user"]');
  return { username: meta?.content || "", isAdmin: meta?.dataset.admin === "true" };
}

// ---- DOM ------------------------------------------------------------------------------------------------
export function el(tag, attrs = {}, ...children) {
  const svg = tag.startsWith("svg:");
  const node = svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "innerHTML" || key === "outerHTML") throw new Error("el() never sets HTML");
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "class") node.setAttribute("class", value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node && !svg && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(container, ...children) {
  container.replaceChildren();
  append(container, children);
  return container;
}

// ---- messages -------------------------------------------------------------------------------------------
export function showMessage(text, kind = "error") {
  const box = document.getElementById("messages");
  if (!box) return;
  const close = el("button", { class: "close", type: "button", "aria-label": "dismiss", onclick: () => item.remove() }, "×");
  const item = el("div", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" }, el("span", {}, text), close);
  // the same error from a poll every second is shown once
  for (const old of box.querySelectorAll(".message")) if (old.firstChild.textContent === text) old.remove();
  box.append(item);
  if (kind !== "error") setTimeout(() => item.remove(), 4000);
}

export function clearMessages() {
  document.getElementById("messages")?.replaceChildren();
}

// ---- the API --------------------------------------------------------------------------------------------
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(method, path, body, opts = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  } catch (err) {
    return fail(new ApiError(0, "cannot reach the sparkplane server; is it running?"), opts);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (response.ok) return data;
  if (response.status === 401 && !opts.noRedirect) {
    const here = location.pathname + location.search;
    location.assign(`/ui/login?next=${encodeURIComponent(here)}`);
  }
  const message = (data && (data.detail || data.msg)) || `${method} ${path} failed with HTTP ${response.status}`;
  return fail(new ApiError(response.status, typeof message === "string" ? message : JSON.stringify(message)), opts);
}

function fail(error, opts) {
  if (!opts.quiet) showMessage(error.message, "error");
  throw error;
}

// ---- polling --------------------------------------------------------------------------------------------
export function poll(fn, ms = 2000) {
  let timer = null;
  let stopped = false;
  let running = false;
  const run = async () => {
    if (stopped || running) return;
    clearTimeout(timer);
    if (document.hidden) {
      timer = setTimeout(run, ms);
      return;
    }
    running = true;
    try {
      await fn();
    } catch (err) {
      if (!(err instanceof ApiError)) showMessage(String(err), "error");
    } finally {
      running = false;
      if (!stopped) timer = setTimeout(run, ms);
    }
  };
  run();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    now: run,
  };
}

// ---- formatting -----------------------------------------------------------------------------------------
const GOOD = new Set(["RUNNING", "idle", "success", "available", "running"]);
const BUSY = new Set(["PENDING", "RESIZING", "RESTARTING", "TERMINATING", "not_started", "starting", "busy", "waiting", "recovering", "shutting_down", "cancelling"]);
const BAD = new Set(["ERROR", "error", "dead", "killed", "cancelled"]);

export function stateBadge(state) {
  const tone = GOOD.has(state) ? "good" : BUSY.has(state) ? "busy" : BAD.has(state) ? "bad" : "neutral";
  return el("span", { class: `badge ${tone}`, "data-state": state }, state || "?");
}

export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function formatDuration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

// ---- forms ----------------------------------------------------------------------------------------------
export function wireForm(form, handler) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form).entries());
    const controls = form.querySelectorAll("button, input, select, textarea");
    controls.forEach((c) => (c.disabled = true));
    try {
      await handler(values, form);
    } catch (err) {
      if (!(err instanceof ApiError)) showMessage(String(err), "error");
    } finally {
      controls.forEach((c) => (c.disabled = false));
    }
  });
}

// ---- results: tables ------------------------------------------------------------------------------------
function fieldsOf(result) {
  const fields = result?.schema?.fields || [];
  return fields.map((f, i) => ({ name: f.name ?? `col${i + 1}`, type: typeof f.type === "string" ? f.type : "struct" }));
}

function cellText(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return -1;
  if (b === null || b === undefined) return 1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return cellText(a).localeCompare(cellText(b), undefined, { numeric: true });
}

export function renderTable(container, result, opts = {}) {
  const fields = fieldsOf(result);
  const rows = Array.isArray(result?.data) ? result.data.slice() : [];
  const sort = { column: -1, ascending: true };
  const tbody = el("tbody");
  const heads = fields.map((f, i) =>
    el(
      "th",
      { scope: "col", title: `${f.type}; click to sort`, onclick: () => sortBy(i), class: "sortable" },
      f.name,
      el("span", { class: "arrow" }),
    ),
  );
  const draw = () => {
    const shown = opts.maxRows ? rows.slice(0, opts.maxRows) : rows;
    tbody.replaceChildren(
      ...shown.map((row) =>
        el("tr", {}, ...fields.map((f, i) => el("td", { class: row[i] === null ? "null" : typeof row[i] === "number" ? "num" : "" }, cellText(row[i])))),
      ),
    );
    heads.forEach((th, i) => {
      th.querySelector(".arrow").textContent = i === sort.column ? (sort.ascending ? " ▲" : " ▼") : "";
      th.setAttribute("aria-sort", i === sort.column ? (sort.ascending ? "ascending" : "descending") : "none");
    });
  };
  const sortBy = (i) => {
    sort.ascending = sort.column === i ? !sort.ascending : true;
    sort.column = i;
    rows.sort((a, b) => (sort.ascending ? 1 : -1) * compare(a[i], b[i]));
    draw();
  };
  draw();
  const count = rows.length === 1 ? "1 row" : `${rows.length} rows`;
  const table = el("div", { class: "table-wrap" }, el("table", { class: "results" }, el("thead", {}, el("tr", {}, ...heads)), tbody));
  const summary = el("p", { class: "row-count" }, count, opts.elapsedMs !== undefined ? ` in ${formatDuration(opts.elapsedMs)}` : "");
  replace(container, summary, table);
  return { count: rows.length };
}

// ---- results: charts (inline SVG) -----------------------------------------------------------------------
const NUMERIC = /^(byte|short|integer|long|float|double|decimal)/;

export function renderChart(container, result) {
  const fields = fieldsOf(result);
  const rows = Array.isArray(result?.data) ? result.data : [];
  const numeric = fields.map((f, i) => i).filter((i) => NUMERIC.test(fields[i].type) || rows.every((r) => typeof r[i] === "number"));
  if (!fields.length || !numeric.length || !rows.length) {
    replace(container, el("p", { class: "muted" }, "No numeric column to chart."));
    return;
  }
  const option = (i) => el("option", { value: String(i) }, fields[i].name);
  const kind = el("select", { "aria-label": "chart type" }, el("option", { value: "bar" }, "bar"), el("option", { value: "line" }, "line"));
  const xs = el("select", { "aria-label": "x column" }, ...fields.map((_, i) => option(i)));
  const ys = el("select", { "aria-label": "y column" }, ...numeric.map(option));
  const label = fields.findIndex((_, i) => !numeric.includes(i));
  const x = label >= 0 ? label : 0;
  xs.value = String(x);
  ys.value = String(numeric.find((i) => i !== x) ?? numeric[0]);
  const canvas = el("div", { class: "chart" });
  const draw = () => drawChart(canvas, rows, Number(xs.value), Number(ys.value), kind.value, fields);
  for (const select of [kind, xs, ys]) select.addEventListener("change", draw);
  replace(
    container,
    el("div", { class: "chart-controls" }, el("label", {}, "chart ", kind), el("label", {}, "x ", xs), el("label", {}, "y ", ys)),
    canvas,
  );
  draw();
}

function drawChart(canvas, rows, xi, yi, kind, fields) {
  const points = rows.slice(0, 500).map((r) => ({ label: cellText(r[xi]), value: Number(r[yi]) })).filter((p) => Number.isFinite(p.value));
  const width = 640;
  const height = 280;
  const pad = { left: 56, right: 16, top: 16, bottom: 48 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const max = Math.max(0, ...points.map((p) => p.value));
  const min = Math.min(0, ...points.map((p) => p.value));
  const span = max - min || 1;
  const y = (v) => pad.top + innerH - ((v - min) / span) * innerH;
  const step = innerW / Math.max(points.length, 1);
  const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${kind} chart of ${fields[yi].name} by ${fields[xi].name}` });
  for (const tick of [min, min + span / 2, max]) {
    svg.append(el("svg:line", { x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick), class: "grid" }));
    svg.append(el("svg:text", { x: pad.left - 6, y: y(tick) + 4, class: "tick", "text-anchor": "end" }, formatNumber(tick)));
  }
  if (kind === "bar") {
    points.forEach((p, i) => {
      const top = Math.min(y(p.value), y(0));
      const bar = el("svg:rect", { x: pad.left + i * step + step * 0.1, y: top, width: Math.max(step * 0.8, 1), height: Math.abs(y(p.value) - y(0)), class: "bar" });
      bar.append(el("svg:title", {}, `${p.label}: ${p.value}`));
      svg.append(bar);
    });
  } else {
    const path = points.map((p, i) => `${i ? "L" : "M"}${(pad.left + i * step + step / 2).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ");
    svg.append(el("svg:path", { d: path, class: "line" }));
    points.forEach((p, i) => {
      const dot = el("svg:circle", { cx: pad.left + i * step + step / 2, cy: y(p.value), r: 3, class: "dot" });
      dot.append(el("svg:title", {}, `${p.label}: ${p.value}`));
      svg.append(dot);
    });
  }
  const every = Math.ceil(points.length / 12);
  points.forEach((p, i) => {
    if (i % every) return;
    const label = p.label.length > 12 ? `${p.label.slice(0, 11)}…` : p.label;
    svg.append(el("svg:text", { x: pad.left + i * step + step / 2, y: height - pad.bottom + 16, class: "tick", "text-anchor": "middle" }, label));
  });
  svg.append(el("svg:text", { x: pad.left + innerW / 2, y: height - 8, class: "axis", "text-anchor": "middle" }, fields[xi].name));
  replace(canvas, svg);
}

function formatNumber(v) {
  return Math.abs(v) >= 1e6 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(2) : String(Math.round(v * 100) / 100);
}

// ---- statement outputs ----------------------------------------------------------------------------------
export function renderOutput(container, output, opts = {}) {
  if (!output) return replace(container, el("p", { class: "muted" }, "(no output)"));
  if (output.status === "error") {
    const trace = Array.isArray(output.traceback) ? output.traceback.join("") : String(output.traceback || "");
    return replace(
      container,
      el(
        "div",
        { class: "output-error", role: "alert" },
        el("p", {}, el("strong", {}, output.ename || "Error"), ": ", output.evalue || ""),
        trace.trim() ? el("details", {}, el("summary", {}, "traceback"), el("pre", {}, trace)) : null,
      ),
    );
  }
  const data = output.data || {};
  const parts = [];
  const json = data["application/json"];
  if (json && typeof json === "object" && json.schema && Array.isArray(json.data)) {
    const table = el("div", { class: "output-table" });
    renderTable(table, json, opts);
    parts.push(table);
    if (opts.chart !== false) {
      const chart = el("details", { class: "output-chart" }, el("summary", {}, "chart"));
      const body = el("div");
      chart.append(body);
      chart.addEventListener("toggle", () => chart.open && renderChart(body, json), { once: true });
      parts.push(chart);
    }
  } else if (json !== undefined) {
    parts.push(el("pre", { class: "output-json" }, JSON.stringify(json, null, 2)));
  }
  if (data["image/png"]) parts.push(el("img", { class: "output-image", alt: "plot", src: `data:image/png;base64,${data["image/png"]}` }));
  const text = data["text/plain"];
  if (text && (json === undefined || !parts.length)) parts.push(el("pre", { class: "output-text" }, text));
  if (!parts.length) parts.push(el("p", { class: "muted" }, "(no output)"));
  return replace(container, ...parts);
}

// ---- pages about one thing ----------------------------------------------------------------------------
// Replace the page's body with a notice when the thing it shows is not there (or not yours: the API says 404).
// GET the one thing a page is about; on a 404 call onGone(the API's message) and resolve to null.
export async function getOne(path, onGone) {
  try {
    return await api("GET", path, undefined, { quiet: true });
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      onGone(err.message);
      return null;
    }
    if (err instanceof ApiError) showMessage(err.message, "error");
    throw err;
  }
}

export function showGone(container, what, backHref, backText, message) {
  replace(
    container,
    el(
      "section",
      { class: "card gone", role: "alert" },
      el("h1", {}, `${what} is not there`),
      el("p", {}, message || "It does not exist, or it is not yours."),
      el("p", {}, el("a", { href: backHref }, backText)),
    ),
  );
}

// ---- every page: the log-out button ---------------------------------------------------------------------
document.getElementById("logout")?.addEventListener("click", async () => {
  try {
    await api("POST", "/ui/logout", undefined, { noRedirect: true });
  } finally {
    location.assign("/ui/login");
  }
});
