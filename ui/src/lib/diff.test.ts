import { describe, expect, it } from "vitest";
import { diffLines, diffStats, hunks, sideBySide, splitLines } from "./diff";

const kinds = (before: string, after: string) =>
  diffLines(before, after).map((l) => `${l.kind === "same" ? " " : l.kind === "add" ? "+" : "-"}${l.text}`);

describe("splitLines", () => {
  it("treats a final newline as the end of the last line", () => {
    expect(splitLines("a\nb\n")).toEqual(["a", "b"]);
    expect(splitLines("a\r\nb")).toEqual(["a", "b"]);
    expect(splitLines("")).toEqual([]);
  });
});

describe("diffLines", () => {
  it("keeps identical texts", () => {
    const lines = diffLines("a\nb\n", "a\nb\n");
    expect(lines.every((l) => l.kind === "same")).toBe(true);
    expect(diffStats(lines)).toEqual({ added: 0, deleted: 0 });
  });

  it("marks a changed line as deleted then added, with line numbers", () => {
    const lines = diffLines("id: x\nnodes:\n  - id: a\n", "id: x\nnodes:\n  - id: b\n");
    expect(lines.map((l) => [l.kind, l.text, l.a, l.b])).toEqual([
      ["same", "id: x", 1, 1],
      ["same", "nodes:", 2, 2],
      ["del", "  - id: a", 3, undefined],
      ["add", "  - id: b", undefined, 3],
    ]);
  });

  it("finds insertions and deletions in the middle", () => {
    expect(kinds("a\nb\nc\nd", "a\nc\nd\ne")).toEqual([" a", "-b", " c", " d", "+e"]);
    expect(kinds("a\nc", "a\nb\nc")).toEqual([" a", "+b", " c"]);
    expect(kinds("", "x")).toEqual(["+x"]);
    expect(kinds("x", "")).toEqual(["-x"]);
  });

  it("keeps the longest common subsequence", () => {
    const lines = diffLines("a\nb\nc\na\nb\nb\na", "c\nb\na\nb\na\nc");
    expect(lines.filter((l) => l.kind === "same")).toHaveLength(4);
    expect(lines.filter((l) => l.kind !== "add").map((l) => l.text)).toEqual(["a", "b", "c", "a", "b", "b", "a"]);
    expect(lines.filter((l) => l.kind !== "del").map((l) => l.text)).toEqual(["c", "b", "a", "b", "a", "c"]);
  });
});

describe("hunks", () => {
  const before = Array.from({ length: 20 }, (_, i) => `line ${i + 1}`).join("\n");
  const after = before.replace("line 3\n", "line three\n").replace("line 18\n", "");

  it("groups changes with context and unified headers", () => {
    const result = hunks(diffLines(before, after), 2);
    expect(result.map((h) => h.header)).toEqual(["@@ -1,5 +1,5 @@", "@@ -16,5 +16,4 @@"]);
    expect(result[0].lines.map((l) => l.kind)).toEqual(["same", "same", "del", "add", "same", "same"]);
  });

  it("merges changes whose context touches", () => {
    expect(hunks(diffLines(before, after), 10)).toHaveLength(1);
  });

  it("has no hunk without a change", () => {
    expect(hunks(diffLines("a", "a"))).toEqual([]);
  });

  it("numbers a hunk that only adds at the top", () => {
    expect(hunks(diffLines("a\nb", "x\na\nb"), 0).map((h) => h.header)).toEqual(["@@ -0,0 +1,1 @@"]);
  });
});

describe("sideBySide", () => {
  it("pairs deletions with the additions that follow them", () => {
    const rows = sideBySide(diffLines("a\nb\nc\nd", "a\nB\nc\nd\ne"));
    expect(rows.map((r) => [r.left?.text ?? null, r.right?.text ?? null])).toEqual([
      ["a", "a"],
      ["b", "B"],
      ["c", "c"],
      ["d", "d"],
      [null, "e"],
    ]);
  });

  it("leaves the right side empty when more lines are deleted than added", () => {
    const rows = sideBySide(diffLines("a\nb\nc", "x"));
    expect(rows.map((r) => [r.left?.text ?? null, r.right?.text ?? null])).toEqual([
      ["a", "x"],
      ["b", null],
      ["c", null],
    ]);
  });
});
