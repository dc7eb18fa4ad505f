// What the clusters list and the cluster page share: the scaling form fields and the action buttons.
import { api, el, showMessage } from "../sparkplane.js";

export function workersText(c) {
  if (c.autoscale) return `${c.autoscale.min_workers}–${c.autoscale.max_workers} (now ${c.target_workers})`;
  return String(c.num_workers ?? c.target_workers);
}

export function scalingBody(values) {
  if (values.scaling === "autoscale") {
    return { autoscale: { min_workers: Number(values.min_workers), max_workers: Number(values.max_workers) } };
  }
  return { num_workers: Number(values.num_workers) };
}

// Show either the fixed size or the min/max fields, following the form's "scaling" select.
export function toggleScaling(form) {
  const select = form.elements.scaling;
  const apply = () => {
    const auto = select.value === "autoscale";
    form.querySelectorAll(".autoscale").forEach((n) => (n.hidden = !auto));
    form.querySelectorAll(".fixed, #fixed-workers").forEach((n) => (n.hidden = auto));
  };
  if (!select.dataset.wired) {
    select.addEventListener("change", apply);
    select.dataset.wired = "1";
  }
  apply();
}

const ALLOWED = {
  start: (s) => s === "TERMINATED",
  restart: (s) => s === "RUNNING",
  terminate: (s) => !["TERMINATED", "TERMINATING"].includes(s),
};

export async function clusterAction(cluster, action) {
  if (action === "terminate" && !confirm(`Terminate cluster "${cluster.cluster_name}"?`)) return null;
  const done = await api("POST", `/api/v1/clusters/${cluster.cluster_id}/${action}`);
  showMessage(`${action}: cluster "${done.cluster_name}" is ${done.state}.`, "ok");
  return done;
}

export function clusterActions(cluster, after) {
  const buttons = Object.keys(ALLOWED)
    .filter((action) => ALLOWED[action](cluster.state))
    .map((action) =>
      el(
        "button",
        {
          type: "button",
          class: `small${action === "terminate" ? " danger" : ""}`,
          dataset: { action },
          onclick: async (event) => {
            event.target.disabled = true;
            try {
              await clusterAction(cluster, action);
            } finally {
              after();
            }
          },
        },
        action,
      ),
    );
  return el("div", { class: "actions" }, ...buttons);
}

export function enabledActions(state) {
  return Object.fromEntries(Object.entries(ALLOWED).map(([action, ok]) => [action, ok(state)]));
}
