"""Search spaces: validation errors, unit-cube maps (property-based), JSON, PD1 preset, Halton."""

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import qmc

from metabo.space import (
    PD1_COLUMNS,
    Objective,
    Parameter,
    Space,
    SpaceError,
    halton,
    load_space,
    pd1_space,
    scrambled_halton,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- strategies ------------------------------------------------------------------------------
@st.composite
def real_parameters(draw, name="p"):
    log = draw(st.booleans())
    if log:
        low_exp = draw(st.floats(-8, 3))
        width = draw(st.floats(0.05, 8))
        low, high = 10.0**low_exp, 10.0 ** (low_exp + width)
    else:
        low = draw(st.floats(-1e4, 1e4))
        high = low + draw(st.floats(1e-3, 1e4))
    return Parameter(name, "real", low, high, log=log)


@st.composite
def int_parameters(draw, name="p"):
    log = draw(st.booleans())
    low = draw(st.integers(1 if log else -1000, 1000))
    high = low + draw(st.integers(1, 5000))
    return Parameter(name, "int", low, high, log=log)


@st.composite
def categorical_parameters(draw, name="p"):
    # Distinct JSON scalars of several kinds: words, whole numbers, a boolean.
    words = draw(st.lists(st.text("abcdefgh", min_size=1, max_size=5), unique=True, max_size=4))
    numbers = draw(st.lists(st.integers(-50, 50), unique=True, max_size=3))
    flags = draw(st.lists(st.booleans(), unique=True, max_size=1))
    choices = words + numbers + flags
    if len(choices) < 2:
        choices = ["first", "second"]
    order = draw(st.permutations(choices))
    return Parameter(name, "categorical", choices=list(order))


def any_parameter(name="p"):
    return st.one_of(real_parameters(name), int_parameters(name), categorical_parameters(name))


@st.composite
def spaces(draw):
    dim = draw(st.integers(1, 5))
    return Space(tuple(draw(any_parameter(f"x{j}")) for j in range(dim)))


def values_in(param: Parameter):
    """A strategy of user-unit values inside the parameter's box (independent of the code under test)."""
    if param.type == "categorical":
        return st.integers(0, len(param.choices) - 1).map(float)
    if param.type == "int":
        return st.integers(int(param.low), int(param.high)).map(float)
    if param.log:
        return (
            st.floats(math.log(param.low), math.log(param.high))
            .map(math.exp)
            .map(lambda v: min(max(v, param.low), param.high))
        )
    return st.floats(param.low, param.high)


# ---- parameter validation: one test per error ------------------------------------------------
@pytest.mark.parametrize("low, high", [(1.0, 1.0), (2.0, 1.0)])
def test_low_not_below_high(low, high):
    with pytest.raises(SpaceError, match=r"low \(.*\) must be < high"):
        Parameter("lr", "real", low, high)


@pytest.mark.parametrize("low", [0.0, -1.0])
def test_log_needs_positive_low(low):
    with pytest.raises(SpaceError, match="log scale needs low > 0"):
        Parameter("lr", "real", low, 1.0, log=True)


def test_unknown_type():
    with pytest.raises(SpaceError, match="unknown type 'float'"):
        Parameter("lr", "float", 0.0, 1.0)


def test_duplicate_names():
    with pytest.raises(SpaceError, match=r"duplicate parameter names: \['a'\]"):
        Space((Parameter("a"), Parameter("b"), Parameter("a", low=2.0, high=3.0)))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "1", None, True])
def test_bounds_must_be_finite_numbers(bad):
    with pytest.raises(SpaceError, match="must be (a number|finite)"):
        Parameter("lr", "real", bad, 2.0)


def test_bound_errors_print_numpy_values_as_numbers():
    with pytest.raises(SpaceError, match=r"low must be finite, got inf$"):
        Parameter("lr", "real", np.float64("inf"), 2.0)
    with pytest.raises(SpaceError, match=r"high must be a number, got 'big'$"):
        Parameter("lr", "real", 1.0, np.str_("big"))


def test_int_bounds_must_be_whole():
    with pytest.raises(SpaceError, match="whole numbers"):
        Parameter("layers", "int", 1.5, 4)


def test_empty_name_and_empty_space():
    with pytest.raises(SpaceError, match="non-empty string"):
        Parameter("")
    with pytest.raises(SpaceError, match="at least one parameter"):
        Space(())


def test_objective_column_cannot_be_a_parameter():
    with pytest.raises(SpaceError, match="also a parameter name"):
        Space((Parameter("objective"),))


def test_space_errors_are_value_errors():
    assert issubclass(SpaceError, ValueError)


# ---- objective -------------------------------------------------------------------------------
def test_objective_validation():
    with pytest.raises(SpaceError, match="direction"):
        Objective(direction="up")
    with pytest.raises(SpaceError, match="transform"):
        Objective(transform="log")
    with pytest.raises(SpaceError, match="neg_log"):
        Objective(direction="maximize", transform="neg_log")


def test_neg_log_transform_is_hyperbo_warp():
    obj = Objective(direction="minimize", transform="neg_log")
    errors = np.array([0.0, 0.01, 0.5, 1.0])
    np.testing.assert_allclose(obj.to_score(errors), -np.log(errors + 1e-10), rtol=1e-15)
    np.testing.assert_allclose(obj.from_score(obj.to_score(errors)), errors, atol=1e-15)
    # Lower error -> higher score.
    assert np.all(np.diff(obj.to_score(errors)) < 0)


@pytest.mark.parametrize("direction, sign", [("minimize", -1.0), ("maximize", 1.0)])
def test_score_direction(direction, sign):
    obj = Objective(direction=direction)
    v = np.array([-2.0, 0.0, 3.5])
    np.testing.assert_array_equal(obj.to_score(v), sign * v)
    np.testing.assert_array_equal(obj.from_score(obj.to_score(v)), v)


# ---- unit cube maps (property-based) ---------------------------------------------------------
@FAST
@given(st.data())
def test_parameter_round_trip_user_to_unit(data):
    p = data.draw(any_parameter())
    v = np.array(data.draw(st.lists(values_in(p), min_size=1, max_size=8)))
    u = p.unit_block(v)
    assert u.shape == (len(v), p.width)
    assert np.all(u >= -1e-12) and np.all(u <= 1 + 1e-12)
    back = p.from_unit(u)
    if p.type in ("int", "categorical"):
        np.testing.assert_array_equal(back, v)
    else:
        np.testing.assert_allclose(back, v, rtol=1e-9, atol=1e-12 * (p.high - p.low))
    assert np.all(p.contains(back))


@FAST
@given(st.data())
def test_parameter_round_trip_unit_to_user(data):
    p = data.draw(real_parameters())
    u = np.array(data.draw(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8)))
    v = p.from_unit(u)
    assert np.all(v >= p.low) and np.all(v <= p.high)
    np.testing.assert_allclose(p.to_unit(v), u, atol=1e-9)
    # Independent formula: linear or geometric interpolation between the bounds.
    if p.log:
        expected = p.low * (p.high / p.low) ** u
    else:
        expected = p.low + u * (p.high - p.low)
    np.testing.assert_allclose(v, expected, rtol=1e-9, atol=1e-12 * abs(p.high - p.low))


@FAST
@given(int_parameters(), st.lists(st.floats(0.0, 1.0), min_size=2, max_size=10))
def test_int_from_unit_is_integer_monotone_and_in_bounds(p, us):
    u = np.sort(np.array(us))
    v = p.from_unit(u)
    np.testing.assert_array_equal(v, np.round(v))
    assert np.all(np.diff(v) >= 0)
    assert v.min() >= p.low and v.max() <= p.high


def test_contains_tolerance_and_log_positivity():
    p = Parameter("lr", "real", 1e-12, 1.0, log=True)
    # Rounding noise at the bounds is accepted ...
    assert p.contains(np.array([1.0 + 1e-12, 1e-12])).all()
    assert not p.contains(np.array([1.0 + 1e-6]))[0]
    # ... but never a value whose log does not exist, however small the lower bound.
    np.testing.assert_array_equal(p.contains(np.array([0.0, -1e-13])), [False, False])
    q = Parameter("n", "int", 0, 10)
    np.testing.assert_array_equal(q.contains(np.array([3.0, 3.5, 10.0, 11.0])), [True, False, True, False])


def test_from_unit_clips_outside_the_cube():
    p = Parameter("lr", "real", 1e-4, 1.0, log=True)
    np.testing.assert_allclose(p.from_unit(np.array([-0.5, 1.5])), [1e-4, 1.0])


def test_log_scale_midpoint_is_geometric_mean():
    p = Parameter("lr", "real", 1e-4, 1.0, log=True)
    assert p.from_unit(np.array([0.5]))[0] == pytest.approx(1e-2, rel=1e-12)
    assert p.to_unit(np.array([1e-2]))[0] == pytest.approx(0.5, rel=1e-12)


@FAST
@given(st.data())
def test_space_configs_round_trip(data):
    space = data.draw(spaces())
    n = data.draw(st.integers(1, 6))
    rows = [[data.draw(values_in(p)) for p in space.parameters] for _ in range(n)]
    matrix = np.array(rows, dtype=np.float64)
    configs = space.to_configs(matrix)
    assert len(configs) == n
    for config in configs:
        assert list(config) == list(space.names)
        for p in space.parameters:
            if p.type == "categorical":
                assert config[p.name] in p.choices and type(config[p.name]) in (str, int, bool)
            else:
                assert isinstance(config[p.name], int if p.type == "int" else float)
    np.testing.assert_array_equal(space.config_matrix(configs), matrix)
    # The unit-cube route goes back to the same configurations; a categorical is one-hot there.
    unit = space.to_unit(matrix)
    assert unit.shape == (n, sum(len(p.choices) if p.type == "categorical" else 1 for p in space.parameters))
    assert unit.shape[1] == space.dim == len(space.unit_names)
    column = 0
    for j, p in enumerate(space.parameters):
        if p.type == "categorical":
            block = unit[:, column : column + len(p.choices)]
            np.testing.assert_array_equal(block, np.eye(len(p.choices))[matrix[:, j].astype(int)])
            column += len(p.choices)
        else:
            column += 1
    np.testing.assert_allclose(space.from_unit(unit), matrix, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(space.round_unit(space.round_unit(unit)), space.round_unit(unit), atol=1e-12)
    assert np.all(space.contains(matrix))


@FAST
@given(spaces())
def test_space_json_round_trip(space):
    again = Space.from_json(space.to_json())
    assert again == space
    assert json.loads(again.to_json()) == json.loads(space.to_json())


def test_space_save_load(tmp_path):
    space = Space(
        (Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("layers", "int", 1, 8)),
        Objective("error", "minimize", "neg_log"),
    )
    path = tmp_path / "space.json"
    space.save(path)
    assert Space.load(path) == space
    assert load_space(str(path)) == space
    assert load_space(space.to_dict()) == space
    assert load_space(space) is space


def test_to_unit_accepts_a_dataframe():
    import pandas as pd

    space = Space((Parameter("a", low=0.0, high=2.0), Parameter("b", "real", 1.0, 100.0, log=True)))
    frame = pd.DataFrame({"b": [10.0, 100.0], "a": [1.0, 0.0], "other": ["x", "y"]})
    np.testing.assert_allclose(space.to_unit(frame), [[0.5, 0.5], [0.0, 1.0]], rtol=1e-12)
    with pytest.raises(SpaceError, match="missing parameter column"):
        space.to_unit(frame.drop(columns="a"))


def test_wrong_width_is_an_error():
    space = Space((Parameter("a"), Parameter("b")))
    with pytest.raises(SpaceError, match=r"shape \[n, 2\]"):
        space.to_unit(np.zeros((3, 3)))
    with pytest.raises(SpaceError, match=r"shape \[n, 2\]"):
        space.from_unit(np.zeros((3, 1)))


# ---- config_matrix errors --------------------------------------------------------------------
CONFIG_SPACE = Space((Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("layers", "int", 1, 8)))


@pytest.mark.parametrize(
    "config, message",
    [
        ({"lr": 0.1, "layers": 2, "dropout": 0.1}, r"configuration 1: unknown parameter\(s\) \['dropout'\]"),
        ({"lr": 0.1}, "configuration 1: missing parameter 'layers'"),
        ({"lr": "0.1", "layers": 2}, "configuration 1: lr='0.1' is not a number"),
        ({"lr": True, "layers": 2}, "configuration 1: lr=True is not a number"),
        ({"lr": np.str_("0.1"), "layers": 2}, "configuration 1: lr='0.1' is not a number"),
        ({"lr": np.bool_(True), "layers": 2}, "configuration 1: lr=True is not a number"),
        ({"lr": float("nan"), "layers": 2}, "configuration 1: lr=nan is not finite"),
        ({"lr": 2.0, "layers": 2}, r"configuration 1: lr=2.0 is outside \[0.0001, 1.0\]"),
        ({"lr": 0.1, "layers": 2.5}, "not an integer"),
        ({"lr": 0.1, "layers": 9}, "outside"),
    ],
)
def test_config_matrix_errors_name_config_and_parameter(config, message):
    good = {"lr": 0.01, "layers": 3}
    with pytest.raises(SpaceError, match=message):
        CONFIG_SPACE.config_matrix([good, config])


# ---- JSON form errors ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec, message",
    [
        ({}, "needs a 'parameters' list"),
        ({"parameters": ["lr"]}, r"parameters\[0\] must be an object"),
        (
            {"parameters": [{"name": "lr", "low": 0, "high": 1, "scale": "log"}]},
            r"unknown key\(s\) \['scale'\]",
        ),
        ({"parameters": [{"name": "lr", "low": 0}]}, "missing key 'high'"),
        (
            {"parameters": [{"name": "lr", "low": 0, "high": 1}], "objective": {"col": "y"}},
            "objective: unknown key",
        ),
        ({"parameters": [{"name": "lr", "low": 0, "high": 1}], "objective": "y"}, "must be an object"),
        ({"parameters": [{"name": "lr", "type": "float", "low": 0, "high": 1}]}, "unknown type"),
    ],
)
def test_space_dict_errors(spec, message):
    with pytest.raises(SpaceError, match=message):
        Space.from_dict(spec)


def test_invalid_json_and_missing_file(tmp_path):
    with pytest.raises(SpaceError, match="not valid JSON"):
        Space.from_json("{parameters: [")
    with pytest.raises(SpaceError, match="does not exist"):
        load_space(str(tmp_path / "nope.json"))


def test_json_form_with_neg_log_transform():
    text = json.dumps(
        {
            "parameters": [
                {"name": "lr", "type": "real", "low": 1e-5, "high": 10, "log": True},
                {"name": "batch", "type": "int", "low": 16, "high": 512, "log": True},
            ],
            "objective": {"column": "error_rate", "direction": "minimize", "transform": "neg_log"},
        }
    )
    space = Space.from_json(text)
    assert space.objective == Objective("error_rate", "minimize", "neg_log")
    assert space["batch"].type == "int" and space["batch"].log and space["batch"].low == 16.0
    assert space.objective.to_score([0.25])[0] == pytest.approx(-math.log(0.25 + 1e-10), rel=1e-15)


# ---- PD1 preset ------------------------------------------------------------------------------
def test_pd1_preset_matches_the_design():
    space = pd1_space()
    assert load_space("pd1") == space
    expected = {
        "initial_learning_rate": (1e-5, 10.0, True),
        "one_minus_momentum": (1e-3, 1.0, True),
        "decay_power": (0.1, 2.0, False),
        "decay_steps_factor": (0.01, 0.99, False),
    }
    assert space.names == tuple(expected)
    for name, (low, high, log) in expected.items():
        p = space[name]
        assert (p.type, p.low, p.high, p.log) == ("real", low, high, log)
    assert space.objective == Objective("objective", "minimize", "neg_log")
    assert set(PD1_COLUMNS) == set(space.names)
    # The centre of the cube: geometric means for log parameters, arithmetic for linear ones.
    centre = space.from_unit(np.full((1, 4), 0.5))[0]
    np.testing.assert_allclose(centre, [math.sqrt(1e-5 * 10), math.sqrt(1e-3), 1.05, 0.5], rtol=1e-12)


# ---- Halton ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [1, 4, 7])
def test_halton_matches_scipy(dim):
    # scipy's unscrambled sequence starts at index 0 (the origin); ours starts at index 1.
    expected = qmc.Halton(d=dim, scramble=False).random(41)[1:]
    np.testing.assert_allclose(halton(40, dim), expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(halton(10, dim, skip=30), expected[30:40], rtol=1e-12, atol=1e-15)


def test_scrambled_halton_is_seeded_and_in_the_cube():
    a, b, c = (
        scrambled_halton(32, 3, seed=1),
        scrambled_halton(32, 3, seed=1),
        scrambled_halton(32, 3, seed=2),
    )
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert a.min() >= 0 and a.max() < 1
    # A Cranley-Patterson rotation: the same shift (mod 1) on every point of a column.
    shift = (a - halton(32, 3)) % 1.0
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-12)


# ---- categorical parameters ------------------------------------------------------------------
MIXED = Space(
    (
        Parameter("lr", "real", 1e-4, 1.0, log=True),
        Parameter("optimizer", "categorical", choices=["sgd", "adam", "rmsprop"]),
        Parameter("batch_size", "categorical", choices=[32, 64, 128]),
    ),
    Objective("error"),
)


def test_categorical_json_form_is_what_a_new_user_writes():
    spec = {
        "parameters": [
            {"name": "lr", "low": 1e-4, "high": 1.0, "log": True},
            {"name": "optimizer", "type": "categorical", "choices": ["sgd", "adam", "rmsprop"]},
            {"name": "batch_size", "type": "categorical", "choices": [32, 64, 128]},
        ],
        "objective": {"column": "error"},
    }
    space = Space.from_dict(spec)
    assert space == MIXED
    assert space.num_parameters == 3 and space.dim == 7
    assert space.unit_names == (
        "lr", "optimizer=sgd", "optimizer=adam", "optimizer=rmsprop", "batch_size=32", "batch_size=64", "batch_size=128"
    )
    assert json.loads(space.to_json())["parameters"][1] == spec["parameters"][1]


def test_categorical_values_map_to_one_hot_and_back():
    configs = [{"lr": 0.01, "optimizer": "adam", "batch_size": 128}, {"lr": 1.0, "optimizer": "sgd", "batch_size": 32}]
    matrix = MIXED.config_matrix(configs)
    np.testing.assert_array_equal(matrix[:, 1:], [[1, 2], [0, 0]])
    unit = MIXED.to_unit(matrix)
    np.testing.assert_allclose(unit, [[0.5, 0, 1, 0, 0, 0, 1], [1.0, 1, 0, 0, 1, 0, 0]], atol=1e-12)
    assert MIXED.configs_from_unit(unit) == [
        {"lr": pytest.approx(0.01), "optimizer": "adam", "batch_size": 128},
        {"lr": pytest.approx(1.0), "optimizer": "sgd", "batch_size": 32},
    ]
    # A relaxed point (what a continuous maximizer returns) snaps to its largest coordinate.
    relaxed = np.array([[0.5, 0.2, 0.3, 0.9, 0.6, 0.61, 0.1]])
    assert MIXED.configs_from_unit(relaxed)[0]["optimizer"] == "rmsprop"
    assert MIXED.configs_from_unit(relaxed)[0]["batch_size"] == 64
    np.testing.assert_allclose(MIXED.round_unit(relaxed)[0, 1:], [0, 0, 1, 0, 1, 0])


def test_categorical_matching_of_logged_values():
    import pandas as pd

    p = MIXED["batch_size"]
    # A CSV gives floats for numbers; strings match after stripping; anything else is not a choice.
    np.testing.assert_array_equal(p.index_of([64.0, 32, "64", True]), [1, 0, np.nan, np.nan])
    np.testing.assert_array_equal(MIXED["optimizer"].index_of([" adam", "Adam"]), [1, np.nan])
    frame = pd.DataFrame({"lr": [0.1, 0.2], "optimizer": ["sgd", "adamw"], "batch_size": [32.0, 64.0]})
    with pytest.raises(SpaceError, match=r"row 1, column 'optimizer': 'adamw' is not one of the choices"):
        MIXED.to_unit(frame)
    with pytest.raises(SpaceError, match=r"configuration 0: optimizer='adamw' is not one of the choices"):
        MIXED.config_matrix([{"lr": 0.1, "optimizer": "adamw", "batch_size": 32}])


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"name": "o", "type": "categorical"}, "missing key 'choices'"),
        ({"name": "o", "type": "categorical", "choices": ["a"]}, "at least two choices"),
        ({"name": "o", "type": "categorical", "choices": "ab"}, "needs a list of choices"),
        ({"name": "o", "type": "categorical", "choices": ["a", "b", "a"]}, r"repeated choice\(s\) 'a'"),
        ({"name": "o", "type": "categorical", "choices": [1, 1.0]}, "repeated choice"),
        ({"name": "o", "type": "categorical", "choices": ["a", None]}, "must be a string, a finite number or a boolean"),
        ({"name": "o", "type": "categorical", "choices": ["a", "b"], "low": 0}, r"unknown key\(s\) \['low'\]"),
        ({"name": "o", "choices": ["a", "b"]}, r"unknown key\(s\) \['choices'\] \(choices need \"type\": \"categorical\"\)"),
    ],
)
def test_categorical_spec_errors(entry, message):
    with pytest.raises(SpaceError, match=message):
        Space.from_dict({"parameters": [entry]})


def test_numeric_unit_map_refuses_a_categorical():
    with pytest.raises(SpaceError, match="is categorical"):
        MIXED["optimizer"].to_unit(np.array([0.0]))
