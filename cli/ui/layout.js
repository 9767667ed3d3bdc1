// The layout of the pipeline page (app.js): a layered drawing of the DAG, left to right.
// Each stage goes in the column of its longest path from a source, so that every edge
// points right; an edge that spans several columns passes through virtual nodes, one per
// column it crosses; the order within a column is the mean position of each node's
// neighbours in the column before or after it (the barycentre heuristic), a few sweeps
// each way, which removes most crossings. Pure functions of /api/graph: no DOM here.

export const BOX_W = 200, BOX_H = 84;
const GAP_X = 160, GAP_Y = 36, VIRTUAL_H = 40, PAD = 24;

// The columns (rows[l]: the nodes of column l, virtual ones included, each with its
// neighbours up and down) and, for each edge, its chain of nodes.
function layers(graph) {
  const names = graph.stages.map((s) => s.name);
  const preds = new Map(names.map((n) => [n, []]));
  const succs = new Map(names.map((n) => [n, []]));
  const edges = graph.edges.filter((e) => preds.has(e.from) && preds.has(e.to));
  for (const e of edges) { preds.get(e.to).push(e.from); succs.get(e.from).push(e.to); }
  const layer = new Map(), indeg = new Map(names.map((n) => [n, preds.get(n).length]));
  const queue = names.filter((n) => indeg.get(n) === 0);
  for (const n of queue) layer.set(n, 0);
  while (queue.length) {
    const n = queue.shift();
    for (const m of succs.get(n)) {
      layer.set(m, Math.max(layer.get(m) || 0, layer.get(n) + 1));
      indeg.set(m, indeg.get(m) - 1);
      if (indeg.get(m) === 0) queue.push(m);
    }
  }
  for (const n of names) if (!layer.has(n)) layer.set(n, 0); // a cycle: cannot happen
  const count = Math.max(0, ...layer.values()) + 1;
  const rows = Array.from({length: count}, () => []);
  for (const n of names) rows[layer.get(n)].push({id: n, up: [], down: []});
  const byId = new Map(rows.flat().map((v) => [v.id, v]));
  const chains = edges.map((e, i) => {
    const chain = [byId.get(e.from)];
    for (let l = layer.get(e.from) + 1; l < layer.get(e.to); l++) {
      const v = {id: `\u0000${i}.${l}`, virtual: true, up: [], down: []};
      rows[l].push(v);
      chain.push(v);
    }
    chain.push(byId.get(e.to));
    for (let k = 1; k < chain.length; k++) {
      chain[k].up.push(chain[k - 1]);
      chain[k - 1].down.push(chain[k]);
    }
    return {edge: e, chain};
  });
  return {rows, chains};
}

// Orders each layer by the mean position of its neighbours in the layer before (sweeping
// right) or after (sweeping left): a few sweeps remove most crossings.
function order(rows) {
  const pos = new Map();
  const index = () => rows.forEach((r) => r.forEach((v, i) => pos.set(v, i)));
  index();
  for (let sweep = 0; sweep < 8; sweep++) {
    const down = sweep % 2 === 0;
    const seq = down ? rows.slice(1) : rows.slice(0, -1).reverse();
    for (const row of seq) {
      const bary = new Map(row.map((v) => {
        const ns = down ? v.up : v.down;
        return [v, ns.length ? ns.reduce((a, n) => a + pos.get(n), 0) / ns.length : pos.get(v)];
      }));
      row.sort((a, b) => bary.get(a) - bary.get(b) || pos.get(a) - pos.get(b));
      row.forEach((v, i) => pos.set(v, i));
    }
  }
}

// Positions: {nodes: Map name -> {x, y, cy, column} (a box's corner, middle height and
// column), edges: [{edge, points: [[x, y]...]}] (from the right side of one box to the
// left side of the next), width, height}.
export function layout(graph) {
  const {rows, chains} = layers(graph);
  order(rows);
  const height = (r) => r.reduce((h, v) => h + (v.virtual ? VIRTUAL_H : BOX_H + GAP_Y), 0);
  const tallest = Math.max(...rows.map(height));
  const at = new Map();
  rows.forEach((row, l) => {
    let y = PAD + (tallest - height(row)) / 2;
    for (const v of row) {
      const h = v.virtual ? VIRTUAL_H : BOX_H;
      at.set(v, {x: PAD + l * (BOX_W + GAP_X), y, cy: y + h / 2, column: l});
      y += v.virtual ? VIRTUAL_H : BOX_H + GAP_Y;
    }
  });
  const nodes = new Map();
  for (const row of rows) for (const v of row) if (!v.virtual) nodes.set(v.id, at.get(v));
  const edges = chains.map(({edge, chain}) => ({
    edge,
    points: chain.map((v, k) => {
      const p = at.get(v);
      if (k === 0) return [p.x + BOX_W, p.cy];
      if (k === chain.length - 1) return [p.x, p.cy];
      return [p.x + BOX_W / 2, p.cy];
    }),
  }));
  return {nodes, edges, width: 2 * PAD + rows.length * (BOX_W + GAP_X) - GAP_X,
    height: 2 * PAD + tallest - GAP_Y};
}

// An SVG path through `points`, in curves that leave and reach each point horizontally.
export function pathOf(points) {
  let d = `M${points[0][0]},${points[0][1]}`;
  for (let k = 1; k < points.length; k++) {
    const [x0, y0] = points[k - 1], [x1, y1] = points[k], dx = (x1 - x0) / 2;
    d += `C${x0 + dx},${y0} ${x1 - dx},${y1} ${x1},${y1}`;
  }
  return d;
}
