// The account page: change the password, API tokens (created, shown once, revoked), data credentials.
import { api, el, formatTime, replace, showMessage, wireForm } from "../sparkplane.js";

// Not awaited here: every form is wired before the first request answers. A form clicked earlier used to be
// sent by the browser itself (its secrets in the URL); they are method="post" now, so that could never leak.
const me = api("GET", "/api/v1/users/me");

wireForm(document.getElementById("password-form"), async (values, form) => {
  if (values.password !== values.repeat) {
    showMessage("The two passwords differ.", "error");
    return;
  }
  const { id } = await me;
  await api("PATCH", `/api/v1/users/${id}`, { password: values.password });
  form.reset();
  showMessage("Password changed. Use it the next time you log in.", "ok");
});

// ---- tokens ----
const tokenRows = document.querySelector("#tokens tbody");

async function drawTokens() {
  const tokens = await api("GET", "/api/v1/tokens");
  if (!tokens.length) return replace(tokenRows, el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No tokens.")));
  replace(
    tokenRows,
    ...tokens
      .slice()
      .reverse()
      .map((t) =>
        el(
          "tr",
          { dataset: { tokenId: String(t.id) } },
          el("td", { class: "token-name" }, t.name),
          el("td", {}, el("code", {}, `${t.prefix}…`)),
          el("td", {}, formatTime(t.created_at)),
          el("td", {}, formatTime(t.last_used_at)),
          el("td", { class: "token-status" }, t.revoked ? "revoked" : "active"),
          el("td", {}, t.revoked ? null : el("button", { type: "button", class: "small danger", onclick: () => revoke(t) }, "revoke")),
        ),
      ),
  );
}

async function revoke(token) {
  if (!confirm(`Revoke token "${token.name}"? Programs using it stop working.`)) return;
  await api("DELETE", `/api/v1/tokens/${token.id}`);
  showMessage(`Token "${token.name}" revoked.`, "ok");
  await drawTokens();
}

wireForm(document.getElementById("token-form"), async (values, form) => {
  const created = await api("POST", "/api/v1/tokens", { name: values.name });
  form.reset();
  replace(
    document.getElementById("new-token"),
    el(
      "div",
      { class: "secret", role: "status" },
      el("p", {}, el("strong", {}, `Token "${created.name}"`), ": copy it now, it is not shown again."),
      el("code", { id: "new-token-value" }, created.token),
    ),
  );
  await drawTokens();
});

// ---- data credentials ----
const credentialRows = document.querySelector("#credentials tbody");

async function drawCredentials() {
  const found = await api("GET", "/api/v1/credentials");
  if (!found.length) return replace(credentialRows, el("tr", {}, el("td", { colspan: 4, class: "empty" }, "No credentials.")));
  replace(
    credentialRows,
    ...found.map((c) =>
      el(
        "tr",
        {},
        el("td", { class: "credential-name" }, c.name),
        el("td", {}, c.kind),
        el("td", {}, formatTime(c.created_at)),
        el("td", {}, el("button", { type: "button", class: "small danger", onclick: () => removeCredential(c.name) }, "delete")),
      ),
    ),
  );
}

async function removeCredential(name) {
  if (!confirm(`Delete credential "${name}"?`)) return;
  await api("DELETE", `/api/v1/credentials/${encodeURIComponent(name)}`);
  showMessage(`Credential "${name}" deleted.`, "ok");
  await drawCredentials();
}

wireForm(document.getElementById("credential-form"), async (values, form) => {
  const fields = { access_key_id: values.access_key_id, secret_access_key: values.secret_access_key };
  if (values.bucket.trim()) fields.bucket = values.bucket.trim();
  await api("POST", "/api/v1/credentials", { name: values.name, kind: values.kind, fields });
  form.reset();
  showMessage(`Credential "${values.name}" stored.`, "ok");
  await drawCredentials();
});

await Promise.all([drawTokens(), drawCredentials()]);
