import { useId, useState } from "react";
import { checkSchema, parseJson } from "../lib/json";

interface Props {
  label: string;
  submitLabel: string;
  initial?: string;
  schema?: Record<string, unknown> | null;
  onSubmit: (value: unknown) => Promise<unknown>;
  testId?: string;
}

/** A JSON textarea checked before it is sent (syntax, then the schema's simple rules). */
export function JsonForm({ label, submitLabel, initial = "{}", schema, onSubmit, testId }: Props) {
  const id = useId();
  const [text, setText] = useState(initial);
  const [problems, setProblems] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<string | null>(null);

  async function submit(event: React.FormEvent) {
    event.preventDefault();
    setDone(null);
    const parsed = parseJson(text);
    if (!parsed.ok) {
      setProblems([parsed.error]);
      return;
    }
    const found = checkSchema(parsed.value, schema);
    if (found.length) {
      setProblems(found);
      return;
    }
    setProblems([]);
    setBusy(true);
    try {
      await onSubmit(parsed.value);
      setDone("sent");
    } catch (exc) {
      setProblems([(exc as Error).message]);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="json-form" onSubmit={submit} data-testid={testId}>
      <label htmlFor={id}>{label}</label>
      {schema && (
        <details>
          <summary>Schema</summary>
          <pre className="json">{JSON.stringify(schema, null, 2)}</pre>
        </details>
      )}
      <textarea
        id={id}
        value={text}
        onChange={(e) => setText(e.target.value)}
        rows={Math.min(12, Math.max(3, text.split("\n").length + 1))}
        spellCheck={false}
        aria-invalid={problems.length > 0}
        aria-describedby={problems.length ? `${id}-problems` : undefined}
      />
      {problems.length > 0 && (
        <ul className="problems" id={`${id}-problems`} role="alert">
          {problems.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      )}
      <div className="row">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Sending…" : submitLabel}
        </button>
        {done && <span className="muted" role="status">{done}</span>}
      </div>
    </form>
  );
}
