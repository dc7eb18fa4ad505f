// The batches list: submit a Python file (upload, then create the batch), see every batch's state live, kill.
import { api, el, formatTime, poll, replace, showMessage, stateBadge, wireForm } from "../sparkplane.js";
import { FINAL, killBatch } from "./batch_common.js";

const form = document.getElementById("submit-batch");
const tbody = document.querySelector("#batches tbody");

api("GET", "/api/v1/clusters?state=RUNNING&limit=200").then((page) => {
  document.getElementById("batch-cluster").append(...page.items.map((c) => el("option", { value: String(c.cluster_id) }, `${c.cluster_name} (#${c.cluster_id})`)));
});

wireForm(form, async (values) => {
  const upload = new FormData();
  upload.append("file", values.file);
  const file = await api("POST", "/api/v1/files", upload);
  const body = { file: file.uri, args: (values.args || "").split(/\s+/).filter(Boolean) };
  if (values.name.trim()) body.name = values.name.trim();
  if (values.cluster_id) body.cluster_id = Number(values.cluster_id);
  const batch = await api("POST", "/api/v1/batches", body);
  showMessage(`Batch ${batch.id} submitted.`, "ok");
  location.assign(`/ui/batches/${batch.id}`);
});

function row(b) {
  return el(
    "tr",
    { dataset: { batchId: String(b.id) } },
    el("td", {}, el("a", { href: `/ui/batches/${b.id}` }, `#${b.id}`)),
    el("td", { class: "batch-name" }, b.name || el("span", { class: "muted" }, b.file.split("/").pop())),
    el("td", {}, stateBadge(b.state)),
    el("td", {}, b.owner),
    el("td", {}, formatTime(b.submitted_at)),
    el("td", {}, formatTime(b.finished_at)),
    el("td", {}, FINAL.has(b.state) ? null : el("button", { type: "button", class: "small danger", onclick: () => killBatch(b).then(() => refresh.now()) }, "kill")),
  );
}

const refresh = poll(async () => {
  const page = await api("GET", "/api/v1/batches?limit=200", undefined, { quiet: true });
  const items = page.items.slice().sort((a, b) => b.id - a.id);
  if (!items.length) replace(tbody, el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No batches yet: submit one above.")));
  else replace(tbody, ...items.map(row));
}, 2000);
