"""The ask/tell Optimizer: user units, validation that changes nothing, failures, batches,
determinism, priors, the state file, and a subprocess killed mid-loop that resumes intact.

Spaces are 2-D and histories stay under 16 trials, the shapes the engine tests compile for."""

import functools
import json
import math
import signal
import sys
import textwrap
from dataclasses import dataclass

import jax
import numpy as np
import pytest

from metabo.bo.maximize import AllObservedError
from metabo.bo.optimizer import Optimizer, StateFileError, TellError, Trial
from metabo.bo.single_task import DEFAULT_MODEL
from metabo.gp import GPModel
from metabo.space import Objective, Parameter, Space

SPACE = Space(
    (Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("width", "int", 8, 64)),
    Objective("loss", "minimize"),
)


def loss(config):
    """Minimum 0 at lr = 1e-2, width = 40."""
    return (math.log10(config["lr"]) + 2.0) ** 2 + ((config["width"] - 40) / 28.0) ** 2


def test_ask_tell_returns_user_units_and_finds_the_optimum_region():
    opt = Optimizer(SPACE, seed=0)
    for _ in range(14):
        config = opt.ask()
        assert set(config) == {"lr", "width"}
        assert isinstance(config["width"], int) and 8 <= config["width"] <= 64
        assert isinstance(config["lr"], float) and 1e-4 <= config["lr"] <= 1.0
        opt.tell(config, loss(config))
    initial = min(t.value for t in opt.trials[: opt.num_initial])
    assert opt.best.value < 0.1 < initial  # the GP phase improved on the quasi-random design
    assert opt.best.value == min(t.value for t in opt.trials)
    frame = opt.to_frame()
    assert list(frame.columns) == ["lr", "width", "loss", "status"] and len(frame) == 14


@pytest.mark.parametrize(
    "config, value, status, message",
    [
        ({"lr": 0.1, "width": 10, "depth": 3}, 1.0, "ok", "unknown parameter"),
        ({"lr": 0.1}, 1.0, "ok", "missing parameter 'width'"),
        ({"lr": 5.0, "width": 10}, 1.0, "ok", "outside"),
        ({"lr": 0.1, "width": 10.5}, 1.0, "ok", "not an integer"),
        ({"lr": "fast", "width": 10}, 1.0, "ok", "not a number"),
        ({"lr": 0.1, "width": 10}, float("nan"), "ok", "NaN"),
        ({"lr": 0.1, "width": 10}, None, "ok", "needs a value"),
        ({"lr": 0.1, "width": 10}, float("inf"), "ok", "infinite"),
        ({"lr": 0.1, "width": 10}, "0.3", "ok", "must be a number"),
        ({"lr": 0.1, "width": 10}, 1.0, "exploded", "unknown status"),
        ([0.1, 10], 1.0, "ok", "dict"),
    ],
)
def test_bad_tell_raises_and_changes_nothing(tmp_path, config, value, status, message):
    path = tmp_path / "state.json"
    opt = Optimizer(SPACE, seed=0, state=path)
    opt.tell({"lr": 0.01, "width": 40}, 0.5)
    before = path.read_bytes()
    with pytest.raises(TellError, match=message):
        opt.tell(config, value, status=status)
    assert len(opt.trials) == 1
    assert path.read_bytes() == before


def test_neg_log_objective_rejects_negative_error_rates():
    space = Space(SPACE.parameters, Objective("error", "minimize", "neg_log"))
    opt = Optimizer(space)
    with pytest.raises(TellError, match="no score"):
        opt.tell({"lr": 0.1, "width": 10}, -0.2)
    opt.tell({"lr": 0.1, "width": 10}, 0.2)
    assert opt.best.value == 0.2


def test_failures_are_recorded_excluded_and_imputed(tmp_path):
    candidates = [{"lr": 10.0**-k, "width": w} for k in range(1, 5) for w in (8, 40)]
    opt = Optimizer(SPACE, seed=1, candidates=candidates, state=tmp_path / "s.json")
    told = set()
    for i in range(len(candidates)):
        config = opt.ask()
        key = (config["lr"], config["width"])
        assert key not in told  # never re-suggested, failed or not
        told.add(key)
        if i % 3 == 1:
            trial = opt.tell(config, float("nan"), status="diverged")
            assert trial.value is None and trial.status == "diverged"
        else:
            opt.tell(config, loss(config))
    with pytest.raises(AllObservedError):
        opt.ask()
    assert [t.status for t in opt.trials].count("diverged") == 3
    resumed = Optimizer(SPACE, state=tmp_path / "s.json")
    assert resumed.trials == opt.trials
    assert [t.status for t in resumed.trials].count("diverged") == 3


def test_batches_and_pending_points_are_distinct():
    opt = Optimizer(SPACE, seed=2)
    for config in opt.ask(4):  # the quasi-random phase and the GP phase in one batch
        opt.tell(config, loss(config))
    batch = opt.ask(3)
    assert len({(c["lr"], c["width"]) for c in batch}) == 3
    single = opt.ask()  # pending points are not repeated
    assert (single["lr"], single["width"]) not in {(c["lr"], c["width"]) for c in batch}
    assert len(opt.pending) == 4
    opt.tell(batch[1], loss(batch[1]))
    assert len(opt.pending) == 3 and batch[1] not in opt.pending
    with pytest.raises(ValueError, match="positive integer"):
        opt.ask(0)


def test_same_seed_same_suggestions_and_resume_continues_identically(tmp_path):
    def run(opt, steps):
        out = []
        for _ in range(steps):
            config = opt.ask()
            opt.tell(config, loss(config))
            out.append(config)
        return out

    straight = run(Optimizer(SPACE, seed=3), 6)
    path = tmp_path / "state.json"
    first = run(Optimizer(SPACE, seed=3, state=path), 3)
    second = run(Optimizer(SPACE, state=path), 3)  # seed and settings from the file
    assert first + second == straight
    other_seed = run(Optimizer(SPACE, seed=4), 2)
    assert other_seed != straight[:2]


def test_state_file_errors(tmp_path):
    path = tmp_path / "state.json"
    opt = Optimizer(SPACE, seed=0, state=path)
    opt.tell({"lr": 0.01, "width": 40}, 0.5)
    document = json.loads(path.read_text())
    assert document["format"] == "metabo.optimizer" and document["trials"][0]["value"] == 0.5
    assert Optimizer.resume(path).trials == opt.trials

    other = Space(
        (Parameter("lr", "real", 1e-5, 1.0, log=True), Parameter("width", "int", 8, 64)), SPACE.objective
    )
    with pytest.raises(StateFileError, match="different search space"):
        Optimizer(other, state=path)
    text = path.read_text()
    cases = {
        "truncated": text[: len(text) // 2],
        "empty": "",
        "garbage": "\x00\x01 not json",
        "wrong format": json.dumps({**document, "format": "something else"}),
        "bad trial": json.dumps(
            {**document, "trials": [{"config": {"lr": 7.0, "width": 40}, "value": 1.0, "status": "ok"}]}
        ),
    }
    for name, content in cases.items():
        broken = tmp_path / f"{name}.json"
        broken.write_text(content)
        with pytest.raises(StateFileError):
            Optimizer(SPACE, state=broken)
    with pytest.warns(UserWarning, match="seed"):
        Optimizer(SPACE, seed=9, state=path)


@dataclass(frozen=True)
class StandInPrior:
    """The interface Optimizer needs from a pre-trained prior."""

    model: object
    params: object
    space: Space


def _stand_in_prior(space=SPACE):
    # A linear prior mean that rises with the width (unit-cube slope 1): with it the very first
    # suggestion goes to the widest candidate.
    model = GPModel(mean="linear", kernel=DEFAULT_MODEL.kernel)
    params = model.with_hyper(
        model.init(jax.random.PRNGKey(0), 2), lengthscale=np.array([0.3, 0.3]), signal=1.0, noise=1e-3
    )
    params = params._replace(mean_constant=np.asarray(0.0), mean_weights=np.array([0.0, 1.0]))
    return StandInPrior(model, params, space)


def test_prior_starts_model_based_at_once_and_checks_its_space():
    prior = _stand_in_prior()
    opt = Optimizer(
        SPACE, prior=prior, seed=0, candidates=[{"lr": 0.01, "width": w} for w in (8, 20, 40, 64)]
    )
    assert opt.num_initial == 0
    first = opt.ask()
    assert first["width"] == 64  # the prior mean's maximum (equal variances everywhere)
    opt.tell(first, 3.0)  # a bad loss (score -3, the prior expected +1) at the widest point ...
    second = opt.ask()
    # ... pulls the posterior mean down around it: at width 40 (unit distance 0.43) it drops to
    # about -0.9, below width 20 (about 0.1) and width 8 (about 0). Without conditioning on the
    # trial the next-best prior mean, width 40, would come next.
    assert second["width"] == 20
    wrong = Space(
        (Parameter("lr", "real", 1e-3, 1.0, log=True), Parameter("width", "int", 8, 64)), SPACE.objective
    )
    with pytest.raises(ValueError, match="different search space"):
        Optimizer(SPACE, prior=_stand_in_prior(wrong))
    with pytest.raises(ValueError, match="model, params and space"):
        Optimizer(SPACE, prior=object())


def test_real_prior_saved_and_loaded(tmp_path):
    prior_module = pytest.importorskip("metabo.pretrain.prior")
    prior = prior_module.Prior.default(SPACE)
    prior.save(tmp_path / "prior.npz")
    loaded = prior_module.Prior.load(tmp_path / "prior.npz")
    opt = Optimizer(SPACE, prior=loaded, seed=0)
    reference = Optimizer(SPACE, prior=prior, seed=0)
    for _ in range(3):
        config = opt.ask()
        assert reference.ask() == config
        opt.tell(config, loss(config))
        reference.tell(config, loss(config))


# ---- crash safety ------------------------------------------------------------------------------
WORKER = textwrap.dedent(
    """
    import json, math, os, sys
    from metabo.bo.optimizer import Optimizer
    from metabo.space import Objective, Parameter, Space

    space = Space((Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("width", "int", 8, 64)),
                  Objective("loss", "minimize"))
    # A long quasi-random phase: tells come fast, so the kill lands anywhere, mid-write included.
    opt = Optimizer(space, seed=0, state=sys.argv[1], num_initial=10**6)
    # Acknowledgements: one line per told trial, each written whole by one append.
    acks = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(acks, (json.dumps({"resumed": len(opt.trials)}) + "\\n").encode())
    while True:
        config = opt.ask()
        value = (math.log10(config["lr"]) + 2.0) ** 2 + config["width"] / 64.0
        opt.tell(config, value)
        os.write(acks, (json.dumps({"config": config, "value": value}) + "\\n").encode())
    """
)


def _ack_lines(path) -> list[dict]:
    """The worker's complete acknowledgement lines (a line cut by the kill has no newline)."""
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.split("\n")[:-1]]


def _acknowledged_count(path) -> int:
    """Trials the worker has acknowledged so far (the first line is its resumed count)."""
    return max(0, len(_ack_lines(path)) - 1)


def test_killed_process_resumes_with_every_acknowledged_trial(tmp_path, run_until_killed):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    path = tmp_path / "state.json"
    rng = np.random.default_rng(0)
    acknowledged = []
    for run in range(3):
        ack_path = tmp_path / f"acks{run}.jsonl"
        # SIGKILL soon after 1-3 more acknowledged trials: keyed to progress, not to wall time.
        process = run_until_killed(
            [sys.executable, str(script), str(path), str(ack_path)],
            functools.partial(_acknowledged_count, ack_path),
            rng,
        )
        assert process.returncode == -signal.SIGKILL  # killed mid-loop, not crashed
        lines = _ack_lines(ack_path)
        resumed, acks = lines[0]["resumed"], lines[1:]
        assert len(acks) >= 1
        assert resumed == len(acknowledged)  # nothing on disk before was lost
        acknowledged.extend(acks)
        trials = Optimizer(SPACE, state=path, num_initial=10**6).trials
        # Every acknowledged trial is on disk, in order; at most one more (told, not yet acknowledged).
        on_disk = [(t.config, t.value) for t in trials]
        ours = [(a["config"], a["value"]) for a in acknowledged]
        assert len(on_disk) - len(ours) in (0, 1)
        assert on_disk[: len(ours)] == ours
        acknowledged = [{"config": c, "value": v} for c, v in on_disk]  # the file is the truth
    assert len(acknowledged) >= 3  # every run told at least one trial
    # And the resumed optimizer keeps going without repeating anything.
    opt = Optimizer(SPACE, state=path, num_initial=10**6)
    config = opt.ask()
    assert all(config != t.config for t in opt.trials)
    opt.tell(config, 1.0)
    assert isinstance(opt.trials[-1], Trial)


# ---- random tell sequences: only TellError, state always reloads, asks stay finite ------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

GOOD_CONFIGS = st.fixed_dictionaries(
    {"lr": st.floats(1e-4, 1.0), "width": st.integers(8, 64)}
)
BAD_CONFIGS = st.one_of(
    st.fixed_dictionaries({"lr": st.sampled_from([0.0, -1.0, 2.0, math.nan, math.inf, "x", None]), "width": st.integers(8, 64)}),
    st.fixed_dictionaries({"lr": st.floats(1e-4, 1.0), "width": st.sampled_from([7, 65, 8.5, math.nan, "w"])}),
    st.fixed_dictionaries({"lr": st.floats(1e-4, 1.0)}),
    st.fixed_dictionaries({"lr": st.floats(1e-4, 1.0), "width": st.integers(8, 64), "depth": st.integers(1, 3)}),
    st.sampled_from([None, [0.1, 10], "lr=0.1", 3]),
)
VALUES = st.one_of(
    st.floats(-1e12, 1e12),
    st.sampled_from([math.nan, math.inf, -math.inf, None, "0.3", 1e-300, 0.0]),
)
STATUSES = st.sampled_from(["ok", "ok", "ok", "diverged", "failed", "exploded", None])
TELLS = st.lists(st.tuples(st.one_of(GOOD_CONFIGS, BAD_CONFIGS), VALUES, STATUSES), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(tells=TELLS)
def test_random_tell_sequences_keep_the_state_file_consistent(tmp_path_factory, tells):
    path = tmp_path_factory.mktemp("state") / "state.json"
    opt = Optimizer(SPACE, seed=0, state=path)
    accepted = 0
    for config, value, status in tells:
        before = tuple(opt.trials)
        try:
            opt.tell(config, value, status=status) if status is not None else opt.tell(config, value)
        except TellError:
            assert opt.trials == before  # a refused tell changes nothing
        else:
            accepted += 1
        assert len(opt.trials) == accepted
        if path.exists():
            assert Optimizer(SPACE, state=path).trials == opt.trials  # the file always reloads
    # Whatever was told, the next suggestion is a finite point inside the space.
    config = opt.ask()
    assert 1e-4 <= config["lr"] <= 1.0 and 8 <= config["width"] <= 64 and math.isfinite(config["lr"])
