// One notebook: cells to edit, run and reorder; attach to a cluster or a new session; outputs as the API
// keeps them (SQL results as sortable tables with a bar/line chart, images, readable errors). The page
// polls the notebook every second while something runs (reads bring running cells up to date), else
// every few seconds. Everything shown is text (textContent) or a data: image; nothing is parsed as HTML.
import { api, ApiError, clearMessages, currentUser, el, getOne, poll, renderOutput, replace, showGone, showMessage, stateBadge } from "../sparkplane.js";

const page = document.getElementById("notebook-page");
const id = page.dataset.notebookId;
const base = `/api/v1/workspace/notebooks/${id}`;
const KINDS = ["pyspark", "sql", "markdown"];
const STARTING = new Set(["not_started", "starting", "recovering", "busy"]);
const views = new Map(); // cell id -> its DOM and edit state
let notebook = null;
let lastLoad = 0;

// ---- the notebook as a whole ----------------------------------------------------------------------------
function busy(nb) {
  return nb.running_all || STARTING.has(nb.session_state) || nb.cells.some((c) => c.state === "queued" || c.state === "running");
}

function draw(nb) {
  notebook = nb;
  document.getElementById("notebook-title").textContent = nb.name;
  document.title = `${nb.name} · sparkplane`;
  document.getElementById("back-to-folder").href = nb.folder_id ? `/ui/workspace?folder=${nb.folder_id}` : "/ui/workspace";
  const attached = nb.session_id !== null;
  document.getElementById("attach").hidden = attached;
  document.getElementById("attach-target").closest("label").hidden = attached;
  document.getElementById("detach").hidden = !attached;
  const where = nb.cluster_id ? ` on cluster ${nb.cluster_id}` : "";
  replace(
    document.getElementById("session-state"),
    ...(attached ? [`session ${nb.session_id}${where} `, stateBadge(nb.session_state)] : ["detached: attach to run cells"]),
  );
  const ids = nb.cells.map((c) => c.id);
  const shown = [...document.getElementById("cells").children].map((node) => Number(node.dataset.cellId));
  if (ids.join() !== shown.join()) rebuild(nb.cells);
  for (const cell of nb.cells) update(views.get(cell.id), cell);
}

function rebuild(cells) {
  for (const cellId of [...views.keys()]) if (!cells.some((c) => c.id === cellId)) views.delete(cellId);
  const nodes = cells.map((cell) => {
    if (!views.has(cell.id)) views.set(cell.id, makeView(cell));
    return views.get(cell.id).node;
  });
  if (!nodes.length) nodes.push(el("p", { class: "muted empty" }, "No cells yet: add one below."));
  replace(document.getElementById("cells"), ...nodes);
}

async function load() {
  lastLoad = Date.now();
  const nb = await getOne(base, (message) => {
    refresher.stop(); // deleted meanwhile, in another tab or by an admin
    showGone(page, "This notebook", "/ui/workspace", "← Workspace", message);
  });
  if (nb) draw(nb);
}

// One change to the notebook; false when the API refused it (its message is already in the banner).
async function act(method, path, body) {
  let result;
  try {
    result = await api(method, path, body);
  } catch (error) {
    if (error instanceof ApiError) return false;
    throw error;
  }
  if (result && result.cells) draw(result);
  else await load();
  refresher.now();
  return true;
}

// ---- one cell -------------------------------------------------------------------------------------------
function makeView(cell) {
  const view = { cell, dirty: false, key: "", timer: null, saving: Promise.resolve() };
  view.source = el("textarea", { spellcheck: "false", "aria-label": "cell source", class: "source", rows: 3 });
  view.source.value = cell.source;
  view.kind = el("select", { "aria-label": "cell kind" }, ...KINDS.map((k) => el("option", { value: k }, k)));
  view.kind.value = cell.kind;
  view.count = el("span", { class: "count" });
  view.badge = el("span", { class: "cell-state" });
  view.run = el("button", { type: "button", class: "small primary run", title: "Run (Ctrl+Enter)" }, "▶ Run");
  view.output = el("div", { class: "output", "aria-live": "polite" });
  const move = (delta) => async () => {
    const at = notebook.cells.findIndex((c) => c.id === view.cell.id) + delta;
    if (at >= 0 && at < notebook.cells.length) await act("PATCH", `${base}/cells/${view.cell.id}`, { index: at });
  };
  view.node = el(
    "section",
    { class: "cell", dataset: { cellId: String(cell.id) } },
    el(
      "div",
      { class: "cell-bar" },
      view.count,
      view.kind,
      view.run,
      view.badge,
      el("span", { class: "spacer" }),
      el("button", { type: "button", class: "small", title: "move up", "aria-label": "move up", onclick: move(-1) }, "↑"),
      el("button", { type: "button", class: "small", title: "move down", "aria-label": "move down", onclick: move(1) }, "↓"),
      el("button", { type: "button", class: "small danger", onclick: () => act("DELETE", `${base}/cells/${view.cell.id}`) }, "Delete"),
    ),
    view.source,
    view.output,
  );
  view.source.addEventListener("input", () => {
    view.dirty = true;
    clearTimeout(view.timer);
    view.timer = setTimeout(() => save(view).catch(() => {}), 800);
    if (view.cell.kind === "markdown") drawMarkdown(view.output, view.source.value);
  });
  view.source.addEventListener("blur", () => save(view).catch(() => {})); // the banner says why
  view.source.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey || event.shiftKey)) {
      event.preventDefault();
      runCell(view);
    }
  });
  view.kind.addEventListener("change", async () => {
    await save(view);
    await act("PATCH", `${base}/cells/${view.cell.id}`, { kind: view.kind.value });
  });
  view.run.addEventListener("click", () => runCell(view));
  return view;
}

// Saves the source if it changed; always waits for a save under way (a blur starts one just before a click
// on Run, which must not run the cell's old source).
async function save(view) {
  clearTimeout(view.timer);
  if (view.dirty) {
    view.dirty = false;
    const source = view.source.value;
    view.saving = api("PATCH", `${base}/cells/${view.cell.id}`, { source }).then(
      (cell) => (view.cell = cell),
      (err) => {
        view.dirty = true; // kept: the next edit or run tries again
        throw err;
      },
    );
  }
  await view.saving;
}

async function runCell(view) {
  if (view.cell.kind === "markdown") return;
  await save(view);
  await act("POST", `${base}/cells/${view.cell.id}/run`);
}

function update(view, cell) {
  view.cell = cell;
  const editing = document.activeElement === view.source || view.dirty;
  if (!editing && view.source.value !== cell.source) view.source.value = cell.source;
  if (document.activeElement !== view.kind) view.kind.value = cell.kind;
  view.node.dataset.state = cell.state;
  view.node.dataset.kind = cell.kind;
  view.run.hidden = cell.kind === "markdown";
  const key = [cell.kind, cell.state, cell.updated_at, cell.execution_count].join("|");
  if (key === view.key) return;
  view.key = key;
  view.count.textContent = cell.kind === "markdown" ? "" : `[${cell.execution_count ?? " "}]`;
  const progress = cell.state === "running" && cell.progress > 0 ? ` ${Math.round(cell.progress * 100)}%` : "";
  replace(view.badge, cell.kind === "markdown" ? "" : stateBadge(cell.state), progress);
  if (cell.kind === "markdown") drawMarkdown(view.output, view.source.value);
  else if (cell.output) renderOutput(view.output, cell.output);
  else replace(view.output, cell.state === "queued" || cell.state === "running" ? el("p", { class: "muted" }, `${cell.state}…`) : "");
}

// Markdown shown as text: headings (#, ##, ###) and paragraphs only; no HTML, no links.
function drawMarkdown(container, source) {
  const blocks = source.split(/\n\s*\n/).filter((b) => b.trim());
  replace(
    container,
    el(
      "div",
      { class: "markdown-view" },
      ...blocks.map((block) => {
        const heading = /^(#{1,3})\s+(.*)$/s.exec(block.trim());
        return heading ? el(`h${heading[1].length}`, {}, heading[2]) : el("p", {}, block);
      }),
    ),
  );
}

// ---- the toolbar ----------------------------------------------------------------------------------------
async function loadTargets() {
  const select = document.getElementById("attach-target");
  const me = currentUser().username;
  const page = await api("GET", "/api/v1/clusters?limit=200", undefined, { quiet: true });
  const running = page.items.filter((c) => c.state === "RUNNING" && c.creator_user_name === me);
  replace(
    select,
    el("option", { value: "" }, "a new session on this machine"),
    ...running.map((c) => el("option", { value: String(c.cluster_id) }, `cluster ${c.cluster_name}`)),
  );
}

document.getElementById("attach").addEventListener("click", async () => {
  const cluster = document.getElementById("attach-target").value;
  if (!(await act("POST", `${base}/attach`, cluster ? { cluster_id: Number(cluster) } : {}))) return;
  clearMessages(); // an earlier "not attached" no longer holds
  showMessage("Attached: the session is starting; cells you run now wait for it.", "info");
});
document.getElementById("detach").addEventListener("click", () => act("POST", `${base}/detach`));
document.getElementById("run-all").addEventListener("click", async () => {
  for (const view of views.values()) await save(view);
  await act("POST", `${base}/run-all`);
});
document.getElementById("cancel").addEventListener("click", () => act("POST", `${base}/cancel`));
document.getElementById("clear-outputs").addEventListener("click", () => act("POST", `${base}/clear-outputs`));
for (const button of document.querySelectorAll("[data-add]")) {
  button.addEventListener("click", async () => {
    const cell = await api("POST", `${base}/cells`, { kind: button.dataset.add, source: "" });
    await load();
    views.get(cell.id)?.source.focus();
  });
}
document.getElementById("rename-notebook").addEventListener("click", () => {
  const title = document.getElementById("notebook-title");
  const input = el("input", { value: notebook.name, "aria-label": "notebook name", maxlength: 255 });
  let finished = false;
  const done = async (keep) => {
    if (finished) return;
    finished = true;
    if (keep && input.value.trim() && input.value.trim() !== notebook.name) await act("PATCH", base, { name: input.value.trim() });
    input.replaceWith(title);
    draw(notebook);
  };
  input.addEventListener("keydown", (e) => (e.key === "Enter" ? done(true) : e.key === "Escape" ? done(false) : null));
  input.addEventListener("blur", () => done(true), { once: true });
  title.replaceWith(input);
  input.focus();
});

loadTargets().catch(() => {});
const refresher = poll(async () => {
  if (notebook && !busy(notebook) && Date.now() - lastLoad < 5000) return;
  await load();
}, 1000);
