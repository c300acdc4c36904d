// The Gantt chart of node attempts: one bar per node from started_at to finished_at
// (or now while it runs), as percentages of the execution's span.
import type { NodeView } from "./types";

export interface Bar {
  id: string;
  status: string;
  attempt: number;
  start: number;
  end: number;
  running: boolean;
  left: number;
  width: number;
}

export interface Timeline {
  start: number;
  end: number;
  bars: Bar[];
}

export function timeline(nodes: NodeView[], now: number, order: string[] = []): Timeline | null {
  const started = nodes.filter((n) => n.started_at != null);
  if (!started.length) return null;
  const start = Math.min(...started.map((n) => n.started_at as number));
  const ends = started.map((n) => n.finished_at ?? Math.max(now, n.started_at as number));
  const end = Math.max(start + 0.001, ...ends);
  const span = end - start;
  const rank = (id: string) => {
    const i = order.indexOf(id);
    return i === -1 ? order.length : i;
  };
  const bars = started
    .map((n) => {
      const s = n.started_at as number;
      const e = n.finished_at ?? Math.max(now, s);
      return {
        id: n.id,
        status: n.status,
        attempt: n.attempt,
        start: s,
        end: e,
        running: n.finished_at == null,
        left: ((s - start) / span) * 100,
        width: Math.max(((e - s) / span) * 100, 0.5),
      };
    })
    .sort((a, b) => a.start - b.start || rank(a.id) - rank(b.id));
  return { start, end, bars };
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds == null || Number.isNaN(seconds)) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function formatTime(seconds: number | null | undefined): string {
  if (seconds == null) return "–";
  return new Date(seconds * 1000).toLocaleString();
}
