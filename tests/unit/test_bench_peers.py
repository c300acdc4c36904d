"""``python -m bench --peers celery``: the pure parts (the Celery run itself is too slow
for the suite): DAG -> canvas mapping, SPANE / peer ratios, their table, the options."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest

from bench.__main__ import options_from, parser
from bench.celery_app import AGGREGATE, NOOP, aggregate, config, noop
from bench.peers import (
    Chain,
    Group,
    NotSeriesParallelError,
    PeerRatio,
    Task,
    canvas_nodes,
    dag_to_canvas,
    describe,
    peer_ratios,
    peer_ratios_table,
    ratio_document,
    render,
)
from bench.report import W1_STEP, W2_TOTAL, W3_NODES, BenchRun, Metric, WorkloadResult
from bench.report import format_number as number
from bench.report import render as render_report
from bench.suite import Options, _present
from bench.workloads import DIAMOND_EDGES

DIAMOND_TEXT = (
    "chain(a, chord(group(chord(group(b, c), e), chain(d, f)), g), chord(group(h, i), j))"
)


# ------------------------------------------------------------------- canvas
def test_the_diamond_maps_to_chains_groups_and_chords() -> None:
    canvas = dag_to_canvas(DIAMOND_EDGES)
    assert canvas == Chain(
        (
            Task("a"),
            Group(
                (Chain((Group((Task("b"), Task("c"))), Task("e"))), Chain((Task("d"), Task("f"))))
            ),
            Task("g"),
            Group((Task("h"), Task("i"))),
            Task("j"),
        )
    )
    assert describe(canvas) == DIAMOND_TEXT
    assert sorted(canvas_nodes(canvas)) == sorted(DIAMOND_EDGES)


def _implied(canvas: Any) -> tuple[set[str], set[str], set[tuple[str, str]]]:
    """(first nodes, last nodes, every 'x before y' pair) a canvas enforces."""
    if isinstance(canvas, Task):
        return {canvas.node}, {canvas.node}, set()
    parts = [
        _implied(part) for part in (canvas.steps if isinstance(canvas, Chain) else canvas.branches)
    ]
    pairs = set().union(*(p[2] for p in parts))
    if isinstance(canvas, Group):
        return set().union(*(p[0] for p in parts)), set().union(*(p[1] for p in parts)), pairs
    for before, after in itertools.pairwise(parts):
        pairs |= {(x, y) for x in _all(before) for y in _all(after)}
    return parts[0][0], parts[-1][1], pairs


def _all(implied: tuple[set[str], set[str], set[tuple[str, str]]]) -> set[str]:
    return implied[0] | implied[1] | {n for pair in implied[2] for n in pair}


def _closure(edges: dict[str, Sequence[str]]) -> set[tuple[str, str]]:
    return _transitive({(parent, node) for node, parents in edges.items() for parent in parents})


def _transitive(pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    while True:
        more = {(a, d) for a, b in pairs for c, d in pairs if b == c} - pairs
        if not more:
            return pairs
        pairs |= more


@pytest.mark.parametrize(
    "edges",
    [
        DIAMOND_EDGES,
        {"a": ()},
        {"a": (), "b": ("a",), "c": ("b",)},
        {"a": (), "b": (), "c": ()},
        {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")},
        {"a": (), "b": (), "c": ("a", "b"), "d": ("a", "b")},  # K2,2: group then group
        {"x": (), "y": ("x",), "p": (), "q": ("p",)},  # two independent chains
    ],
)
def test_the_canvas_enforces_exactly_the_dags_order(edges: dict[str, Sequence[str]]) -> None:
    canvas = dag_to_canvas(edges)
    assert sorted(canvas_nodes(canvas)) == sorted(edges)
    assert _transitive(_implied(canvas)[2]) == _closure(dict(edges))


def test_a_dag_that_is_not_series_parallel_is_refused() -> None:
    n_shape = {"a": (), "b": (), "c": ("a",), "d": ("a", "b")}
    with pytest.raises(NotSeriesParallelError):
        dag_to_canvas(n_shape)


@pytest.mark.parametrize(
    ("edges", "message"),
    [({}, "empty"), ({"a": ("z",)}, "not nodes"), ({"a": ("b",), "b": ("a",)}, "cycle")],
)
def test_bad_graphs_are_refused(edges: dict[str, Sequence[str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dag_to_canvas(edges)


class Recorder:
    """A CanvasFactory that builds text, as Celery's primitives would build signatures."""

    def task(self, node: str) -> str:
        return node

    def chain(self, steps: Sequence[str]) -> str:
        return f"chain({', '.join(steps)})"

    def group(self, branches: Sequence[str]) -> str:
        return f"group({', '.join(branches)})"

    def chord(self, header: str, body: str) -> str:
        return f"chord({header}, {body})"


def test_render_builds_a_chord_of_each_group_and_what_follows_it() -> None:
    assert render(dag_to_canvas(DIAMOND_EDGES), Recorder()) == DIAMOND_TEXT
    assert render(Chain((Task("a"), Group((Task("b"), Task("c"))))), Recorder()) == (
        "chain(a, group(b, c))"
    )


# ------------------------------------------------------------------ celery app
def test_the_celery_app_settings_keep_to_a_private_namespace() -> None:
    settings = config("amqp://x/", "redis://y/0", "bench-celery-1234abcd")
    assert settings["task_default_queue"] == "bench-celery-1234abcd"
    assert settings["task_default_exchange"] == "bench-celery-1234abcd"
    prefix = settings["result_backend_transport_options"]["global_keyprefix"]
    assert prefix == "bench-celery-1234abcd:"
    assert settings["worker_enable_remote_control"] is False
    assert settings["worker_send_task_events"] is False
    assert NOOP != AGGREGATE


def test_the_celery_tasks_mirror_spanes() -> None:
    noop()
    noop(None, "ignored")  # a chain passes the previous result in
    assert aggregate([None] * 500) == 500


# ---------------------------------------------------------------------- ratios
def _result(backend: str, key: str, metric: str, values: list[float]) -> WorkloadResult:
    return WorkloadResult(backend, key, key.upper(), [Metric(metric, "x", values)])


def _results() -> list[WorkloadResult]:
    return [
        _result("memory", "w1", W1_STEP, [0.2]),
        _result("real", "w1", W1_STEP, [4.0, 5.0, 6.0]),
        _result("celery", "w1", W1_STEP, [2.0, 2.5]),
        _result("real", "w2", W2_TOTAL, [0.5]),
        _result("celery", "w2", W2_TOTAL, [1.0]),
        _result("memory", "w3", W3_NODES, [9000.0]),
        _result("celery", "w3", W3_NODES, [3000.0]),
    ]


def test_peer_ratios_divide_spane_by_the_peer_per_workload() -> None:
    ratios = {r.workload: r for r in peer_ratios(_results(), "celery")}
    assert ratios["w1"].value == pytest.approx(5.0 / 2.25)
    assert ratios["w1"].spane_backend == "real"  # real preferred over memory
    assert ratios["w1"].verdict == "SPANE 2.22x slower"
    assert ratios["w2"].value == pytest.approx(0.5)
    assert ratios["w2"].verdict == "SPANE 2.00x faster"
    assert ratios["w3"].spane_backend == "memory"  # no real W3: the memory one
    assert ratios["w3"].value == pytest.approx(3.0)
    assert ratios["w3"].verdict == "SPANE 3.00x faster"


def test_peer_ratios_skip_failed_or_missing_sides() -> None:
    broken = _result("celery", "w1", W1_STEP, [1.0])
    broken.error = "boom"
    assert peer_ratios([_result("real", "w1", W1_STEP, [1.0]), broken], "celery") == []
    assert peer_ratios(_results(), "dask") == []


def test_a_higher_is_better_ratio_below_one_is_slower() -> None:
    ratio = PeerRatio("w3", W3_NODES, "1/s", 1000.0, 2000.0, "celery", "real", True)
    assert ratio.verdict == "SPANE 2.00x slower"
    assert PeerRatio("w2", W2_TOTAL, "s", 1.0, 1.0, "celery", "real", False).verdict == "even"
    document = ratio_document(ratio)
    assert document["spane_over_peer"] == 0.5
    assert document["peer"] == "celery"


def test_the_ratio_table_names_both_sides_and_the_verdict() -> None:
    table = peer_ratios_table(peer_ratios(_results(), "celery"), number)
    lines = table.splitlines()
    assert lines[0].split() == [
        "workload",
        "metric",
        "SPANE",
        "peer",
        "SPANE",
        "/",
        "peer",
        "verdict",
    ]
    w1 = next(line for line in lines if line.startswith("W1"))
    assert "5.00 (real)" in w1
    assert "2.25 (celery)" in w1
    assert "2.22" in w1
    assert "SPANE 2.22x slower" in w1


def test_the_report_prints_the_peer_section_and_the_json_holds_it() -> None:
    run = BenchRun(machine={}, options={}, results=_results())
    _present(run, Options(peers=("celery",)))
    text = render_report(run)
    assert "SPANE / peer" in text
    assert "SPANE 2.00x faster" in text
    assert [r["workload"] for r in run.extra["peer_ratios"]] == ["w1", "w2", "w3"]


# --------------------------------------------------------------------- options
def test_peers_option_parses_and_refuses_unknown_engines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    options = options_from(parser().parse_args(["--peers", "celery", "--quick"]))
    assert options.peers == ("celery",)
    assert options_from(parser().parse_args([])).peers == ()
    with pytest.raises(SystemExit):
        parser().parse_args(["--peers", "dask"])
    assert "known peers are celery" in capsys.readouterr().err
