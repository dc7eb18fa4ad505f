// One cluster: its state and nodes (polled), resize, start / restart / terminate, and the events timeline.
import { api, el, formatTime, getOne, poll, replace, showGone, showMessage, stateBadge, wireForm } from "../sparkplane.js";
import { clusterAction, enabledActions, scalingBody, toggleScaling, workersText } from "./cluster_common.js";

const id = document.getElementById("cluster-page").dataset.clusterId;
const form = document.getElementById("resize-form");
let cluster = null;

toggleScaling(form);
wireForm(form, async (values) => {
  const done = await api("POST", `/api/v1/clusters/${id}/resize`, scalingBody(values));
  showMessage(`Resizing "${done.cluster_name}" to ${workersText(done)} workers.`, "ok");
  refresh.now();
});

for (const button of document.querySelectorAll("[data-action]")) {
  button.addEventListener("click", async () => {
    if (!cluster) return;
    button.disabled = true;
    try {
      await clusterAction(cluster, button.dataset.action);
    } finally {
      refresh.now();
    }
  });
}

function fact(name, ...value) {
  return [el("dt", {}, name), el("dd", {}, ...value)];
}

function drawCluster(c) {
  cluster = c;
  document.getElementById("cluster-title").textContent = c.cluster_name;
  document.title = `${c.cluster_name} · sparkplane`;
  const ui = c.spark_ui_url && c.state !== "TERMINATED" ? el("a", { href: c.spark_ui_url, target: "_blank", rel: "noopener" }, c.spark_ui_url) : "—";
  replace(
    document.getElementById("cluster-facts"),
    ...fact("state", stateBadge(c.state), c.state_message ? ` ${c.state_message}` : ""),
    ...fact("size", c.node_type_id),
    ...fact("workers", workersText(c)),
    ...fact("auto-terminate", c.autotermination_minutes ? `after ${c.autotermination_minutes} min idle` : "never"),
    ...fact("owner", c.creator_user_name),
    ...fact("master", c.master_url || "—"),
    ...fact("Spark UI", ui),
    ...fact("started", formatTime(c.start_time)),
    ...(c.termination_reason ? fact("terminated", `${c.termination_reason.code || ""} ${JSON.stringify(c.termination_reason.parameters || {})}`) : []),
  );
  for (const [action, ok] of Object.entries(enabledActions(c.state))) {
    document.querySelector(`[data-action="${action}"]`).disabled = !ok;
  }
  form.querySelector('button[type="submit"]').disabled = !["RUNNING", "RESIZING"].includes(c.state);
}

function drawNodes(nodes) {
  const box = document.getElementById("cluster-nodes");
  if (!nodes.length) return replace(box, el("p", { class: "muted" }, "No nodes running."));
  replace(
    box,
    el(
      "table",
      {},
      el("thead", {}, el("tr", {}, ...["node", "role", "state", "host", "registered", "cores"].map((h) => el("th", {}, h)))),
      el(
        "tbody",
        {},
        ...nodes.map((n) =>
          el("tr", {}, el("td", {}, n.key), el("td", {}, n.role), el("td", {}, n.state), el("td", {}, n.host || "—"), el("td", {}, n.registered ? "yes" : "no"), el("td", {}, n.cores ?? "—")),
        ),
      ),
    ),
  );
}

function drawEvents(page) {
  const items = page.events.map((e) => {
    const details = Object.entries(e.details || {}).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
    return el("li", { dataset: { type: e.type } }, el("time", {}, formatTime(e.timestamp)), el("strong", {}, e.type), details ? el("div", { class: "details" }, details) : null);
  });
  replace(document.getElementById("cluster-events"), ...(items.length ? items : [el("li", { class: "muted" }, "No events yet.")]));
}

const refresh = poll(async () => {
  const c = await getOne(`/api/v1/clusters/${id}`, (message) => {
    refresh.stop();
    showGone(document.getElementById("cluster-page"), `Cluster ${id}`, "/ui/clusters", "← Clusters", message);
  });
  if (!c) return;
  const [nodes, events] = await Promise.all([
    api("GET", `/api/v1/clusters/${id}/nodes`, undefined, { quiet: true }),
    api("GET", `/api/v1/clusters/${id}/events?order=desc&limit=100`, undefined, { quiet: true }),
  ]);
  drawCluster(c);
  drawNodes(nodes);
  drawEvents(events);
}, 2000);
