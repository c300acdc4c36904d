"""Durable waits (DESIGN §2 delay / wait_for_signal / sub_workflow): every process of the
deployment is killed (-9) while executions wait, then restarted; the waits resume."""

from __future__ import annotations

import asyncio
import time

import pytest

from spane import Engine, ExecutionStatus
from tests.chaos.conftest import Deployment

pytestmark = [pytest.mark.real, pytest.mark.slow, pytest.mark.timeout(180)]

WAIT = 60.0


def _kill_everything(deployment: Deployment) -> None:
    for name in deployment.alive():
        deployment.kill(name)


def _restart(deployment: Deployment) -> None:
    deployment.orchestrator()
    deployment.worker()


async def _waiting(client: Engine, execution_id: str, node_id: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        node = (await client.status(execution_id)).nodes.get(node_id)
        if node is not None and node.status == "waiting":
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"node {node_id} never started waiting")


async def test_a_delay_survives_a_restart_of_every_process(
    deployment: Deployment, client: Engine
) -> None:
    _restart(deployment)
    await client.register(
        {
            "id": "chaos-delay",
            "nodes": [
                {"id": "pause", "type": "delay", "duration": "3s"},
                {
                    "id": "after",
                    "function": "chaos.add",
                    "after": ["pause"],
                    "input": {"x": 1, "y": 2},
                },
            ],
        }
    )
    started = time.monotonic()
    execution_id = await client.start("chaos-delay")
    await _waiting(client, execution_id, "pause")
    _kill_everything(deployment)
    await asyncio.sleep(1.0)
    _restart(deployment)
    result = await client.wait(execution_id, WAIT)
    assert (result.status, result.output) == (ExecutionStatus.SUCCEEDED, 3)
    assert time.monotonic() - started >= 3.0


async def test_a_signal_wait_survives_a_restart_of_every_process(
    deployment: Deployment, client: Engine
) -> None:
    _restart(deployment)
    await client.register(
        {"id": "chaos-signal", "nodes": [{"id": "ask", "type": "wait_for_signal", "signal": "go"}]}
    )
    execution_id = await client.start("chaos-signal")
    await _waiting(client, execution_id, "ask")
    _kill_everything(deployment)
    _restart(deployment)
    await client.signal(execution_id, "go", {"answer": 42})
    result = await client.wait(execution_id, WAIT)
    assert (result.status, result.output) == (ExecutionStatus.SUCCEEDED, {"answer": 42})


async def test_a_running_sub_workflow_survives_a_restart_of_every_process(
    deployment: Deployment, client: Engine
) -> None:
    _restart(deployment)
    await client.register(
        {
            "id": "chaos-child",
            "nodes": [
                {"id": "hold", "type": "delay", "duration": "2s"},
                {
                    "id": "work",
                    "function": "chaos.mul",
                    "after": ["hold"],
                    "input": {"x": "${ input.n }", "y": 3},
                },
            ],
        }
    )
    await client.register(
        {
            "id": "chaos-parent",
            "nodes": [
                {"id": "child", "type": "sub_workflow", "workflow": "chaos-child"},
                {
                    "id": "done",
                    "function": "chaos.add",
                    "after": ["child"],
                    "input": {"x": "${ data }", "y": 1},
                },
            ],
        }
    )
    execution_id = await client.start("chaos-parent", {"n": 5})
    await _waiting(client, execution_id, "child")
    _kill_everything(deployment)
    await asyncio.sleep(0.5)
    _restart(deployment)
    result = await client.wait(execution_id, WAIT)
    assert (result.status, result.output) == (ExecutionStatus.SUCCEEDED, 16)
