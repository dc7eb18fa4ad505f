import { api } from "../sparkplane.js";

document.getElementById("origin").textContent = location.origin;
const counts = [
  ["count-clusters", "/api/v1/clusters?limit=1000", (c) => c.state !== "TERMINATED", "cluster(s) up"],
  ["count-sessions", "/api/v1/sessions?limit=1000", (s) => !["dead", "killed", "success", "error"].includes(s.state), "live session(s)"],
  ["count-batches", "/api/v1/batches?limit=1000", (b) => ["not_started", "starting", "running"].includes(b.state), "batch(es) running"],
];
for (const [id, path, live, noun] of counts) {
  api("GET", path).then((page) => {
    document.getElementById(id).textContent = `${page.items.filter(live).length} ${noun}`;
  });
}
