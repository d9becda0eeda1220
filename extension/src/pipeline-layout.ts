/**
 * The layout of the Pipeline panel's DAG (pure): layers top to bottom (a task
 * sits one row below its deepest upstream task), each row ordered by the mean
 * position of its tasks' upstream tasks; an edge that skips rows runs through the
 * gaps between rows and down a lane on the right, so it never crosses a task box.
 */
import { ITaskView } from './pipeline-model';

export interface INodeBox {
  name: string;
  layer: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface IEdgePath {
  from: string;
  to: string;
  /** SVG path data. */
  d: string;
}

export interface ILayout {
  nodes: INodeBox[];
  edges: IEdgePath[];
  width: number;
  height: number;
}

export const LAYOUT = {
  pad: 10,
  nodeHeight: 46,
  rowGap: 26,
  colGap: 10,
  maxNodeWidth: 230,
  minNodeWidth: 90,
  lane: 10
};

/** Row of each task (tasks in topological order, as the server sends them). */
export function layers(tasks: Pick<ITaskView, 'name' | 'upstream'>[]): Map<string, number> {
  const layer = new Map<string, number>();
  for (const t of tasks) {
    const ups = t.upstream.filter(u => layer.has(u)).map(u => layer.get(u) as number);
    layer.set(t.name, ups.length ? Math.max(...ups) + 1 : 0);
  }
  return layer;
}

/** Tasks per row, ordered to keep edges short (barycentre of the row above). */
export function rows(tasks: Pick<ITaskView, 'name' | 'upstream'>[]): string[][] {
  const layer = layers(tasks);
  const out: string[][] = [];
  for (const t of tasks) {
    const l = layer.get(t.name) as number;
    (out[l] = out[l] ?? []).push(t.name);
  }
  const position = new Map<string, number>();
  const upstream = new Map(tasks.map(t => [t.name, t.upstream]));
  out.forEach((row, r) => {
    if (r > 0) {
      const key = (name: string) => {
        const ups = (upstream.get(name) ?? []).filter(u => position.has(u));
        return ups.length
          ? ups.reduce((s, u) => s + (position.get(u) as number), 0) / ups.length
          : Number.MAX_SAFE_INTEGER;
      };
      const order = new Map(row.map((n, i) => [n, i]));
      row.sort((a, b) => key(a) - key(b) || (order.get(a) as number) - (order.get(b) as number));
    }
    row.forEach((name, i) => position.set(name, (i + 0.5) / row.length));
  });
  return out;
}

export function layout(
  tasks: Pick<ITaskView, 'name' | 'upstream'>[],
  width: number
): ILayout {
  const L = LAYOUT;
  const layer = layers(tasks);
  const grid = rows(tasks);
  const skipping: [string, string][] = [];
  for (const t of tasks) {
    for (const u of t.upstream) {
      if (layer.has(u) && (layer.get(t.name) as number) - (layer.get(u) as number) > 1) {
        skipping.push([u, t.name]);
      }
    }
  }
  const lanes = skipping.length ? L.lane * (skipping.length + 1) : 0;
  const widest = Math.max(1, ...grid.map(r => r.length));
  const room = Math.max(width, widest * L.minNodeWidth + (widest - 1) * L.colGap + 2 * L.pad + lanes);
  const usable = room - 2 * L.pad - lanes;
  const nodes: INodeBox[] = [];
  const box = new Map<string, INodeBox>();
  grid.forEach((row, r) => {
    const w = Math.min(L.maxNodeWidth, (usable - (row.length - 1) * L.colGap) / row.length);
    const total = row.length * w + (row.length - 1) * L.colGap;
    const left = L.pad + (usable - total) / 2;
    row.forEach((name, i) => {
      const node = {
        name,
        layer: r,
        x: left + i * (w + L.colGap),
        y: L.pad + r * (L.nodeHeight + L.rowGap),
        width: w,
        height: L.nodeHeight
      };
      nodes.push(node);
      box.set(name, node);
    });
  });
  const edges: IEdgePath[] = [];
  const right = Math.max(0, ...nodes.map(n => n.x + n.width));
  let lane = 0;
  for (const t of tasks) {
    for (const u of t.upstream) {
      const a = box.get(u);
      const b = box.get(t.name);
      if (!a || !b) {
        continue;
      }
      if (b.layer - a.layer > 1) {
        // down into the gap below its row, right to a lane, down, back left in the gap above
        // the target's row: only gaps, never a task box
        lane += 1;
        const x = right + lane * L.lane;
        const shift = (lane % 3) * 3;
        const x1 = a.x + a.width - 14 - shift; // off-centre: apart from the direct edges
        const gap1 = a.y + a.height + L.rowGap / 2 - shift;
        const x2 = b.x + b.width - 14 - shift;
        const gap2 = b.y - L.rowGap / 2 + shift;
        edges.push({
          from: u,
          to: t.name,
          d: `M ${x1} ${a.y + a.height} V ${gap1} H ${x} V ${gap2} H ${x2} V ${b.y}`
        });
      } else {
        const x1 = a.x + a.width / 2;
        const y1 = a.y + a.height;
        const x2 = b.x + b.width / 2;
        const y2 = b.y;
        const my = (y1 + y2) / 2;
        edges.push({ from: u, to: t.name, d: `M ${x1} ${y1} C ${x1} ${my} ${x2} ${my} ${x2} ${y2}` });
      }
    }
  }
  const height = grid.length
    ? L.pad * 2 + grid.length * L.nodeHeight + (grid.length - 1) * L.rowGap
    : 0;
  return { nodes, edges, width: room, height };
}
