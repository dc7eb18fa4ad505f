// One batch: its state (polled), the live tail of its log, its events, and kill.
import { api, el, formatTime, getOne, poll, replace, showGone, stateBadge } from "../sparkplane.js";
import { FINAL, killBatch } from "./batch_common.js";

const id = document.getElementById("batch-page").dataset.batchId;
const logBox = document.getElementById("batch-log");
const follow = document.getElementById("follow");
const killButton = document.getElementById("kill-batch");
const TAIL = 1000; // lines of the log shown
let batch = null;

killButton.addEventListener("click", async () => {
  if (batch) await killBatch(batch);
  refresh.now();
});

function fact(name, ...value) {
  return [el("dt", {}, name), el("dd", {}, ...value)];
}

function drawBatch(b) {
  batch = b;
  document.getElementById("batch-title").textContent = `Batch ${b.id}${b.name ? `: ${b.name}` : ""}`;
  const ui = b.spark_ui_url && !FINAL.has(b.state) ? el("a", { href: b.spark_ui_url, target: "_blank", rel: "noopener" }, b.spark_ui_url) : "—";
  replace(
    document.getElementById("batch-facts"),
    ...fact("state", stateBadge(b.state), b.message ? ` ${b.message}` : ""),
    ...fact("file", b.file),
    ...fact("arguments", b.args.length ? b.args.join(" ") : "—"),
    ...fact("owner", b.owner),
    ...fact("application", b.app_id || "—"),
    ...fact("Spark UI", ui),
    ...fact("cluster", b.cluster_id ? el("a", { href: `/ui/clusters/${b.cluster_id}` }, `#${b.cluster_id}`) : "this machine"),
    ...fact("submitted", formatTime(b.submitted_at)),
    ...fact("finished", formatTime(b.finished_at)),
  );
  killButton.disabled = FINAL.has(b.state);
}

function drawLog(page) {
  const atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 8;
  const skipped = page.offset > 0 ? `… ${page.offset} earlier lines not shown\n` : "";
  logBox.textContent = page.lines.length ? skipped + page.lines.join("\n") : "(no log yet)";
  if (follow.checked && atBottom) logBox.scrollTop = logBox.scrollHeight;
}

function drawEvents(events) {
  const items = events.map((e) => el("li", {}, el("time", {}, formatTime(e.at)), el("strong", {}, e.to), e.reason || e.message ? el("div", { class: "details" }, [e.reason, e.message].filter(Boolean).join(": ")) : null));
  replace(document.getElementById("batch-events"), ...items);
}

let finalRounds = 0;
const refresh = poll(async () => {
  const b = await getOne(`/api/v1/batches/${id}`, (message) => {
    refresh.stop();
    showGone(document.getElementById("batch-page"), `Batch ${id}`, "/ui/batches", "← Batches", message);
  });
  if (!b) return;
  const [log, events] = await Promise.all([
    api("GET", `/api/v1/batches/${id}/log?limit=${TAIL}`, undefined, { quiet: true }),
    api("GET", `/api/v1/batches/${id}/events`, undefined, { quiet: true }),
  ]);
  drawBatch(b);
  drawLog(log);
  drawEvents(events);
  // a few rounds after the end pick up the log the batch watcher collects then; later nothing changes
  if (FINAL.has(b.state) && ++finalRounds > 5) refresh.stop();
}, 1500);
