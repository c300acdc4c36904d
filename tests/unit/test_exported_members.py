import spane


def test_public_api_is_pinned() -> None:
    assert sorted(spane.__all__) == [
        "CommandRejectedError",
        "Engine",
        "ExecutionResult",
        "ExecutionSnapshot",
        "ExecutionStatus",
        "InvalidWorkflowError",
        "NodeStatus",
        "SpaneError",
        "TaskContext",
        "TaskError",
        "TaskRegistry",
        "WorkflowSpec",
        "load_workflow_file",
        "load_workflow_text",
        "task",
        "task_type",
    ]
    for name in spane.__all__:
        assert getattr(spane, name) is not None
