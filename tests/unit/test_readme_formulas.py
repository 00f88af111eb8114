"""The autoscale formulas the README shows evaluate as it says (the `Elasticity` section's blocks)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shoal.server.autoscale.evaluator import EvaluationInputs, evaluate
from shoal.server.autoscale.history import MetricHistory, PoolSample

pytestmark = pytest.mark.timeout(30)

README = Path(__file__).resolve().parents[2] / "README.md"
#: A Wednesday at 10:00.
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def section() -> str:
    text = README.read_text()
    start = text.index("## Elasticity")
    return text[start : text.index("\n## ", start + 1)]


def formulas() -> list[str]:
    """The formula blocks (no language), and the one written into pending.formula in the shell block."""
    text = section()
    plain = [body for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S) if not lang]
    heredoc = re.search(r"<<'FORMULA'\n(.*?)FORMULA\n", text, re.S)
    assert heredoc is not None
    return [heredoc.group(1), *plain]


def history(pending: float) -> MetricHistory:
    h = MetricHistory(5.0, 1440)
    for i in range(60):
        h.add(PoolSample(NOW - timedelta(seconds=5 * (59 - i)), {"$PendingTasks": pending}))
    return h


def test_the_readme_shows_three_formulas() -> None:
    assert len(formulas()) == 3


@pytest.mark.parametrize(("pending", "expected"), [(10.0, [4, 10, 4]), (0.0, [0, 0, 4])])
def test_each_formula_sets_the_targets_the_readme_describes(pending: float, expected: list[int]) -> None:
    got = []
    for text in formulas():
        run = evaluate(text, EvaluationInputs(now=NOW, history=history(pending), current={"$CurrentDedicatedNodes": 1}))
        assert run.error is None, (text, run.error)
        assert run.targets is not None
        got.append(run.targets.dedicated)
    assert got == expected


def test_batchs_example_keeps_one_node_until_enough_samples_are_known() -> None:
    batch = formulas()[1]
    sparse = MetricHistory(5.0, 1440)
    sparse.add(PoolSample(NOW, {"$PendingTasks": 50.0}))
    run = evaluate(batch, EvaluationInputs(now=NOW, history=sparse))
    assert run.error is None and run.targets is not None
    assert run.targets.dedicated == 1
    assert run.targets.deallocation_option == "taskcompletion"
