// The clusters list: create one, see every cluster's state live (polled), act on it.
import { api, el, formatTime, poll, replace, showMessage, stateBadge, wireForm } from "../sparkplane.js";
import { clusterActions, scalingBody, toggleScaling, workersText } from "./cluster_common.js";

const form = document.getElementById("create-cluster");
const tbody = document.querySelector("#clusters tbody");

api("GET", "/api/v1/clusters/node-types").then((types) => {
  replace(
    document.getElementById("node-types"),
    ...types.map((t) => el("option", { value: t.node_type_id }, `${t.node_type_id} (${t.description})`)),
  );
});
toggleScaling(form);

wireForm(form, async (values) => {
  const body = {
    cluster_name: values.cluster_name.trim(),
    node_type_id: values.node_type_id || undefined,
    autotermination_minutes: Number(values.autotermination_minutes || 0),
    ...scalingBody(values),
  };
  const cluster = await api("POST", "/api/v1/clusters", body);
  showMessage(`Cluster "${cluster.cluster_name}" is starting.`, "ok");
  form.reset();
  toggleScaling(form);
  refresh.now();
});

function row(c) {
  return el(
    "tr",
    { dataset: { clusterId: String(c.cluster_id) } },
    el("td", {}, el("a", { href: `/ui/clusters/${c.cluster_id}`, class: "cluster-name" }, c.cluster_name)),
    el("td", {}, stateBadge(c.state), c.state_message ? el("div", { class: "muted" }, c.state_message) : null),
    el("td", {}, c.node_type_id),
    el("td", {}, workersText(c)),
    el("td", {}, c.creator_user_name),
    el("td", {}, formatTime(c.created_at)),
    el("td", {}, c.spark_ui_url && c.state !== "TERMINATED" ? el("a", { href: c.spark_ui_url, target: "_blank", rel: "noopener" }, "Spark UI") : "—"),
    el("td", {}, clusterActions(c, () => refresh.now())),
  );
}

const refresh = poll(async () => {
  const page = await api("GET", "/api/v1/clusters?limit=200", undefined, { quiet: true });
  const items = page.items.slice().sort((a, b) => b.cluster_id - a.cluster_id);
  if (!items.length) replace(tbody, el("tr", {}, el("td", { colspan: 8, class: "empty" }, "No clusters yet: create one above.")));
  else replace(tbody, ...items.map(row));
}, 2000);
