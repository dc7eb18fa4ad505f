import { api, showMessage } from "../sparkplane.js";

export const FINAL = new Set(["success", "dead", "killed"]);

export async function killBatch(batch) {
  if (!confirm(`Kill batch ${batch.id}${batch.name ? ` (${batch.name})` : ""}?`)) return null;
  const done = await api("DELETE", `/api/v1/batches/${batch.id}`);
  showMessage(`Batch ${done.id} is ${done.state}.`, "ok");
  return done;
}
