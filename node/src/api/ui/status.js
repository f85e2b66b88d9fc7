// The status page (index.html): draws what /v1/status?ring=true of the node
// that served it says, and again every few seconds. No framework and no
// build step; nothing is loaded from anywhere but this node (see
// node/src/api/ui.rs for the routes and the Content-Security-Policy).
"use strict";

const STATUS_URL = "../v1/status?ring=true";
const REFRESH_MS = 3000;
// "Recent" repairs: the counters' growth over this window.
const RECENT_MS = 60000;
// Where the token of a node with --auth-dir is kept (this tab only).
const TOKEN_KEY = "dynamo-status-token";
const SVG_NS = "http://www.w3.org/2000/svg";

// Counter samples {at, keys, exchanges, delivered}, oldest first.
const samples = [];
// What the ring drawing shows, to redraw it only when that changes.
let drawnRing = "";

function byId(id) {
  return document.getElementById(id);
}

// An HTML element with attributes and text.
function html(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.textContent = text;
  return node;
}

// An SVG element with attributes.
function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// Reads the status, draws it and schedules the next round. A node that
// wants a token stops the rounds until one is given (see askForToken).
async function refresh() {
  try {
    const response = await fetch(STATUS_URL, { headers: authHeaders(), cache: "no-store" });
    if (response.status === 401 || response.status === 403) {
      askForToken(response.status);
      return;
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
    render(await response.json());
    showError("");
  } catch (error) {
    showError(`Could not read this node's status: ${error.message}`);
  }
  setTimeout(refresh, REFRESH_MS);
}

function showError(message) {
  byId("error").textContent = message;
  byId("error").hidden = message === "";
}

function askForToken(status) {
  const had = sessionStorage.getItem(TOKEN_KEY) !== null;
  sessionStorage.removeItem(TOKEN_KEY);
  if (status === 403) showError("This token may not read the status.");
  else showError(had ? "The node refused this token." : "");
  byId("token-form").hidden = false;
  byId("token").focus();
}

function useToken(event) {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, byId("token").value.trim());
  byId("token").value = "";
  byId("token-form").hidden = true;
  refresh();
}

function render(status) {
  const colours = coloursOf(status.members);
  byId("node-id").textContent = status.node_id;
  const { n, r, w } = status.quorum;
  byId("summary").textContent =
    `zone ${status.zone} · ring epoch ${status.ring.epoch} · ${status.ring.partitions} partitions · ` +
    `N=${n} R=${r} W=${w} · version ${status.node.version}`;
  byId("updated").textContent = `updated ${new Date().toLocaleTimeString()}, every ${REFRESH_MS / 1000} s`;
  drawRing(status.ring, status.members, colours);
  fillMembers(status, colours);
  fillWork(status);
}

// Colours by zone: each zone gets a hue and its members shades of it, so
// the members of one zone look alike on the ring.
function coloursOf(members) {
  const zones = [...new Set(members.map((m) => m.zone))].sort();
  const member = new Map();
  const zone = new Map();
  zones.forEach((name, z) => {
    const hue = Math.round((205 + (z * 360) / zones.length) % 360);
    zone.set(name, `hsl(${hue}, 45%, 32%)`);
    const ids = members.filter((m) => m.zone === name).map((m) => m.id).sort();
    ids.forEach((id, k) => {
      const light = ids.length === 1 ? 55 : 40 + (35 * k) / (ids.length - 1);
      member.set(id, `hsl(${hue}, 65%, ${Math.round(light)}%)`);
    });
  });
  return { zones, member, zone };
}

// An annulus sector from angle a0 to a1 (radians, clockwise from the top)
// between radii r0 and r1.
function sector(a0, a1, r0, r1) {
  const end = a0 + Math.min(a1 - a0, 2 * Math.PI - 0.001);
  const large = end - a0 > Math.PI ? 1 : 0;
  const at = (a, r) => `${(r * Math.sin(a)).toFixed(2)} ${(-r * Math.cos(a)).toFixed(2)}`;
  return (
    `M ${at(a0, r1)} A ${r1} ${r1} 0 ${large} 1 ${at(end, r1)} ` +
    `L ${at(end, r0)} A ${r0} ${r0} 0 ${large} 0 ${at(a0, r0)} Z`
  );
}

// One wedge per partition, coloured by its primary; around them a band
// coloured by the primary's zone, one arc per run of partitions in a zone.
function drawRing(ring, members, colours) {
  const key = JSON.stringify([ring.epoch, ring.owners.length, [...colours.member]]);
  if (key === drawnRing) return;
  drawnRing = key;
  const zoneOf = new Map(members.map((m) => [m.id, m.zone]));
  const step = (2 * Math.PI) / ring.owners.length;
  const picture = byId("ring");
  picture.replaceChildren();
  ring.owners.forEach((owners, p) => {
    const colour = colours.member.get(owners[0]) ?? "#999";
    const wedge = svg("path", {
      class: "partition",
      d: sector(p * step, (p + 1) * step, 55, 90),
      fill: colour,
      stroke: colour,
      "data-partition": p,
      "data-owner": owners[0],
    });
    wedge.appendChild(svg("title")).textContent = `partition ${p}: ${owners.join(", ")}`;
    picture.appendChild(wedge);
  });
  let start = 0;
  ring.owners.forEach((owners, p) => {
    const zone = zoneOf.get(owners[0]);
    const next = ring.owners[p + 1];
    if (next !== undefined && zoneOf.get(next[0]) === zone) return;
    const band = svg("path", {
      class: "zone-band",
      d: sector(start * step, (p + 1) * step, 93, 100),
      fill: colours.zone.get(zone) ?? "#999",
      "data-zone": zone,
    });
    band.appendChild(svg("title")).textContent = `zone ${zone}`;
    picture.appendChild(band);
    start = p + 1;
  });
  picture.appendChild(svg("text", { class: "centre", y: -2 })).textContent = `epoch ${ring.epoch}`;
  picture.appendChild(svg("text", { class: "centre small", y: 10 })).textContent =
    `${ring.owners.length} partitions × ${ring.replication}`;
}

// The members grouped by zone, each with its colour on the ring.
function fillMembers(status, colours) {
  const primaries = new Map();
  for (const owners of status.ring.owners) primaries.set(owners[0], (primaries.get(owners[0]) ?? 0) + 1);
  const rows = [];
  for (const zone of colours.zones) {
    const inZone = status.members.filter((m) => m.zone === zone).sort((a, b) => a.id.localeCompare(b.id));
    const head = html("tr", { class: "zone", "data-zone": zone });
    const cell = head.appendChild(html("th", { colspan: 7 }));
    cell.append(swatch(colours.zone.get(zone)), ` zone ${zone} · ${inZone.length} member(s)`);
    rows.push(head);
    for (const m of inZone) rows.push(memberRow(m, status.node_id, colours, primaries.get(m.id) ?? 0));
  }
  byId("members").tBodies[0].replaceChildren(...rows);
}

function memberRow(m, me, colours, primary) {
  const row = html("tr", { class: m.id === me ? "member me" : "member", "data-member": m.id, "data-zone": m.zone });
  row.appendChild(html("td")).appendChild(swatch(colours.member.get(m.id), m.id));
  row.appendChild(html("td", { class: "id" }, m.id === me ? `${m.id} (this node)` : m.id));
  row.appendChild(html("td", { class: `state-${m.state}` }, m.state));
  row.appendChild(html("td", {}, m.id === me ? "—" : age(m.last_heard_ms)));
  row.appendChild(html("td", { class: "num" }, String(m.partitions)));
  row.appendChild(html("td", { class: "num" }, String(primary)));
  row.appendChild(html("td", {}, m.address));
  return row;
}

function swatch(colour, member) {
  const box = svg("svg", { class: "swatch", viewBox: "0 0 10 10" });
  const rect = box.appendChild(svg("rect", { width: 10, height: 10, fill: colour ?? "#999" }));
  if (member !== undefined) rect.setAttribute("data-member", member);
  return box;
}

function age(ms) {
  if (ms === null || ms === undefined) return "never";
  if (ms < 1000) return `${ms} ms ago`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s ago`;
  return `${Math.round(ms / 60000)} min ago`;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function fillWork(status) {
  const { pending, done } = status.transfers;
  const progress = byId("transfer-progress");
  progress.value = pending + done === 0 ? 1 : done / (pending + done);
  byId("transfers").textContent =
    pending === 0
      ? `None in progress (${done} partition(s) received for ring epoch ${status.ring.epoch}).`
      : `${pending} partition(s) still to receive, ${done} received, for ring epoch ${status.ring.epoch}.`;
  const hints = status.hints;
  byId("hints").textContent =
    `${hints.pending} hint(s) held here for other members · ${hints.delivered} delivered · ` +
    `${hints.failed} failed delivery round(s)`;
  const ae = status.anti_entropy;
  byId("repairs").textContent =
    `Since this node started: ${ae.keys_repaired} key(s) repaired in ${ae.exchanges} exchange(s) · ` +
    `${ae.partitions_differing} of ${ae.partitions_compared} partitions compared differed · ` +
    `${bytes(ae.bytes_sent)} sent, ${bytes(ae.bytes_received)} received`;
  byId("repairs-recent").textContent = recent(ae, hints);
  const storage = status.storage;
  byId("storage").textContent = storage.writable
    ? `Writable · ${storage.refused_writes} write(s) refused since start`
    : `Refusing writes: ${JSON.stringify(storage.fault)} · ${storage.refused_writes} refused`;
}

// How much the repair counters grew over the last RECENT_MS (or since the
// page opened, if that is shorter).
function recent(ae, hints) {
  const now = Date.now();
  const last = samples[samples.length - 1];
  if (last !== undefined && (ae.keys_repaired < last.keys || hints.delivered < last.delivered)) {
    samples.length = 0; // the node restarted: its counters began again
  }
  samples.push({ at: now, keys: ae.keys_repaired, exchanges: ae.exchanges, delivered: hints.delivered });
  while (samples.length > 2 && samples[1].at <= now - RECENT_MS) samples.shift();
  const first = samples[0];
  const seconds = Math.round((now - first.at) / 1000);
  const span = now - first.at >= RECENT_MS ? "In the last minute" : `In the last ${seconds} s`;
  return (
    `${span}: ${ae.keys_repaired - first.keys} key(s) repaired in ` +
    `${ae.exchanges - first.exchanges} exchange(s), ${hints.delivered - first.delivered} hint(s) delivered.`
  );
}

byId("token-form").addEventListener("submit", useToken);
refresh();
