"""Files written and read back: permissions, readers that name the file, policies and covering results restored
bit for bit, and every kind of bad file refused with a message naming it."""

import json
import os
import shutil
import stat

import numpy as np
import pytest

from cmdp_envs.io import UnreadableFileError, atomic_write, check_json_fields, read_json, read_npz, write_json
from cmdp_envs.meta.covering import CoveringResult, train
from cmdp_envs.meta.oracles import DistanceCheck, ExactLPOracle, ExactSimultaneouslyFeasibleOracle
from cmdp_envs.meta.policies import MLPPolicy, TabularPolicy, gaussian_argmax_probabilities, softmax
from cmdp_envs.tabular import TabularCMDP, check_policy


# -- output permissions --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_permissions_of_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = write_json(tmp_path / "out" / "summary.json", {"a": 1})
        figure_like = atomic_write(tmp_path / "raw.bin", lambda file: file.write(b"x"))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert stat.S_IMODE(figure_like.stat().st_mode) == mode
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out", "raw.bin", "summary.json"], "no temporary left"


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path):
    def fail(file):
        file.write(b"half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write(tmp_path / "x.npz", fail)
    assert list(tmp_path.iterdir()) == []


# -- read_json and read_npz ----------------------------------------------------------------------------------------

def _unreadable(reader, path, *reason_parts):
    with pytest.raises(UnreadableFileError) as caught:
        reader(path)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.path == path and str(error).startswith(f"{path}: ")
    for part in reason_parts:
        assert part in error.reason, error.reason
    return error


def test_read_json_names_the_file_and_the_problem(tmp_path):
    path = tmp_path / "covering.json"
    with pytest.raises(FileNotFoundError):
        read_json(path)
    path.write_bytes(b"")
    _unreadable(read_json, path, "empty file (0 bytes)")
    path.write_bytes(b'{"a": "\xff"}')
    _unreadable(read_json, path, "not UTF-8", "0xff", "offset 7")
    path.write_text('{"a": 1,')
    _unreadable(read_json, path, "not valid JSON", "line 1")
    path.write_text('{"a": [1, 2.5]}')
    assert read_json(path) == {"a": [1, 2.5]}


def test_read_npz_reads_numeric_arrays_exactly(tmp_path):
    arrays = {"f": np.random.default_rng(0).random((3, 4)), "i": np.arange(5), "u": np.arange(3, dtype=np.uint8),
              "h": np.ones(2, dtype=np.float32)}
    np.savez(tmp_path / "ok.npz", **arrays)
    loaded = read_npz(tmp_path / "ok.npz")
    assert sorted(loaded) == sorted(arrays)
    for key, array in arrays.items():
        assert loaded[key].dtype == array.dtype and np.array_equal(loaded[key], array)
    np.savez(tmp_path / "text.npz", header=np.array('{"a": 1}'), weight=np.ones(2))
    assert str(read_npz(tmp_path / "text.npz", text_keys=("header",))["header"]) == '{"a": 1}'


def test_read_npz_refuses_what_is_not_a_numeric_npz_archive(tmp_path):
    path = tmp_path / "pi_3.npz"
    with pytest.raises(FileNotFoundError):
        read_npz(path)
    path.write_bytes(b"")
    _unreadable(read_npz, path, "empty file (0 bytes)")
    with open(path, "wb") as file:
        np.save(file, np.ones((2, 2)))
    _unreadable(read_npz, path, ".npy array, not an .npz archive")
    path.write_bytes(np.random.default_rng(0).bytes(200))
    error = _unreadable(read_npz, path, "not an .npz archive")
    assert "pickle" not in str(error)
    np.savez(path, probabilities=np.full((4, 2), 0.5))
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    _unreadable(read_npz, path, "damaged or truncated")
    for key, array, dtype in (("names", np.array(["a", "b"]), "<U1"), ("objects", np.array([{}, 1], dtype=object),
                                                                          "object"),
                              ("complex", np.ones(2, dtype=complex), "complex128")):
        np.savez(path, fine=np.ones(2), **{key: array})
        _unreadable(read_npz, path, repr(key), dtype)
    np.savez(path, header=np.ones(2))
    _unreadable(lambda p: read_npz(p, text_keys=("header",)), path, "'header'", "expected a string")


def test_json_fields_are_checked_by_type_and_named(tmp_path):
    path = tmp_path / "covering.json"
    fields = {"n": int, "x": (int, float), "flag": bool}
    value = {"n": 3, "x": 0.5, "flag": False, "extra": None}
    assert check_json_fields(path, "the top level", value, fields) is value
    for bad, reason in (([], "the top level must be a JSON object with keys ['flag', 'n', 'x'], got a list"),
                        ({"n": 3, "x": 1}, "the top level misses the key(s) ['flag']"),
                        ({**value, "n": True}, "the top level: 'n' must be a JSON int, got True"),
                        ({**value, "x": "1"}, "the top level: 'x' must be a JSON int or float, got '1'"),
                        ({**value, "flag": 1}, "the top level: 'flag' must be a JSON bool, got 1")):
        with pytest.raises(UnreadableFileError) as caught:
            check_json_fields(path, "the top level", bad, fields)
        assert caught.value.path == path and caught.value.reason == reason


# -- policies ------------------------------------------------------------------------------------------------------

def _random_policies(rng, count=200):
    """Policies of every provenance the project has: softmax outputs, Dirichlet draws, LP-like sparse rows,
    exploration mixtures and rows off one by round-off."""
    for _ in range(count):
        S, A = int(rng.integers(1, 30)), int(rng.integers(1, 9))
        kind = rng.integers(5)
        if kind == 0:
            yield softmax(rng.normal(scale=rng.choice([0.1, 3.0, 30.0]), size=(S, A)))
        elif kind == 1:
            yield rng.dirichlet(np.full(A, rng.choice([0.1, 1.0])), size=S)
        elif kind == 2:
            occupancy = rng.random((S, A)) * (rng.random((S, A)) < 0.5) + 1e-3 * (np.arange(A) == 0)
            yield occupancy / occupancy.sum(axis=1, keepdims=True)
        elif kind == 3:
            yield 0.98 * softmax(rng.normal(size=(S, A))) + 0.02 / A
        else:
            policy = rng.dirichlet(np.ones(A), size=S)
            policy[:, 0] += rng.choice([-1e-13, 1e-9, -1e-7], size=S) * (policy[:, 0] > 1e-6)
            yield policy


def test_tabular_policies_are_restored_bit_for_bit(tmp_path):
    rng = np.random.default_rng(0)
    for index, probabilities in enumerate(_random_policies(rng)):
        policy = TabularPolicy(probabilities)
        again = TabularPolicy(policy.probabilities)
        assert np.array_equal(again.probabilities, policy.probabilities), "construction is idempotent"
        loaded = TabularPolicy.load(policy.save(tmp_path / f"pi_{index}.npz"), shape=probabilities.shape)
        assert np.array_equal(loaded.probabilities, policy.probabilities)
        assert loaded.probabilities.tobytes() == policy.probabilities.tobytes()
        assert np.abs(policy.probabilities.sum(axis=1) - 1).max() <= 1e-12


def test_tabular_policies_keep_rows_that_already_sum_to_one():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(40, 5))
    assert np.array_equal(TabularPolicy(softmax(logits)).probabilities, softmax(logits))
    off = np.full((2, 4), 0.25)
    off[1] *= 1 + 1e-7
    policy = TabularPolicy(off)
    assert np.array_equal(policy.probabilities[0], off[0]) and policy.probabilities[1].sum() == pytest.approx(1, 1e-15)
    tiny_negative = np.array([[1.0 + 1e-13, -1e-13]])
    assert TabularPolicy(tiny_negative).probabilities.tolist() == [[1.0 + 1e-13, 0.0]]


@pytest.mark.parametrize("change, message", [
    (lambda p: p.__setitem__((3, 0), p[3, 0] - 0.03), r"row 3 of probabilities sums to 0.97 \(must be 1 within"),
    (lambda p: p.__setitem__((2, 1), np.nan), "row 2 of probabilities has a non-finite entry nan"),
    (lambda p: p.__setitem__((1, 1), np.inf), "row 1 of probabilities has a non-finite entry inf"),
    (lambda p: p.__setitem__((4, slice(None)), [1.1, -0.1]), "row 4 of probabilities has a negative entry -0.1"),
])
def test_invalid_tabular_policies_name_the_row_and_the_value(change, message):
    probabilities = np.full((5, 2), 0.5)
    change(probabilities)
    with pytest.raises(ValueError, match=message):
        TabularPolicy(probabilities)


def test_check_policy_names_the_row_of_a_batch():
    cmdp = TabularCMDP(P=np.full((2, 2, 2), 0.5), r=np.zeros((2, 2)), c=np.zeros((2, 2)), mu=[0.5, 0.5], gamma=0.9,
                       cost_limit=1.0)
    batch = np.full((3, 2, 2), 0.5)
    assert check_policy(cmdp, batch) is not None
    batch[2, 1] = [0.5, 0.6]
    with pytest.raises(ValueError, match=r"row \(2, 1\) of policies sums to 1.1"):
        check_policy(cmdp, batch, "policies")


def test_tabular_policy_load_names_the_file_in_every_error(tmp_path):
    path = tmp_path / "pi_3.npz"
    TabularPolicy(np.full((49, 3), 1 / 3)).save(path)
    error = _unreadable(lambda p: TabularPolicy.load(p, shape=(49, 4)), path, "(49, 3)", "expected (49, 4)")
    assert "pi_3.npz" in str(error)
    np.savez(path, probabilities=np.full((3, 2), np.nan))
    _unreadable(TabularPolicy.load, path, "row 0 of probabilities has a non-finite entry nan")
    np.savez(path, policy=np.full((3, 2), 0.5))
    _unreadable(TabularPolicy.load, path, "no array 'probabilities'")
    path.write_bytes(b"nonsense")
    _unreadable(TabularPolicy.load, path, "not a saved TabularPolicy", "not an .npz archive")


def _mlp(**changes):
    arguments = {"weights": [np.ones((3, 2)), np.ones((2, 3))], "biases": [np.zeros(3), np.zeros(2)],
                 "activations": ["tanh", "identity"], "output": "gaussian", "observation_size": 2,
                 "discrete_observation": False, "log_std": np.zeros(2), "action_bounds": (-np.ones(2), np.ones(2))}
    arguments.update(changes)
    return MLPPolicy(**arguments)


@pytest.mark.parametrize("changes, message", [
    ({"weights": [np.ones((3, 2)), np.array([[1, np.nan, 0], [0, 0, 0]])]},
     r"the weight of layer 1 has a non-finite entry nan at index \(0, 1\)"),
    ({"biases": [np.array([0, 0, np.inf]), np.zeros(2)]}, r"the bias of layer 0 has a non-finite entry inf"),
    ({"log_std": np.array([0.0, -np.inf])}, "log_std has a non-finite entry -inf"),
    ({"action_bounds": (np.array([-1.0, -np.inf]), np.ones(2))}, "the action bound low has a non-finite entry"),
    ({"action_bounds": (np.ones(2), np.ones(2))}, "low < high; at index 0 low = 1.0 and high = 1.0"),
])
def test_network_policies_refuse_non_finite_numbers(changes, message):
    _mlp()
    with pytest.raises(ValueError, match=message):
        _mlp(**changes)


def _write_mlp_file(path, header, **arrays):
    np.savez(path, header=np.array(json.dumps(header) if not isinstance(header, str) else header), **arrays)


def test_network_policies_round_trip_and_bad_files_are_named(tmp_path):
    policy = _mlp(seed=0)
    path = policy.save(tmp_path / "actor.npz")
    loaded = MLPPolicy.load(path)
    for a, b in zip(loaded.weights + loaded.biases + [loaded.log_std, *loaded.action_bounds],
                    policy.weights + policy.biases + [policy.log_std, *policy.action_bounds]):
        assert np.array_equal(a, b)
    arrays = dict(np.load(path))
    header = json.loads(str(arrays.pop("header")))
    bad = tmp_path / "bad.npz"

    nan_arrays = {**arrays, "weight_0": np.full((3, 2), np.nan)}
    _write_mlp_file(bad, header, **nan_arrays)
    _unreadable(MLPPolicy.load, bad, "the weight of layer 0 has a non-finite entry nan")
    for broken_header, reason in (("{", "not valid JSON"), ([1, 2], "must be a JSON object"),
                                  ({k: v for k, v in header.items() if k != "layers"}, "the header misses the key(s) ['layers']"),
                                  ({**header, "layers": "2"}, "'layers' must be a JSON int"),
                                  ({**header, "discrete_observation": 0}, "'discrete_observation' must be a JSON bool"),
                                  ({**header, "layers": 3}, "says 3 layers, but the archive misses the arrays ['bias_2', 'weight_2']"),
                                  ({**header, "layers": 1}, "has the unexpected arrays ['bias_1', 'weight_1']")):
        _write_mlp_file(bad, broken_header, **arrays)
        _unreadable(MLPPolicy.load, bad, reason)
    np.savez(bad, **arrays)
    _unreadable(MLPPolicy.load, bad, "no 'header' array")
    bad.write_bytes(b"")
    _unreadable(MLPPolicy.load, bad, "not a saved MLPPolicy", "empty file")


def _gaussian_argmax_reference(mean, std, n_samples, seed):
    """The unchunked formula: one (S, n_samples, A) draw."""
    mean, std = np.broadcast_arrays(np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64))
    rng = np.random.default_rng(seed)
    draws = mean[:, None, :] + std[:, None, :] * rng.standard_normal((mean.shape[0], n_samples, mean.shape[1]))
    winners = draws.argmax(axis=2)
    counts = np.stack([np.bincount(row, minlength=mean.shape[1]) for row in winners])
    return counts / n_samples


@pytest.mark.parametrize("block", [None, 1, 7, 4096])
def test_gaussian_argmax_in_blocks_equals_one_draw(monkeypatch, block):
    import cmdp_envs.meta.policies as policies

    if block is not None:
        monkeypatch.setattr(policies, "_GAUSSIAN_BLOCK", block)
    rng = np.random.default_rng(5)
    for S, A, n_samples in ((1, 1, 10), (3, 4, 1000), (5, 3, 2501), (2, 6, 1)):
        mean, std = rng.normal(size=(S, A)), rng.uniform(0, 2, size=(S, A))
        std[0, 0] = 0.0
        expected = _gaussian_argmax_reference(mean, std, n_samples, seed=11)
        assert np.array_equal(gaussian_argmax_probabilities(mean, std, n_samples, seed=11), expected)
        generator = np.random.default_rng(11)
        assert np.array_equal(gaussian_argmax_probabilities(mean, std, n_samples, seed=generator), expected)
        assert generator.random() == (lambda g: (g.standard_normal(S * n_samples * A), g.random())[1])(
            np.random.default_rng(11)), "the generator advances by exactly the draws made"
    with pytest.raises(ValueError, match="n_samples"):
        gaussian_argmax_probabilities(mean, std, 0)


# -- covering results ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved_cover(paper_family, tmp_path_factory):
    result = train(
        paper_family, ExactLPOracle(paper_family), DistanceCheck(paper_family, parameter="noise"),
        ExactSimultaneouslyFeasibleOracle(paper_family, iterations=300), delta=0.2, eps=0.005, xi=0.05, seed=0,
    )
    directory = result.save(tmp_path_factory.mktemp("cover") / "run")
    return result, directory


def test_covering_results_round_trip_bit_for_bit(paper_family, saved_cover):
    result, directory = saved_cover
    loaded = CoveringResult.load(directory, paper_family)
    assert loaded.cover_size == result.cover_size == 4
    assert (loaded.n_samples, loaded.doublings, loaded.coverage_error, loaded.config) == (
        result.n_samples, result.doublings, result.coverage_error, result.config)
    assert np.array_equal(loaded.safe_policy.probabilities, result.safe_policy.probabilities)
    for ours, theirs in zip(loaded.policy_values, result.policy_values):
        assert ours.task == theirs.task
        assert np.array_equal(ours.policy.probabilities, theirs.policy.probabilities)
        assert ours.policy.probabilities.tobytes() == theirs.policy.probabilities.tobytes()
        for field in ("reward_value", "margin", "safe_reward_value", "safe_margin"):
            assert getattr(ours, field) == getattr(theirs, field)


def _corrupt_copy(directory, tmp_path, edit_index=None, policy_file=None, policy_array=None):
    copy = tmp_path / "copy"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(directory, copy)
    if edit_index is not None:
        data = json.loads((copy / "covering.json").read_text())
        (copy / "covering.json").write_text(json.dumps(edit_index(data)))
    if policy_file is not None:
        if policy_array is None:
            (copy / policy_file).unlink()
        else:
            np.savez(copy / policy_file, probabilities=policy_array)
    return copy


def _set(data, keys, value):
    target = data
    for key in keys[:-1]:
        target = target[key]
    if value is KeyError:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return data


@pytest.mark.parametrize("keys, value, reason", [
    ((), [], "the top level must be a JSON object"),
    (("policy_values",), {}, "'policy_values' must be a JSON list"),
    (("n_samples",), KeyError, "the top level misses the key(s) ['n_samples']"),
    (("n_samples",), "531", "'n_samples' must be a JSON int, got '531'"),
    (("coverage_error",), True, "'coverage_error' must be a JSON int or float, got True"),
    (("cover_size",), 99, "cover_size is 99 but policy_values has"),
    (("policy_values", 1), [1, 2], "policy_values[1] must be a JSON object"),
    (("policy_values", 0, "margin"), KeyError, "policy_values[0] misses the key(s) ['margin']"),
    (("policy_values", 0, "policy"), 3, "policy_values[0]: 'policy' must be a JSON str"),
    (("policy_values", 0, "policy"), "../pi_0.npz", "must name a file in the same directory"),
    (("policy_values", 0, "kind"), "Pickle", "kind 'Pickle' is not one of"),
    (("policy_values", 0, "task", "noise"), 0.9, "policy_values[0]: task"),
    (("safe_policy",), "pi_s.npz", "'safe_policy' must be a JSON dict, got 'pi_s.npz'"),
    (("safe_policy", "kind"), KeyError, "safe_policy misses the key(s) ['kind']"),
])
def test_a_malformed_covering_json_is_named(paper_family, saved_cover, tmp_path, keys, value, reason):
    _, directory = saved_cover
    edit = (lambda data: value) if not keys else (lambda data: _set(data, keys, value))
    copy = _corrupt_copy(directory, tmp_path, edit_index=edit)
    with pytest.raises(UnreadableFileError) as caught:
        CoveringResult.load(copy, paper_family)
    assert caught.value.path == copy / "covering.json"
    assert reason in caught.value.reason


@pytest.mark.parametrize("policy_file, array, reason", [
    ("pi_1.npz", np.full((49, 3), 1 / 3), "probabilities have shape (49, 3), expected (49, 4)"),
    ("pi_s.npz", np.full((48, 4), 0.25), "probabilities have shape (48, 4), expected (49, 4)"),
    ("pi_0.npz", np.full((49, 4), np.nan), "non-finite entry nan"),
    ("pi_0.npz", None, "cannot be read"),
])
def test_a_bad_policy_file_of_a_covering_result_is_named(paper_family, saved_cover, tmp_path, policy_file, array,
                                                          reason):
    _, directory = saved_cover
    copy = _corrupt_copy(directory, tmp_path, policy_file=policy_file, policy_array=array)
    with pytest.raises(ValueError) as caught:
        CoveringResult.load(copy, paper_family)
    assert caught.value.path == copy / policy_file
    assert str(caught.value).startswith(str(copy / policy_file)) and reason in str(caught.value)


def test_a_missing_or_empty_covering_json_is_a_value_error_naming_it(paper_family, saved_cover, tmp_path):
    _, directory = saved_cover
    copy = _corrupt_copy(directory, tmp_path)
    (copy / "covering.json").write_bytes(b"")
    with pytest.raises(UnreadableFileError, match="covering.json: empty file"):
        CoveringResult.load(copy, paper_family)
    (copy / "covering.json").unlink()
    with pytest.raises(UnreadableFileError, match="covering.json: cannot be read"):
        CoveringResult.load(copy, paper_family)


def test_tabular_policy_refuses_strings_instead_of_parsing_them():
    with pytest.raises(ValueError, match="dtype <U4"):
        TabularPolicy(np.full((3, 2), "0.50"))


def test_a_covered_network_must_fit_the_familys_env(tmp_path):
    """A network saved into a cover of a family whose env it does not fit is refused at load, naming the file."""
    from cmdp_envs.families.point_navigation import PointNavigationFamily
    from cmdp_envs.meta.covering import CoveringResult, PolicyValue

    family = PointNavigationFamily()
    rng = np.random.default_rng(0)

    def network(inputs, outputs):
        return MLPPolicy([rng.standard_normal((8, inputs)), rng.standard_normal((outputs, 8))],
                         [np.zeros(8), np.zeros(outputs)], ["tanh", "identity"], "categorical", inputs, False)

    task = family.default_task
    good = CoveringResult((PolicyValue(task, network(2, 4), 1.0, 0.1, 0.5, 0.2),), network(2, 4), 10, 0, 0.1, {})
    good.save(tmp_path / "good")
    assert CoveringResult.load(tmp_path / "good", family).policy_values[0].policy.observation_size == 2
    bad = CoveringResult((PolicyValue(task, network(10, 3), 1.0, 0.1, 0.5, 0.2),), network(2, 4), 10, 0, 0.1, {})
    bad.save(tmp_path / "bad")
    with pytest.raises(ValueError, match=r"pi_0\.npz: the network takes 10 inputs and gives 3 outputs"):
        CoveringResult.load(tmp_path / "bad", family)
