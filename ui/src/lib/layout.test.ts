import { describe, expect, it } from "vitest";
import { edgeLabel, layout, layoutInput } from "./layout";
import type { GraphNode } from "./types";

function node(id: string): GraphNode {
  return { id, type: "function", kind: "task", join: "all", threshold: 1, level: 0, ports: [], max_attempts: 1, has_body: false };
}

const graph = {
  nodes: [node("a"), node("b"), node("c"), node("d")],
  edges: [
    { source: "a", port: "success", target: "b" },
    { source: "a", port: "error", target: "c" },
    { source: "b", port: "always", target: "d" },
    { source: "c", port: "big", target: "d" },
    { source: "a", port: "success", target: "ghost" },
  ],
};

describe("layout input", () => {
  it("keeps every node with a size and drops edges to unknown nodes", () => {
    const input = layoutInput(graph);
    expect(input.nodes.map((n) => n.id)).toEqual(["a", "b", "c", "d"]);
    expect(input.nodes.every((n) => n.width > 0 && n.height > 0)).toBe(true);
    expect(input.edges.map((e) => e.id)).toEqual(["a.success->b", "a.error->c", "b.always->d", "c.big->d"]);
  });

  it("labels ports but plain success, dashes error and always", () => {
    const input = layoutInput(graph);
    expect(input.edges.map((e) => [e.label, e.dashed])).toEqual([
      [null, false],
      ["error", true],
      ["always", true],
      ["big", false],
    ]);
    expect(edgeLabel("default")).toBe("default");
  });

  it("lays out top to bottom: a parent sits above its children", () => {
    const placed = Object.fromEntries(layout(layoutInput(graph)).map((p) => [p.id, p]));
    expect(placed.a.y).toBeLessThan(placed.b.y);
    expect(placed.b.y).toBeLessThan(placed.d.y);
    expect(placed.c.y).toBeLessThan(placed.d.y);
  });
});
