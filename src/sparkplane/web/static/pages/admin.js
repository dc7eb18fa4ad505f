// The admin page: every user; create one, disable or enable, make admin or user.
import { api, currentUser, el, replace, showMessage, wireForm } from "../sparkplane.js";

const tbody = document.querySelector("#users tbody");
const me = currentUser().username;

async function update(user, change, done) {
  await api("PATCH", `/api/v1/users/${user.id}`, change);
  showMessage(done, "ok");
  await draw();
}

function actions(u) {
  if (u.username === me) return el("span", { class: "muted" }, "you");
  return el(
    "div",
    { class: "actions" },
    u.is_active
      ? el("button", { type: "button", class: "small danger", dataset: { action: "disable" }, onclick: () => update(u, { is_active: false }, `${u.username} is disabled.`) }, "disable")
      : el("button", { type: "button", class: "small", dataset: { action: "enable" }, onclick: () => update(u, { is_active: true }, `${u.username} is enabled.`) }, "enable"),
    u.role === "admin"
      ? el("button", { type: "button", class: "small", dataset: { action: "make-user" }, onclick: () => update(u, { role: "user" }, `${u.username} is a user.`) }, "make user")
      : el("button", { type: "button", class: "small", dataset: { action: "make-admin" }, onclick: () => update(u, { role: "admin" }, `${u.username} is an admin.`) }, "make admin"),
  );
}

async function draw() {
  const users = await api("GET", "/api/v1/users");
  replace(
    tbody,
    ...users.map((u) =>
      el(
        "tr",
        { dataset: { username: u.username } },
        el("td", {}, String(u.id)),
        el("td", {}, u.username),
        el("td", { class: "role" }, u.role),
        el("td", { class: "status" }, u.is_active ? "active" : "disabled"),
        el("td", {}, actions(u)),
      ),
    ),
  );
}

wireForm(document.getElementById("create-user"), async (values, form) => {
  const user = await api("POST", "/api/v1/users", values);
  form.reset();
  showMessage(`User ${user.username} created.`, "ok");
  await draw();
});

await draw();
