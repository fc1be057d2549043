"""Report text of `metabo benchmark`: counts in the right number ("1 seed", not "1 seeds")."""

import pytest

from metabo.bench.report import COST_KEYS, markdown_report, plural


def _summary(tasks, seeds, failures, excluded):
    methods = ["random"]
    return {
        "methods": methods,
        "reference": None,
        "tasks": [f"t{i}" for i in range(tasks)],
        "seeds": seeds,
        "budget": 1,
        "requested_budget": 1,
        "mean_normalized_regret": {"random": [0.5]},
        "median_normalized_regret": {"random": [0.5]},
        "average_rank": {"random": [1.0]},
        "speedup": {},
        "min_speedup": {},
        "speedup_upper_bound": {},
        "speedup_definition": "-",
        "no_results": [],
        "runs": {"random": tasks * seeds},
        "failures": [{"method": "random", "task": "t0", "seed": s, "error": "boom"} for s in range(failures)],
        "capped_tasks": {},
        "excluded_related": {f"t{i}": ["x"] for i in range(excluded)},
        "cost": {"random": dict.fromkeys(COST_KEYS)},
        "plots": [],
    }


@pytest.mark.parametrize(
    "count, word, many, expected",
    [(1, "seed", None, "1 seed"), (0, "seed", None, "0 seeds"), (3, "task", None, "3 tasks"), (2, "matrix", "matrices", "2 matrices")],
)
def test_plural(count, word, many, expected):
    assert plural(count, word, many) == expected


def test_report_says_one_seed_and_one_task_in_the_singular():
    text = markdown_report(_summary(tasks=1, seeds=1, failures=1, excluded=1))
    assert "over 1 target task, 1 seed, budget 1 evaluation " in text
    assert "for 1 target (see" in text
    assert "(s)" not in text.split("## Cost")[0]


def test_report_says_several_in_the_plural():
    text = markdown_report(_summary(tasks=3, seeds=2, failures=2, excluded=2))
    assert "over 3 target tasks, 2 seeds, budget 1 evaluation " in text
    assert "for 2 targets (see" in text
