"""SPANE's benchmark harness (DESIGN §9): ``python -m bench``.

Three standard workloads of no-op tasks (W1 chain, W2 fan-out/fan-in, W3 many small
diamond DAGs) on the embedded (memory) backend and on a real deployment (orchestrator and
worker as separate OS processes on RabbitMQ + Redis + MongoDB), plus the raw floor of
this machine measured in the same run (RabbitMQ confirms and hops, Redis round trips),
and SPANE's per-node cost as a multiple of that floor. W4 (size) and W5 (``for_each``
loop) measure whether the cost per node / per item stays flat as a workflow grows
(``--workload scale``). ``--peers celery`` deploys Celery on the same servers in the same
run and prints SPANE / Celery ratios. ``--soak MINUTES`` runs real W3 back to back and
samples the processes' RSS; ``--chaos`` kills a worker and an orchestrator mid-W3 and
times the recovery.

Modules: :mod:`bench.tasks` (the tasks), :mod:`bench.workloads` (W1-W3 builders and
timed runs), :mod:`bench.scale` (W4, W5, their table and plot), :mod:`bench.floor` (the
floor), :mod:`bench.deploy` (the real deployment), :mod:`bench.suite` (warm-ups,
repetitions, backends), :mod:`bench.report` (statistics, table, JSON), :mod:`bench.peers`
(DAG -> Celery canvas, SPANE / peer ratios), :mod:`bench.celery_app` and
:mod:`bench.celery_run` (Celery deployed and measured), :mod:`bench.soak` (the soak and its
RSS verdict), :mod:`bench.chaos` (recovery as performance).
"""
