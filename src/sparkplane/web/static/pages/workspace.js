// The workspace: a folder tree on the left, the current folder's folders and notebooks on the right, with
// create, rename, move, delete and import. The current folder is in the URL (?folder=ID).
import { api, el, formatTime, replace, showMessage, wireForm } from "../sparkplane.js";

const WS = "/api/v1/workspace";
const tbody = document.querySelector("#ws-items tbody");
let tree = { folders: [], notebooks: [] };
let current = Number(new URLSearchParams(location.search).get("folder")) || null;

const folderById = () => new Map(tree.folders.map((f) => [f.id, f]));
const href = (folderId) => (folderId ? `/ui/workspace?folder=${folderId}` : "/ui/workspace");

function path(folderId) {
  const byId = folderById();
  const chain = [];
  for (let f = byId.get(folderId); f && chain.length < 100; f = byId.get(f.parent_id)) chain.unshift(f);
  return chain;
}

function go(folderId) {
  current = folderId;
  history.replaceState(null, "", href(folderId));
  draw();
}

function link(folderId, text) {
  return el("a", { href: href(folderId), onclick: (event) => (event.preventDefault(), go(folderId)), class: folderId === current ? "current" : "" }, text);
}

function drawTree() {
  const children = (parentId) => tree.folders.filter((f) => f.parent_id === parentId);
  const branch = (parentId) => {
    const items = children(parentId).map((f) => el("li", {}, link(f.id, f.name), children(f.id).length ? branch(f.id) : null));
    return items.length ? el("ul", {}, ...items) : null;
  };
  replace(document.getElementById("ws-tree"), el("ul", {}, el("li", {}, link(null, "Workspace"), branch(null))));
}

function drawBreadcrumb() {
  replace(document.getElementById("ws-breadcrumb"), link(null, "Workspace"), ...path(current).map((f) => el("span", {}, link(f.id, f.name))));
}

// Folders a thing may move to: the top, or any folder of the same owner that is not itself or below it.
function destinations(item, isFolder) {
  const below = (f) => isFolder && path(f.id).some((p) => p.id === item.id);
  const options = [el("option", { value: "" }, "(top)")];
  for (const f of tree.folders) {
    if (f.owner !== item.owner || below(f)) continue;
    options.push(el("option", { value: String(f.id) }, path(f.id).map((p) => p.name).join(" / ")));
  }
  return options;
}

function actions(item, isFolder) {
  const kind = isFolder ? "folders" : "notebooks";
  const box = el("div", { class: "item-actions" });
  const rename = () => {
    const input = el("input", { value: item.name, "aria-label": "new name", maxlength: 255 });
    const save = async () => {
      await api("PATCH", `${WS}/${kind}/${item.id}`, { name: input.value.trim() });
      await refresh();
    };
    input.addEventListener("keydown", (e) => e.key === "Enter" && save());
    replace(box, input, el("button", { type: "button", class: "small", onclick: save }, "Save"), el("button", { type: "button", class: "small", onclick: () => drawItems() }, "Cancel"));
    input.focus();
  };
  const move = () => {
    const select = el("select", { "aria-label": "move to" }, ...destinations(item, isFolder));
    select.value = String((isFolder ? item.parent_id : item.folder_id) ?? "");
    const save = async () => {
      const target = select.value ? Number(select.value) : null;
      await api("PATCH", `${WS}/${kind}/${item.id}`, isFolder ? { parent_id: target } : { folder_id: target });
      await refresh();
    };
    replace(box, select, el("button", { type: "button", class: "small", onclick: save }, "Move here"), el("button", { type: "button", class: "small", onclick: () => drawItems() }, "Cancel"));
  };
  const remove = async () => {
    const what = isFolder ? `folder "${item.name}" and everything in it` : `notebook "${item.name}"`;
    if (!confirm(`Delete ${what}?`)) return;
    await api("DELETE", `${WS}/${kind}/${item.id}${isFolder ? "?recursive=true" : ""}`);
    showMessage(`Deleted ${what}.`, "ok");
    await refresh();
  };
  replace(
    box,
    el("button", { type: "button", class: "small", onclick: rename }, "Rename"),
    el("button", { type: "button", class: "small", onclick: move }, "Move"),
    el("button", { type: "button", class: "small danger", onclick: remove }, "Delete"),
  );
  return box;
}

function drawItems() {
  const folders = tree.folders.filter((f) => f.parent_id === current);
  const notebooks = tree.notebooks.filter((n) => n.folder_id === current);
  const rows = [
    ...folders.map((f) =>
      el("tr", { dataset: { folderId: String(f.id) } }, el("td", { class: "folder-name" }, link(f.id, f.name)), el("td", {}, "folder"), el("td", {}, f.owner), el("td", {}, formatTime(f.updated_at)), el("td", {}, actions(f, true))),
    ),
    ...notebooks.map((n) =>
      el(
        "tr",
        { dataset: { notebookId: String(n.id) } },
        el("td", {}, el("a", { href: `/ui/notebooks/${n.id}`, class: "notebook-name" }, n.name)),
        el("td", {}, n.session_id ? "notebook · attached" : "notebook"),
        el("td", {}, n.owner),
        el("td", {}, formatTime(n.updated_at)),
        el("td", {}, actions(n, false)),
      ),
    ),
  ];
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 5, class: "empty" }, "This folder is empty: create a notebook or a folder above, or import a file.")));
  replace(tbody, ...rows);
}

function draw() {
  if (current && !folderById().has(current)) current = null;
  drawTree();
  drawBreadcrumb();
  drawItems();
}

async function refresh() {
  tree = await api("GET", WS);
  draw();
}

wireForm(document.getElementById("new-folder"), async (values, form) => {
  await api("POST", `${WS}/folders`, { name: values.name.trim(), parent_id: current });
  form.reset();
  await refresh();
});

wireForm(document.getElementById("new-notebook"), async (values) => {
  const made = await api("POST", `${WS}/notebooks`, { name: values.name.trim(), folder_id: current, cells: [{ kind: "pyspark", source: "" }] });
  location.assign(`/ui/notebooks/${made.id}`);
});

wireForm(document.getElementById("import-notebook"), async (values, form) => {
  const body = new FormData();
  body.append("file", values.file);
  if (current) body.append("folder_id", String(current));
  const made = await api("POST", `${WS}/import`, body);
  showMessage(`Imported "${made.name}" with ${made.cells.length} cells.`, "ok");
  form.reset();
  await refresh();
});

refresh();
