// The pipeline page: lays out /api/graph left to right in SVG, refreshes the numbers from
// /api/stats every second, and shows a stage's options and a live sample of its output
// (/api/tap) in a side panel. Vanilla JS, no build step; it uses those three endpoints
// and nothing else. Text from the server goes into the page as text (textContent,
// attributes), never as markup. The layout is layout.js's.
import {BOX_H, BOX_W, layout, pathOf} from './layout.js';

const SVG = 'http://www.w3.org/2000/svg';
const REFRESH_MS = 1000, TAP_LIMIT = 20;
const KINDS = ['source', 'transform', 'filter', 'sink'];

const state = {
  graph: null,      // /api/graph
  layout: null,     // layout.js's positions of the stages and the edges
  prev: null,       // the previous /api/stats sample, for rates
  last: null,       // the latest one
  selected: null,   // the stage shown in the panel
  tap: null,        // the AbortController of the running tap
  token: sessionStorage.getItem('sluice-token'),
  timer: 0,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function html(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

// ---- numbers ---------------------------------------------------------------------------

function human(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(a >= 1e10 ? 1 : 2) + 'G';
  if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 1 : 2) + 'M';
  if (a >= 1e3) return (n / 1e3).toFixed(a >= 1e4 ? 1 : 2) + 'k';
  return Number.isInteger(n) || a >= 100 ? String(Math.round(n)) : n.toFixed(1);
}

function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) n /= 1024, i++;
  return (i === 0 || n >= 100 ? Math.round(n) : n.toFixed(1)) + ' ' + units[i];
}

function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24;
  const m = Math.floor(s / 60) % 60, sec = Math.floor(s % 60);
  return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + (d || h || m ? m + 'm ' : '') + sec + 's';
}

// ---- the server ------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function request(path, signal) {
  const headers = state.token ? {Authorization: 'Bearer ' + state.token} : {};
  const res = await fetch(path, {headers, signal, cache: 'no-store'});
  if (!res.ok) {
    let msg = res.status + ' ' + res.statusText;
    try { msg = (await res.json()).error || msg; } catch (e) { /* not JSON */ }
    throw new HttpError(res.status, msg);
  }
  return res;
}

const getJSON = async (path) => (await request(path)).json();

function setStatus(kind, text) {
  const s = $('status');
  s.dataset.state = kind;
  s.textContent = text;
}

function failed(err, what) {
  if (err.status === 401) {
    $('auth').hidden = false;
    setStatus('auth', 'This server asks for a token: enter it above.');
  } else {
    setStatus('error', `Cannot read ${what}: ${err.message}. Retrying…`);
  }
}

// ---- drawing ---------------------------------------------------------------------------

// The outline of a stage by its kind: a source points right, a sink has a notch on its
// left, a filter is a hexagon, a transform a rounded box.
function shape(kind, x, y) {
  const w = BOX_W, h = BOX_H, t = 14;
  switch (kind) {
    case 'source':
      return el('path', {d: `M${x},${y}h${w - t}l${t},${h / 2}l${-t},${h / 2}h${t - w}z`});
    case 'sink': return el('path', {d: `M${x},${y}h${w}v${h}h${-w}l${t},${-h / 2}z`});
    case 'filter':
      return el('path', {d: `M${x + t},${y}h${w - 2 * t}l${t},${h / 2}l${-t},${h / 2}` +
        `h${2 * t - w}l${-t},${-h / 2}z`});
    default: return el('rect', {x, y, width: w, height: h, rx: 10});
  }
}

function edgeKey(e) { return `${e.from}\u0000${e.port || ''}\u0000${e.to}`; }

function drawEdge(svg, {edge, points}) {
  const g = el('g', {class: 'edge fill-low', 'data-from': edge.from, 'data-port': edge.port || '',
    'data-to': edge.to, 'data-capacity-batches': edge.capacity_batches,
    'data-capacity-bytes': edge.capacity_bytes});
  g.append(el('title', {}, `${edge.from}${edge.port ? '.' + edge.port : ''} → ${edge.to}`));
  g.append(el('path', {class: 'wire', d: pathOf(points), 'marker-end': 'url(#arrow)'}));
  // The label: on the first virtual node of a long edge (a place of its own in its
  // column), else halfway between the two boxes.
  const [p0, p1] = points.length > 2 ? [points[1], points[1]] : points;
  const lx = (p0[0] + p1[0]) / 2, ly = (p0[1] + p1[1]) / 2;
  const label = el('g', {class: 'edge-label', transform: `translate(${lx},${ly})`});
  const top = edge.port ? -21 : -9;
  label.append(el('rect', {x: -66, y: top, width: 132, height: 9 - top, rx: 4}));
  if (edge.port) label.append(el('text', {class: 'port', y: -8}, edge.port));
  label.append(el('text', {class: 'fill', y: 4}, '–'));
  g.append(label);
  svg.append(g);
  return g;
}

function drawStage(svg, stage, at) {
  const {x, y} = at;
  const kind = KINDS.includes(stage.kind) ? stage.kind : 'transform';
  const g = el('g', {class: `stage ${kind}`, tabindex: 0, role: 'button',
    'data-stage': stage.name, 'data-kind': stage.kind, 'data-type': stage.type,
    'data-column': at.column});
  g.append(el('title', {}, `${stage.name}: ${stage.kind} ${stage.type}`));
  g.append(shape(kind, x, y));
  const tx = x + (kind === 'sink' || kind === 'filter' ? 22 : 12);
  g.append(el('text', {class: 'name', x: tx, y: y + 20}, stage.name));
  g.append(el('text', {class: 'kind', x: tx, y: y + 37}, `${stage.kind} · ${stage.type}`));
  g.append(el('text', {class: 'rates', x: tx, y: y + 56}, 'in – /s · out – /s'));
  g.append(el('text', {class: 'problems', x: tx, y: y + 73}, 'errors – · dropped –'));
  const open = () => openPanel(stage.name);
  g.addEventListener('click', open);
  g.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); open(); }
  });
  svg.append(g);
  return g;
}

function draw(graph) {
  const svg = $('graph'), lay = layout(graph);
  state.layout = lay;
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${lay.width} ${lay.height}`);
  svg.setAttribute('width', lay.width);
  svg.setAttribute('height', lay.height);
  const defs = el('defs');
  const marker = el('marker', {id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5,
    markerWidth: 10, markerHeight: 10, markerUnits: 'userSpaceOnUse',
    orient: 'auto-start-reverse'});
  marker.append(el('path', {d: 'M0,0L10,5L0,10z', class: 'arrowhead'}));
  defs.append(marker);
  svg.append(defs);
  state.edgeEls = new Map(lay.edges.map((e) => [edgeKey(e.edge), drawEdge(svg, e)]));
  state.stageEls = new Map(graph.stages.map((s) =>
    [s.name, drawStage(svg, s, lay.nodes.get(s.name))]));
  $('sum-stages').textContent = `${graph.stages.length} (${graph.edges.length} edges)`;
}

// ---- live numbers ----------------------------------------------------------------------

function rate(name, field) {
  const a = state.prev, b = state.last;
  if (!a || !b || !a.stages[name] || b.uptime_s <= a.uptime_s) return null;
  return (b.stages[name][field] - a.stages[name][field]) / (b.uptime_s - a.uptime_s);
}

// A queue's fill, the fuller of batches and bytes: low under 1/2, high under 9/10.
function fillLevel(batches, capB, qbytes, capBytes) {
  const r = Math.max(capB ? batches / capB : 0, capBytes ? qbytes / capBytes : 0);
  return {ratio: r, level: r >= 0.9 ? 'full' : r >= 0.5 ? 'high' : 'low'};
}

function updateStage(g, name, st) {
  const rin = rate(name, 'events_in'), rout = rate(name, 'events_out');
  for (const f of ['events_in', 'events_out', 'errors', 'dropped', 'queue_batches', 'queue_bytes'])
    g.setAttribute('data-' + f.replace('_', '-'), st[f]);
  g.setAttribute('data-rate-in', rin === null ? '' : rin.toFixed(3));
  g.setAttribute('data-rate-out', rout === null ? '' : rout.toFixed(3));
  g.setAttribute('data-finished', st.finished ? 'true' : 'false');
  g.classList.toggle('finished', !!st.finished);
  g.classList.toggle('failing', st.errors > 0);
  g.querySelector('.rates').textContent = `in ${human(rin)}/s · out ${human(rout)}/s`;
  g.querySelector('.problems').textContent =
    `errors ${human(st.errors)} · dropped ${human(st.dropped)}${st.finished ? ' · done' : ''}`;
  const title = g.querySelector('title'), s = state.graph.stages.find((x) => x.name === name);
  title.textContent = `${name}: ${s.kind} ${s.type}; ${st.events_in} events in, ` +
    `${st.events_out} out, ${st.errors} errors, ${st.dropped} dropped` +
    (st.finished ? '; finished' : '');
  g.setAttribute('aria-label', title.textContent);
}

function updateEdge(g, edge, q) {
  const {ratio, level} = fillLevel(q.queue_batches, edge.capacity_batches, q.queue_bytes,
    edge.capacity_bytes);
  g.setAttribute('class', `edge fill-${level}`);
  g.setAttribute('data-queue-batches', q.queue_batches);
  g.setAttribute('data-queue-bytes', q.queue_bytes);
  g.setAttribute('data-fill', level);
  g.querySelector('.fill').textContent =
    `${Math.round(ratio * 100)}% · ${q.queue_batches}/${edge.capacity_batches} · ` +
    bytes(q.queue_bytes);
  g.querySelector('title').textContent = `${edge.from}${edge.port ? '.' + edge.port : ''} → ` +
    `${edge.to}: ${q.queue_batches} of ${edge.capacity_batches} batches, ` +
    `${bytes(q.queue_bytes)} of ${bytes(edge.capacity_bytes)} queued (${level})`;
}

function update(stats) {
  state.prev = state.last && state.last.uptime_s < stats.uptime_s ? state.last : null;
  state.last = stats;
  $('graph').setAttribute('data-uptime', stats.uptime_s);
  $('graph').setAttribute('data-state', stats.state);
  $('sum-state').textContent = stats.state;
  $('sum-uptime').textContent = duration(stats.uptime_s);
  $('sum-rss').textContent = bytes(stats.rss_bytes);
  for (const [name, g] of state.stageEls)
    if (stats.stages[name]) updateStage(g, name, stats.stages[name]);
  const queues = new Map((stats.edges || []).map((q) => [edgeKey(q), q]));
  for (const {edge} of state.layout.edges) {
    // Until edges report their own queue, the consumer's input queue stands for it.
    const q = queues.get(edgeKey(edge)) || stats.stages[edge.to];
    if (q) updateEdge(state.edgeEls.get(edgeKey(edge)), edge, q);
  }
  if (state.selected) updateCounts(state.selected);
}

async function poll() {
  clearTimeout(state.timer);
  try {
    if (!state.graph) {
      state.graph = await getJSON('/api/graph');
      draw(state.graph);
      openFromHash();
    }
    const stats = await getJSON('/api/stats');
    const known = state.graph.stages.map((s) => s.name);
    const restarted = state.last && stats.uptime_s < state.last.uptime_s;
    if (restarted || Object.keys(stats.stages).some((n) => !known.includes(n))) {
      state.graph = null, state.last = null; // another run on this address: start again
      return poll();
    }
    update(stats);
    setStatus(stats.state === 'running' ? 'ok' : stats.state,
      `${stats.state === 'running' ? 'Live' : 'Stopping'}: updated every second` +
      ` (uptime ${stats.uptime_s.toFixed(1)} s)`);
  } catch (err) {
    failed(err, state.graph ? '/api/stats' : '/api/graph');
    if (err.status === 401) return; // until a token is given
  }
  state.timer = setTimeout(poll, REFRESH_MS);
}

// ---- the side panel --------------------------------------------------------------------

function updateCounts(name) {
  const st = state.last && state.last.stages[name];
  const body = $('panel-counts').tBodies[0];
  body.replaceChildren();
  if (!st) return;
  const rows = [['events in', `${st.events_in} (${human(rate(name, 'events_in'))}/s)`],
    ['events out', `${st.events_out} (${human(rate(name, 'events_out'))}/s)`],
    ['bytes in / out', `${bytes(st.bytes_in)} / ${bytes(st.bytes_out)}`],
    ['errors', st.errors], ['dropped', st.dropped], ['retries', st.retries], ['acked', st.acked],
    ['input queue', st.queue_capacity ? `${st.queue_batches}/${st.queue_capacity} batches, ` +
      `${bytes(st.queue_bytes)} of ${bytes(st.queue_max_bytes)}` : 'none (no inputs)'],
    ['busy', `${(st.busy_ns / 1e9).toFixed(3)} s`], ['finished', st.finished ? 'yes' : 'no']];
  for (const [k, v] of rows) {
    const tr = html('tr');
    tr.append(html('th', k), html('td', String(v)));
    tr.firstChild.scope = 'row';
    body.append(tr);
  }
}

function showOptions(stage) {
  const body = $('panel-options').tBodies[0];
  body.replaceChildren();
  for (const o of stage.options || []) {
    const tr = html('tr');
    tr.dataset.option = o.name;
    const set = o.value !== null && o.value !== undefined;
    const text = typeof o.value === 'string' ? o.value : JSON.stringify(o.value);
    const def = o.default === null || o.default === undefined ? '–' : String(o.default);
    tr.append(html('th', o.name), html('td', set ? text : '(default)', set ? 'set' : 'unset'),
      html('td', def), html('td', `${o.type}: ${o.doc || ''}`));
    tr.firstChild.scope = 'row';
    body.append(tr);
  }
  if (!body.rows.length) body.append(html('tr', 'no options of its own'));
}

function openPanel(name) {
  const stage = state.graph.stages.find((s) => s.name === name);
  if (!stage) return;
  state.selected = name;
  for (const [n, g] of state.stageEls) g.classList.toggle('selected', n === name);
  const p = $('panel');
  p.hidden = false;
  p.dataset.stage = name;
  $('panel-title').textContent = name;
  const ports = (stage.outputs || []).map((o) => o || 'default');
  $('panel-meta').textContent = `${stage.kind} · type ${stage.type}` +
    (ports.length > 1 ? ` · ports: ${ports.join(', ')}` : '');
  updateCounts(name);
  showOptions(stage);
  const select = $('tap-port');
  select.replaceChildren(...(stage.outputs || []).map((o) => {
    const opt = html('option', o || 'default');
    opt.value = o;
    return opt;
  }));
  history.replaceState(null, '', '#stage=' + encodeURIComponent(name));
  startTap();
}

function closePanel() {
  stopTap();
  state.selected = null;
  $('panel').hidden = true;
  for (const g of state.stageEls.values()) g.classList.remove('selected');
  history.replaceState(null, '', location.pathname);
}

function openFromHash() {
  const m = /^#stage=(.*)$/.exec(location.hash);
  if (m) openPanel(decodeURIComponent(m[1]));
}

// ---- the live sample (/api/tap) --------------------------------------------------------

function stopTap() {
  if (state.tap) state.tap.abort();
  state.tap = null;
}

function tapLine(line) {
  if (!line.trim()) return;
  let ev;
  try { ev = JSON.parse(line); } catch (e) { ev = line; }
  if (ev && ev._tap) {
    $('tap-status').textContent =
      `${ev._tap.sent} events sent, ${ev._tap.dropped} dropped (the page read too slowly)`;
    return;
  }
  const list = $('tap-events');
  list.append(html('li', typeof ev === 'string' ? ev : JSON.stringify(ev)));
  while (list.children.length > TAP_LIMIT) list.firstChild.remove();
}

async function startTap() {
  stopTap();
  const name = state.selected, port = $('tap-port').value, status = $('tap-status');
  $('tap-events').replaceChildren();
  if (!$('tap-port').options.length) {
    status.textContent = 'A sink has no output to sample.';
    return;
  }
  const ctl = new AbortController();
  state.tap = ctl;
  status.textContent = 'Waiting for events…';
  const q = `stage=${encodeURIComponent(name)}&limit=${TAP_LIMIT}` +
    (port ? `&port=${encodeURIComponent(port)}` : '');
  try {
    const res = await request('/api/tap?' + q, ctl.signal);
    const reader = res.body.getReader(), dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += dec.decode(value, {stream: true});
      const lines = buf.split('\n');
      buf = lines.pop();
      lines.forEach(tapLine);
    }
    tapLine(buf);
    if (state.tap === ctl) status.textContent += ' · sample complete';
  } catch (err) {
    if (ctl.signal.aborted) return;
    status.textContent = err.status === 403 ? `No live sample: ${err.message}.` :
      `No live sample: ${err.message}`;
  }
}

// ---- start -----------------------------------------------------------------------------

$('panel-close').addEventListener('click', closePanel);
document.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape' && state.selected) closePanel();
});
$('tap-again').addEventListener('click', startTap);
$('tap-port').addEventListener('change', startTap);
$('auth').addEventListener('submit', (ev) => {
  ev.preventDefault();
  state.token = $('auth-token').value;
  sessionStorage.setItem('sluice-token', state.token);
  $('auth').hidden = true;
  poll();
});
poll();
