import type { ReactNode } from "react";
import { statusLabel, statusTone } from "../lib/status";

export function StatusBadge({ status }: { status: string | null | undefined }) {
  return (
    <span className={`badge tone-${statusTone(status)}`} data-status={status ?? "unknown"}>
      {statusLabel(status)}
    </span>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="state loading" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

export function ErrorBox({ error, retry }: { error: string; retry?: () => void }) {
  return (
    <div className="state error" role="alert">
      <p>{error}</p>
      {retry && (
        <button type="button" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="state empty">{children}</div>;
}

export function Json({ value, label }: { value: unknown; label: string }) {
  if (value === undefined) return <p className="muted">none</p>;
  return (
    <pre className="json" aria-label={label} tabIndex={0}>
      {JSON.stringify(value, null, 2)}
    </pre>
  );
}
