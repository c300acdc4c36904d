// JSON text from a form, checked before it is sent: syntax, then the simple parts of a
// JSON Schema (type, required, property types). The server checks the full schema.

export type Parsed = { ok: true; value: unknown } | { ok: false; error: string };

export function parseJson(text: string): Parsed {
  if (!text.trim()) return { ok: true, value: null };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (exc) {
    return { ok: false, error: `not valid JSON: ${(exc as Error).message}` };
  }
}

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function matchesType(value: unknown, expected: unknown): boolean {
  const types = Array.isArray(expected) ? expected : [expected];
  const actual = typeOf(value);
  return types.some((t) => t === actual || (t === "number" && actual === "integer"));
}

/** Problems of ``value`` against the simple parts of ``schema`` (empty: none found). */
export function checkSchema(value: unknown, schema: Record<string, unknown> | null | undefined): string[] {
  if (!schema) return [];
  const problems: string[] = [];
  if (schema.type !== undefined && !matchesType(value, schema.type)) {
    problems.push(`expected ${JSON.stringify(schema.type)}, got ${typeOf(value)}`);
    return problems;
  }
  if (typeOf(value) !== "object") return problems;
  const record = value as Record<string, unknown>;
  for (const name of (schema.required as string[] | undefined) ?? []) {
    if (!(name in record)) problems.push(`missing required property "${name}"`);
  }
  const properties = (schema.properties as Record<string, Record<string, unknown>> | undefined) ?? {};
  for (const [name, sub] of Object.entries(properties)) {
    if (name in record && sub && sub.type !== undefined && !matchesType(record[name], sub.type)) {
      problems.push(`"${name}": expected ${JSON.stringify(sub.type)}, got ${typeOf(record[name])}`);
    }
  }
  return problems;
}

/** A starting value for a form from a schema: an object with its required properties. */
export function exampleFor(schema: Record<string, unknown> | null | undefined): string {
  if (!schema || schema.type !== "object") return "{}";
  const properties = (schema.properties as Record<string, Record<string, unknown>> | undefined) ?? {};
  const sample: Record<string, unknown> = {};
  for (const name of (schema.required as string[] | undefined) ?? []) {
    const t = properties[name]?.type;
    sample[name] = t === "number" || t === "integer" ? 0 : t === "boolean" ? false : t === "array" ? [] : t === "object" ? {} : "";
  }
  return JSON.stringify(sample, null, 2);
}
