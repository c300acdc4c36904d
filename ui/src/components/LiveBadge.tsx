import type { Connection } from "../lib/hooks";

const TEXT: Record<Connection, string> = {
  connecting: "connecting…",
  live: "live",
  offline: "offline: polling",
};

export function LiveBadge({ state }: { state: Connection }) {
  return (
    <span className={`live live-${state}`} role="status" aria-live="polite" data-testid="live">
      <span className="dot" aria-hidden="true" />
      {TEXT[state]}
    </span>
  );
}
