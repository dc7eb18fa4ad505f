// The SQL editor: pick (or start) one of your sessions, run SQL in it as statements of kind "sql", see the
// result as a table with its row count and time, and a history of your queries. The history is kept in
// this browser's localStorage, one list per user (it holds query texts only, never results).
import { api, currentUser, el, formatDuration, formatTime, poll, renderOutput, replace, showMessage, stateBadge, wireForm } from "../sparkplane.js";

const LIVE = new Set(["not_started", "starting", "idle", "busy", "recovering"]);
const DONE = new Set(["available", "cancelled"]);
const HISTORY_KEY = `sparkplane.sql.history.${currentUser().username}`;
const HISTORY_MAX = 50;

const picker = document.getElementById("sql-session");
const stateBox = document.getElementById("sql-session-state");
const code = document.getElementById("sql-code");
const result = document.getElementById("sql-result");
const cancelButton = document.getElementById("sql-cancel");
const form = document.getElementById("sql-form");
let sessions = [];
let running = null; // {sessionId, statementId}

// ---- sessions ----
async function loadSessions(select) {
  const page = await api("GET", "/api/v1/sessions?limit=200", undefined, { quiet: true });
  sessions = page.items.filter((s) => LIVE.has(s.state)).sort((a, b) => b.id - a.id);
  const chosen = select || picker.value || localStorage.getItem(`${HISTORY_KEY}.session`);
  if (!sessions.length) {
    replace(picker, el("option", { value: "" }, "no live session: start one →"));
  } else {
    replace(picker, ...sessions.map((s) => el("option", { value: String(s.id) }, `#${s.id} ${s.name || s.kind} (${s.kind})`)));
    if (chosen && sessions.some((s) => String(s.id) === String(chosen))) picker.value = String(chosen);
  }
  drawState();
}

function drawState() {
  const session = sessions.find((s) => String(s.id) === picker.value);
  replace(stateBox, session ? stateBadge(session.state) : "");
}

picker.addEventListener("change", () => {
  localStorage.setItem(`${HISTORY_KEY}.session`, picker.value);
  drawState();
});

api("GET", "/api/v1/clusters?state=RUNNING&limit=200").then((page) => {
  document.getElementById("new-session-cluster").append(...page.items.map((c) => el("option", { value: String(c.cluster_id) }, `${c.cluster_name} (#${c.cluster_id})`)));
});

document.getElementById("new-session").addEventListener("click", async (event) => {
  const button = event.target;
  button.disabled = true;
  try {
    const body = { kind: document.getElementById("new-session-kind").value, name: "sql editor" };
    const cluster = document.getElementById("new-session-cluster").value;
    if (cluster) body.cluster_id = Number(cluster);
    const session = await api("POST", "/api/v1/sessions", body);
    showMessage(`Session #${session.id} is starting; you can run a query as soon as it is idle.`, "info");
    localStorage.setItem(`${HISTORY_KEY}.session`, String(session.id));
    await loadSessions(String(session.id));
  } finally {
    button.disabled = false;
  }
});

poll(() => loadSessions(), 3000);

// ---- running a query ----
async function run(sql) {
  const sessionId = picker.value;
  if (!sessionId) {
    showMessage("Pick a session, or start one, first.", "error");
    return;
  }
  const started = performance.now();
  replace(result, el("p", { class: "muted" }, "Running…"));
  const statement = await api("POST", `/api/v1/sessions/${sessionId}/statements`, { code: sql, kind: "sql" });
  running = { sessionId, statementId: statement.id };
  cancelButton.hidden = false;
  let done = statement;
  try {
    while (!DONE.has(done.state)) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      done = await api("GET", `/api/v1/sessions/${sessionId}/statements/${statement.id}`);
      if (!DONE.has(done.state)) replace(result, el("p", { class: "muted" }, `${done.state}… ${Math.round((done.progress || 0) * 100)}%`));
    }
  } finally {
    running = null;
    cancelButton.hidden = true;
  }
  const elapsedMs = done.completed && done.started ? done.completed - done.started : performance.now() - started;
  if (done.state === "cancelled") replace(result, el("p", { class: "muted" }, "Cancelled."));
  else renderOutput(result, done.output, { elapsedMs });
  const json = done.output?.data?.["application/json"];
  remember({ code: sql, at: new Date().toISOString(), ms: Math.round(elapsedMs), status: done.state === "cancelled" ? "cancelled" : done.output?.status || "ok", rows: Array.isArray(json?.data) ? json.data.length : null });
}

wireForm(form, async (values) => run(values.code.trim()));
code.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    form.requestSubmit();
  }
});
cancelButton.addEventListener("click", async () => {
  if (running) await api("POST", `/api/v1/sessions/${running.sessionId}/statements/${running.statementId}/cancel`);
});

// ---- history ----
function history() {
  try {
    const items = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]");
    return Array.isArray(items) ? items : [];
  } catch {
    return [];
  }
}

function remember(entry) {
  const items = [entry, ...history()].slice(0, HISTORY_MAX);
  localStorage.setItem(HISTORY_KEY, JSON.stringify(items));
  drawHistory();
}

function drawHistory() {
  const items = history();
  const list = document.getElementById("sql-history");
  if (!items.length) return replace(list, el("li", { class: "muted" }, "No queries yet."));
  replace(
    list,
    ...items.map((h) => {
      const outcome = h.status === "ok" ? (h.rows === null ? "ok" : `${h.rows} row${h.rows === 1 ? "" : "s"}`) : h.status;
      return el(
        "li",
        {},
        el("button", { type: "button", title: h.code, onclick: () => { code.value = h.code; code.focus(); } }, h.code),
        el("div", { class: "meta" }, `${formatTime(h.at)} · ${outcome} · ${formatDuration(h.ms || 0)}`),
      );
    }),
  );
}

document.getElementById("clear-history").addEventListener("click", () => {
  localStorage.removeItem(HISTORY_KEY);
  drawHistory();
});
drawHistory();
