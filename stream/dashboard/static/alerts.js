// Alerts page: rows are rendered by the server; live fragments replace or move them.
import { connect } from "./live.js";
import { bindLabelButtons } from "./labels.js";

const main = document.querySelector("main");
let loading = false;
let buffered = [];

function place(fragment) {
  const existing = document.getElementById("alert-" + fragment.id);
  if (existing && Number(existing.dataset.seq) > fragment.seq) return; // stale push
  if (existing) existing.remove();
  if (fragment.section) {
    const body = main.querySelector(`tbody[data-section="${fragment.section}"]`);
    body.insertAdjacentHTML("afterbegin", fragment.html);
    body.firstElementChild.classList.add("fresh");
  }
}

function recount() {
  for (const count of main.querySelectorAll("[data-count]")) {
    const body = main.querySelector(`tbody[data-section="${count.dataset.count}"]`);
    count.textContent = body.children.length;
  }
}

// On every (re)connect: reload the sections, then apply what arrived meanwhile, so that
// nothing between the page's render and the subscription is lost.
async function reload() {
  loading = true;
  try {
    const response = await fetch("/alerts/body", { credentials: "same-origin" });
    if (response.ok) main.innerHTML = await response.text();
  } finally {
    loading = false;
    const pending = buffered;
    buffered = [];
    pending.forEach(place);
    recount();
  }
}

connect({ want: "alerts" }, {
  open: reload,
  events: {
    alerts: (fragments) => {
      if (loading) buffered.push(...fragments);
      else { fragments.forEach(place); recount(); }
    },
  },
});
bindLabelButtons(main);
