"""The dependency bench's own pieces: the DAG it builds, and the journal that checks start order."""

from __future__ import annotations

from bench.deps_dag import MAX_CALL, build_dag, early_starts, independent
from bench.simagent import OrderJournal
from shoal.agent.v1 import agent_pb2


def spelled_out(spec: object) -> tuple[str, ...]:
    d = spec.depends_on  # type: ignore[attr-defined]
    out = [*d.task_ids]
    for r in d.task_id_ranges:
        out += [str(v) for v in range(r.start, r.end + 1)]
    return tuple(out)


def test_the_dag_has_every_shape_and_the_size_asked() -> None:
    dag = build_dag(3000, 10, 20, 500)
    specs = [s for call in dag.calls for s in call]
    ids = [s.id for s in specs]
    assert len(ids) == len(set(ids)) == dag.size == 3000
    assert sum(n for _, n, _ in dag.parts) == 3000
    assert [p for p, _, _ in dag.parts] == ["chains", "fan-out", "fan-in", "range layers"]
    assert all(len(c) <= MAX_CALL for c in dag.calls)
    # What each spec depends on is what the checks compare with, and every parent is in the DAG.
    by_id = {s.id: s for s in specs}
    for s in specs:
        assert spelled_out(s) == dag.parents.get(s.id, ())
    assert all(p in by_id for ps in dag.parents.values() for p in ps)
    assert len(dag.parents["fi-sink"]) == 500
    assert sum(1 for ps in dag.parents.values() if ps == ("fo-root",)) == 500


def test_some_dependents_are_added_before_their_parents() -> None:
    dag = build_dag(3000, 10, 20, 500)
    order = {s.id: (k, i) for k, call in enumerate(dag.calls) for i, s in enumerate(call)}
    assert order["c0-19"] < order["c0-0"]  # a chain from its end, in one call
    assert order["fi-sink"][0] == 0 and order["0"][0] == 1  # the fan-in's parents in a later call
    assert order["fo-0"][0] == 0 and order["fo-root"][0] == 1
    # Independent tasks come in the same call sizes.
    assert [len(c) for c in independent([len(c) for c in dag.calls]).calls] == [len(c) for c in dag.calls]


def assignments(*task_ids: str) -> list[agent_pb2.TaskAssignment]:
    return [agent_pb2.TaskAssignment(attempt=agent_pb2.AttemptRef(job_id="j", task_id=t, attempt=1)) for t in task_ids]


def test_the_journal_passes_a_child_started_after_its_parents_report_left() -> None:
    j = OrderJournal()
    j.started(assignments("p"))
    msg = object()
    j.queued(msg)
    j.handed_over(msg)
    j.started(assignments("c"))
    assert early_starts(j, {"c": ("p",)}) == []
    assert j.repeats == []


def test_the_journal_catches_a_child_started_before_its_parents_report_left() -> None:
    j = OrderJournal()
    j.started(assignments("p"))
    msg = object()
    j.queued(msg)
    j.started(assignments("c"))  # the server cannot have heard of p yet
    j.handed_over(msg)
    assert early_starts(j, {"c": ("p",)}) == ["c before p"]


def test_the_journal_catches_a_parent_never_reported_and_a_task_started_twice() -> None:
    j = OrderJournal()
    j.started(assignments("c", "c"))
    assert early_starts(j, {"c": ("p",)}) == ["c before p"]
    assert j.repeats == ["c"]


def test_the_first_start_follows_the_first_call_with_a_task_ready() -> None:
    assert build_dag(3000, 10, 20, 500).first_ready_call == 0  # the chains' heads
    assert build_dag(3000, 0, 0, 500).first_ready_call == 1  # the fan-out's root and the fan-in's integers
    assert independent([5, 5]).first_ready_call == 0
