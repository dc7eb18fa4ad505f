// The login page: posts the form as JSON with the login form's own CSRF token (see api/routers/web.py).
// Not through api(): that one sends the session's CSRF token, which a browser without a login has not.
import { ApiError, showMessage, wireForm } from "../sparkplane.js";

const form = document.getElementById("login-form");

wireForm(form, async (values) => {
  const token = document.querySelector('meta[name="login-csrf"]').content;
  const response = await fetch("/ui/login", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": token },
    body: JSON.stringify({ username: values.username, password: values.password, next: form.dataset.next }),
    credentials: "same-origin",
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = data.detail || `login failed (HTTP ${response.status})`;
    showMessage(message, "error");
    form.elements.password.value = "";
    throw new ApiError(response.status, message);
  }
  location.assign(data.next);
});
