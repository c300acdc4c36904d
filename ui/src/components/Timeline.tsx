import { formatDuration, timeline } from "../lib/timeline";
import type { NodeView } from "../lib/types";
import { statusTone } from "../lib/status";

interface Props {
  nodes: NodeView[];
  now: number;
  order: string[];
  onSelect: (id: string) => void;
}

export function Timeline({ nodes, now, order, onSelect }: Props) {
  const chart = timeline(nodes, now, order);
  if (!chart) return <p className="muted">No node has started yet.</p>;
  return (
    <div className="timeline" data-testid="timeline">
      <div className="timeline-scale" aria-hidden="true">
        <span>0</span>
        <span>{formatDuration(chart.end - chart.start)}</span>
      </div>
      <ul>
        {chart.bars.map((bar) => (
          <li key={bar.id}>
            <button type="button" className="timeline-label" onClick={() => onSelect(bar.id)}>
              {bar.id}
            </button>
            <div className="timeline-track">
              <div
                className={`timeline-bar tone-${statusTone(bar.status)}${bar.running ? " running" : ""}`}
                style={{ left: `${bar.left}%`, width: `${bar.width}%` }}
                title={`${bar.id}: ${bar.status}, attempt ${bar.attempt}, ${formatDuration(bar.end - bar.start)}`}
              />
            </div>
            <span className="timeline-duration">
              {formatDuration(bar.end - bar.start)}
              {bar.attempt > 1 ? ` · ${bar.attempt} attempts` : ""}
            </span>
          </li>
        ))}
      </ul>
    </div>
  );
}
