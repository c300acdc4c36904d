import { useEffect, useMemo } from "react";
import {
  Background,
  Controls,
  Handle,
  MarkerType,
  Position,
  ReactFlow,
  type Edge,
  type Node,
  type NodeProps,
  useNodesState,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { NODE_HEIGHT, NODE_WIDTH, layout, layoutInput } from "../lib/layout";
import { statusLabel, statusTone } from "../lib/status";
import type { GraphNode, WorkflowGraph } from "../lib/types";

type SpaneNodeData = {
  node: GraphNode;
  status?: string;
  selected: boolean;
  branch: boolean;
  convergence: boolean;
};

function SpaneNode({ data }: NodeProps<Node<SpaneNodeData>>) {
  const { node, status, selected, branch, convergence } = data;
  const tone = status ? statusTone(status) : "plain";
  return (
    <div
      className={`flow-node tone-${tone}${selected ? " selected" : ""}`}
      style={{ width: NODE_WIDTH, height: NODE_HEIGHT }}
      data-node={node.id}
      data-status={status ?? ""}
      title={`${node.id} (${node.type})${status ? `: ${statusLabel(status)}` : ""}`}
    >
      <Handle type="target" position={Position.Top} />
      <div className="flow-node-id">{node.name || node.id}</div>
      <div className="flow-node-meta">
        {node.type}
        {branch && " · branch"}
        {convergence && ` · join ${node.join}`}
        {status && ` · ${statusLabel(status)}`}
      </div>
      <Handle type="source" position={Position.Bottom} />
    </div>
  );
}

const nodeTypes = { spane: SpaneNode };

interface Props {
  graph: WorkflowGraph;
  statuses?: Record<string, string>;
  selected?: string | null;
  onSelect?: (id: string) => void;
}

export function Graph({ graph, statuses, selected, onSelect }: Props) {
  const input = useMemo(() => layoutInput(graph), [graph]);
  const positions = useMemo(() => layout(input), [input]);
  const computed: Node<SpaneNodeData>[] = useMemo(() => {
    const byId = new Map(graph.nodes.map((n) => [n.id, n]));
    const statusOf = (id: string) => (statuses ? (statuses[id] ?? "pending") : undefined);
    return positions.map((p) => ({
      id: p.id,
      type: "spane",
      position: { x: p.x, y: p.y },
      data: {
        node: byId.get(p.id) as GraphNode,
        status: statusOf(p.id),
        selected: selected === p.id,
        branch: graph.branch_points.includes(p.id),
        convergence: graph.convergence_points.includes(p.id),
      },
      ariaLabel: `node ${p.id}${statuses ? `, ${statusOf(p.id)}` : ""}`,
      draggable: false,
      connectable: false,
    }));
  }, [positions, graph, statuses, selected]);
  // Controlled nodes keep React Flow's measurements: a node whose data changes (a new
  // status) but not its size would otherwise stay unmeasured, hence hidden.
  const [nodes, setNodes, onNodesChange] = useNodesState<Node<SpaneNodeData>>(computed);
  useEffect(() => {
    setNodes((current) => {
      const measured = new Map(current.map((n) => [n.id, n.measured]));
      return computed.map((n) => ({ ...n, measured: measured.get(n.id) }));
    });
  }, [computed, setNodes]);
  const edges: Edge[] = useMemo(
    () =>
      input.edges.map((e) => ({
        id: e.id,
        source: e.source,
        target: e.target,
        label: e.label ?? undefined,
        className: e.dashed ? "edge-dashed" : undefined,
        style: e.dashed ? { strokeDasharray: "5 4" } : undefined,
        markerEnd: { type: MarkerType.ArrowClosed },
        animated: statuses ? statuses[e.source] === "running" : false,
      })),
    [input, statuses],
  );
  return (
    <div className="graph" data-testid="graph">
      <ReactFlow
        nodes={nodes}
        onNodesChange={onNodesChange}
        edges={edges}
        nodeTypes={nodeTypes}
        fitView
        fitViewOptions={{ padding: 0.15, maxZoom: 1.2 }}
        minZoom={0.2}
        nodesDraggable={false}
        nodesConnectable={false}
        onNodeClick={(_, node) => onSelect?.(node.id)}
        proOptions={{ hideAttribution: true }}
      >
        <Background gap={16} size={1} />
        <Controls showInteractive={false} />
      </ReactFlow>
    </div>
  );
}
