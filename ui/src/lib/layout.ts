// From a workflow graph (GET /v1/workflows/{id}/graph) to positioned React Flow nodes
// and edges: build the layout input (sizes, edges, labels), then lay it out with dagre.
import dagre from "@dagrejs/dagre";
import type { GraphEdge, WorkflowGraph } from "./types";

export const NODE_WIDTH = 180;
export const NODE_HEIGHT = 56;

export interface LayoutNode {
  id: string;
  width: number;
  height: number;
}

export interface LayoutEdge {
  id: string;
  source: string;
  target: string;
  port: string;
  label: string | null;
  dashed: boolean;
}

export interface LayoutInput {
  nodes: LayoutNode[];
  edges: LayoutEdge[];
}

export function edgeId(edge: GraphEdge): string {
  return `${edge.source}.${edge.port}->${edge.target}`;
}

/** The label on an edge: nothing for plain success, else the port (error, always, a case). */
export function edgeLabel(port: string): string | null {
  return port === "success" ? null : port;
}

export function layoutInput(graph: Pick<WorkflowGraph, "nodes" | "edges">): LayoutInput {
  const known = new Set(graph.nodes.map((n) => n.id));
  return {
    nodes: graph.nodes.map((n) => ({ id: n.id, width: NODE_WIDTH, height: NODE_HEIGHT })),
    edges: graph.edges
      .filter((e) => known.has(e.source) && known.has(e.target))
      .map((e) => ({
        id: edgeId(e),
        source: e.source,
        target: e.target,
        port: e.port,
        label: edgeLabel(e.port),
        dashed: e.port === "error" || e.port === "always",
      })),
  };
}

export interface Positioned {
  id: string;
  x: number;
  y: number;
}

/** Top-left positions of every node (dagre gives centres), top to bottom. */
export function layout(input: LayoutInput, direction: "TB" | "LR" = "TB"): Positioned[] {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: direction, nodesep: 36, ranksep: 56, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const node of input.nodes) g.setNode(node.id, { width: node.width, height: node.height });
  for (const edge of input.edges) g.setEdge(edge.source, edge.target, {}, edge.id);
  dagre.layout(g);
  return input.nodes.map((node) => {
    const placed = g.node(node.id);
    return { id: node.id, x: placed.x - node.width / 2, y: placed.y - node.height / 2 };
  });
}
