"""SPANE's benchmark harness (DESIGN §9): ``python -m bench``.

Three workloads of no-op tasks (W1 chain, W2 fan-out/fan-in, W3 many small diamond
DAGs) on the embedded (memory) backend and on a real deployment (orchestrator and
worker as separate OS processes on RabbitMQ + Redis + MongoDB), plus the raw floor of
this machine measured in the same run (RabbitMQ confirms and hops, Redis round trips),
and SPANE's per-node cost as a multiple of that floor. ``python -m bench --soak MINUTES``
runs real W3 back to back and samples the processes' RSS (memory over time).

Modules: :mod:`bench.tasks` (the no-op task), :mod:`bench.workloads` (workflow builders
and timed runs), :mod:`bench.floor` (the floor), :mod:`bench.deploy` (the real
deployment), :mod:`bench.suite` (warm-ups, repetitions, backends), :mod:`bench.report`
(statistics, table, JSON), :mod:`bench.soak` (the soak and its RSS verdict).
"""
