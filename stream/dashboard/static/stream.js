// Stream page: the server renders the panel (charts, explanation, alerts); a push saying the
// stream changed reloads it, at most once a second.
import { connect } from "./live.js";
import { bindLabelButtons } from "./labels.js";

const panel = document.getElementById("panel");
const query = new URLSearchParams(location.search);
let timer = null;
let last = 0;

async function refresh() {
  last = Date.now();
  const response = await fetch("/stream/panel?" + query, { credentials: "same-origin" });
  if (response.ok) panel.innerHTML = await response.text();
}

function schedule() {
  if (timer !== null) return;
  timer = setTimeout(() => { timer = null; refresh(); }, Math.max(0, 1000 - (Date.now() - last)));
}

connect({ want: "stream", name: panel.dataset.stream }, { open: schedule, events: { stream: schedule } });
bindLabelButtons(panel);
