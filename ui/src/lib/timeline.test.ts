import { describe, expect, it } from "vitest";
import { formatDuration, timeline } from "./timeline";
import { checkSchema, exampleFor, parseJson } from "./json";

describe("timeline", () => {
  it("places bars relative to the span, running ones up to now", () => {
    const chart = timeline(
      [
        { id: "a", status: "succeeded", attempt: 1, started_at: 100, finished_at: 102 },
        { id: "b", status: "running", attempt: 2, started_at: 102, finished_at: null },
        { id: "c", status: "pending", attempt: 0 },
      ],
      104,
    );
    expect(chart).not.toBeNull();
    expect(chart!.bars.map((b) => [b.id, b.left, b.width, b.running])).toEqual([
      ["a", 0, 50, false],
      ["b", 50, 50, true],
    ]);
  });

  it("is null before anything started", () => {
    expect(timeline([{ id: "a", status: "pending", attempt: 0 }], 1)).toBeNull();
  });

  it("formats durations", () => {
    expect(formatDuration(0.25)).toBe("250 ms");
    expect(formatDuration(3.5)).toBe("3.50 s");
    expect(formatDuration(125)).toBe("2 min 5 s");
    expect(formatDuration(null)).toBe("–");
  });
});

describe("json forms", () => {
  it("parses, and reports syntax errors", () => {
    expect(parseJson('{"a": 1}')).toEqual({ ok: true, value: { a: 1 } });
    expect(parseJson("")).toEqual({ ok: true, value: null });
    expect(parseJson("{").ok).toBe(false);
  });

  it("checks the simple parts of a schema", () => {
    const schema = { type: "object", required: ["ok"], properties: { ok: { type: "boolean" }, n: { type: "number" } } };
    expect(checkSchema({ ok: true, n: 2 }, schema)).toEqual([]);
    expect(checkSchema({}, schema)).toEqual(['missing required property "ok"']);
    expect(checkSchema({ ok: 1 }, schema)).toEqual(['"ok": expected "boolean", got integer']);
    expect(checkSchema([1], schema)).toEqual(['expected "object", got array']);
    expect(checkSchema("x", null)).toEqual([]);
    expect(exampleFor(schema)).toBe('{\n  "ok": false\n}');
  });
});
