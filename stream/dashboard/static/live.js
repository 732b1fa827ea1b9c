// The page's live connection: one EventSource to /events, the status line, reconnects.
// EventSource reconnects by itself (the server sets retry: 1000); every "open", the first one
// included, calls handlers.open so the page can reload its snapshot and miss nothing.

export function connect(params, handlers) {
  const status = document.getElementById("status");
  const source = new EventSource("/events?" + new URLSearchParams(params));
  source.addEventListener("open", () => {
    status.classList.remove("offline");
    if (handlers.open) handlers.open();
  });
  source.addEventListener("error", () => {
    status.classList.add("offline");
    status.textContent = "disconnected, reconnecting…";
  });
  source.addEventListener("status", (event) => {
    const data = JSON.parse(event.data);
    status.textContent = data.text;
    status.dataset.phase = data.phase;
  });
  for (const [name, handler] of Object.entries(handlers.events || {})) {
    source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
  }
  return source;
}

export function formatTime(epochSeconds) {
  if (epochSeconds === null || epochSeconds === undefined) return "–";
  return new Date(epochSeconds * 1000).toISOString().slice(0, 16).replace("T", " ") + "Z";
}
