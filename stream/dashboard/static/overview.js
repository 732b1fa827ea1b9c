// Overview: one row per stream, sorted and filtered in the browser, and virtualised: only
// the rows in view (plus a margin) are in the DOM, so thousands of streams scroll smoothly
// and a burst of updates re-renders a few dozen rows, not all of them.
import { connect, formatTime } from "./live.js";

const ROW_HEIGHT = 28; // px; the CSS gives every cell this height
const OVERSCAN = 12; // rows rendered beyond the visible ones
const RANK = { critical: 0, warning: 1, suppressed: 2, anomalous: 3, normal: 4, unscored: 5 };
// Row layout, as /api/overview and the "rows" event send it.
const NAME = 0, START = 1, END = 2, SCORE = 3, STATE = 4, SPARK = 5, SEQ = 6;

const viewport = document.getElementById("viewport");
const body = document.querySelector("#overview tbody");
const filterBox = document.getElementById("filter");
const stateBox = document.getElementById("state-filter");
const countBox = document.getElementById("count");
const threshold = Number(viewport.dataset.threshold);

const rows = new Map(); // name -> row
let shown = []; // rows after filter and sort
let sortKey = "state";
let sortDir = 1; // 1 ascending (for state: most urgent first)
let pending = false;

function merge(row) {
  const held = rows.get(row[NAME]);
  if (!held || held[SEQ] <= row[SEQ]) rows.set(row[NAME], row); // keep the newest
}

function matcher(text) {
  const needle = text.trim().toLowerCase();
  if (!needle) return () => true;
  if (/[*?]/.test(needle)) {
    const source = needle.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
    const pattern = new RegExp("^" + source + "$");
    return (name) => pattern.test(name.toLowerCase());
  }
  return (name) => name.toLowerCase().includes(needle);
}

function compare(a, b) {
  let diff = 0;
  if (sortKey === "name") diff = a[NAME] < b[NAME] ? -1 : a[NAME] > b[NAME] ? 1 : 0;
  else if (sortKey === "end") diff = (a[END] ?? -Infinity) - (b[END] ?? -Infinity);
  else if (sortKey === "score") diff = (a[SCORE] ?? -1) - (b[SCORE] ?? -1);
  else diff = (RANK[a[STATE]] ?? 9) - (RANK[b[STATE]] ?? 9) || (b[SCORE] ?? -1) - (a[SCORE] ?? -1);
  return diff * sortDir || (a[NAME] < b[NAME] ? -1 : 1);
}

function rebuild() {
  const accepts = matcher(filterBox.value);
  const state = stateBox.value;
  shown = [];
  for (const row of rows.values()) {
    if ((!state || row[STATE] === state) && accepts(row[NAME])) shown.push(row);
  }
  shown.sort(compare);
  countBox.textContent = `${shown.length} of ${rows.size} streams`;
  render();
}

// Batch updates into one rebuild per animation frame.
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; rebuild(); });
}

function spark(scores) {
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 120 20");
  svg.setAttribute("preserveAspectRatio", "none");
  const line = document.createElementNS(svgNS, "line");
  const ty = 19 - (threshold / 100) * 18;
  line.setAttribute("x1", "0"); line.setAttribute("x2", "120");
  line.setAttribute("y1", ty); line.setAttribute("y2", ty);
  svg.appendChild(line);
  if (scores.length) {
    const step = scores.length > 1 ? 120 / (scores.length - 1) : 0;
    const points = scores.map((s, i) => `${(i * step).toFixed(1)},${(19 - (s / 100) * 18).toFixed(1)}`);
    const poly = document.createElementNS(svgNS, "polyline");
    poly.setAttribute("points", points.join(" "));
    svg.appendChild(poly);
  }
  return svg;
}

function cell(tr, content, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (content instanceof Node) td.appendChild(content);
  else td.textContent = content;
  tr.appendChild(td);
  return td;
}

function rowElement(row) {
  const tr = document.createElement("tr");
  tr.dataset.stream = row[NAME];
  const link = document.createElement("a");
  link.href = "/stream?name=" + encodeURIComponent(row[NAME]);
  link.textContent = row[NAME];
  cell(tr, link);
  cell(tr, formatTime(row[START]));
  cell(tr, row[SCORE] === null ? "–" : row[SCORE].toFixed(1), "num score");
  const badge = document.createElement("span");
  badge.className = "badge " + row[STATE];
  badge.textContent = row[STATE];
  cell(tr, badge);
  cell(tr, spark(row[SPARK]));
  return tr;
}

function pad(height) {
  const tr = document.createElement("tr");
  tr.className = "pad";
  const td = document.createElement("td");
  td.colSpan = 5;
  td.style.height = height + "px"; // CSSOM, allowed by the page's content security policy
  tr.appendChild(td);
  return tr;
}

function render() {
  const first = Math.max(0, Math.floor(viewport.scrollTop / ROW_HEIGHT) - OVERSCAN);
  const visible = Math.ceil(viewport.clientHeight / ROW_HEIGHT) + 2 * OVERSCAN;
  const last = Math.min(shown.length, first + visible);
  const fragment = document.createDocumentFragment();
  fragment.appendChild(pad(first * ROW_HEIGHT));
  for (let i = first; i < last; i++) fragment.appendChild(rowElement(shown[i]));
  fragment.appendChild(pad((shown.length - last) * ROW_HEIGHT));
  body.replaceChildren(fragment);
  document.body.dataset.rendered = String(shown.length); // for tests and benchmarks
}

async function reload() {
  const response = await fetch("/api/overview", { credentials: "same-origin" });
  if (!response.ok) return;
  const data = await response.json();
  data.rows.forEach(merge);
  schedule();
}

for (const th of document.querySelectorAll("th[data-sort]")) {
  const choose = () => {
    if (sortKey === th.dataset.sort) sortDir = -sortDir;
    else { sortKey = th.dataset.sort; sortDir = sortKey === "score" || sortKey === "end" ? -1 : 1; }
    document.querySelectorAll("th[data-sort]").forEach((h) => h.classList.remove("asc", "desc"));
    th.classList.add(sortDir > 0 ? "asc" : "desc");
    rebuild();
  };
  th.addEventListener("click", choose);
  th.addEventListener("keydown", (event) => { if (event.key === "Enter") choose(); });
}
document.querySelector(`th[data-sort="${sortKey}"]`).classList.add("asc");
filterBox.addEventListener("input", () => { viewport.scrollTop = 0; rebuild(); });
stateBox.addEventListener("change", () => { viewport.scrollTop = 0; rebuild(); });
viewport.addEventListener("scroll", () => requestAnimationFrame(render), { passive: true });
window.addEventListener("resize", () => requestAnimationFrame(render));

connect({ want: "overview" }, {
  open: reload,
  events: { rows: (update) => { update.forEach(merge); schedule(); } },
});
