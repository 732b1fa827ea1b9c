// The confirm / false-positive buttons of alert rows (alerts page and stream page).
// A click POSTs the verdict; the row changes when the label comes back from the labels
// topic over the event stream, so the page shows what the topic holds, not what was clicked.

export function bindLabelButtons(root) {
  root.addEventListener("click", async (event) => {
    const button = event.target.closest("button.label-button");
    if (!button) return;
    const row = button.closest("tr[data-alert-id]");
    const buttons = row.querySelectorAll("button.label-button");
    const verdict = row.querySelector(".verdict");
    const before = verdict.textContent;
    buttons.forEach((b) => { b.disabled = true; });
    verdict.textContent = "sending…";
    try {
      const response = await fetch(`/api/alerts/${row.dataset.alertId}/label`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        credentials: "same-origin",
        body: JSON.stringify({ label: button.dataset.label }),
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw new Error(body.error || `${response.status} ${response.statusText}`);
      }
      verdict.textContent = "sent…";
    } catch (err) {
      verdict.textContent = before;
      buttons.forEach((b) => { b.disabled = false; });
      const box = document.getElementById("label-error");
      if (box) {
        box.textContent = `label not sent: ${err.message}`;
        box.hidden = false;
      }
    }
  });
}
