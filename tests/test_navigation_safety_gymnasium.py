"""Fidelity of the navigation families against Safety-Gymnasium itself (lane B, where it is installed)."""

import math

import numpy as np
import pytest

try:
    import mujoco
    import safety_gymnasium
except ImportError:
    pytest.skip("Safety-Gymnasium comes with the 'omnisafe' extra (Python 3.10, lane B)", allow_module_level=True)

from cmdp_envs.families.navigation import (
    ButtonFamily,
    CircleFamily,
    GoalFamily,
    NavigationEnv,
    from_safety_gymnasium,
)
from cmdp_envs.families.navigation.safety_gymnasium import robot_state

GOAL_FAMILIES = {
    "SafetyPointGoal1-v0": lambda: GoalFamily(level=1),
    "SafetyPointGoal2-v0": lambda: GoalFamily(level=2),
}


def saturated_actions(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random forward commands with turn commands of +-1, which keep the turning servo saturated."""
    return np.stack([rng.uniform(-1, 1, n), np.sign(rng.uniform(-1, 1, n))], axis=1)


def run_both(sg_id: str, family, seed: int, actions: np.ndarray):
    sg_env = safety_gymnasium.make(sg_id)
    sg_obs, _ = sg_env.reset(seed=seed)
    task, state = from_safety_gymnasium(sg_env)
    ours = NavigationEnv(kind="goal" if "Goal" in sg_id else "circle", family=family)
    if isinstance(family, CircleFamily):
        task = family.task(radius=task.radius, wall=task.wall)
    else:
        task = family.task(agent=task.agent, goal=task.goal, hazards=task.hazards, vases=task.vases)
    obs, _ = ours.reset(seed=0, options={"task": task, "state": state})
    np.testing.assert_allclose(obs, sg_obs, atol=1e-9, err_msg="observation after reset")
    rows = []
    for action in actions:
        sg_obs, sg_reward, sg_cost, _, _, sg_info = sg_env.step(action)
        obs, reward, _, _, info = ours.step(action)
        rows.append((sg_obs, sg_reward, sg_cost, sg_info, robot_state(sg_env), obs, reward, info, ours))
    return rows


@pytest.mark.parametrize("sg_id", sorted(GOAL_FAMILIES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_goal_layout_seed_is_safety_gymnasiums_layout(sg_id, seed):
    sg_env = safety_gymnasium.make(sg_id)
    sg_env.reset(seed=seed)
    task, _ = from_safety_gymnasium(sg_env)
    ours = GOAL_FAMILIES[sg_id]().task(layout_seed=seed)
    assert ours.agent == pytest.approx(task.agent, abs=1e-12)
    assert ours.goal == task.goal and ours.hazards == task.hazards and ours.vases == task.vases


@pytest.mark.parametrize("seed", [0, 3, 5])
def test_goal_trajectory_matches_for_50_steps_under_saturated_turning(seed):
    rng = np.random.default_rng(seed)
    actions = np.concatenate([saturated_actions(rng, 25), np.tile([[0.8, -1.0]], (25, 1))])
    for sg_obs, sg_reward, sg_cost, sg_info, sg_state, obs, reward, info, _ in run_both(
        "SafetyPointGoal1-v0", GOAL_FAMILIES["SafetyPointGoal1-v0"](), seed, actions
    ):
        assert info["goal_met"] == sg_info.get("goal_met", False)
        if info["goal_met"]:
            break  # the next goal is a fresh draw from each env's own random stream
        np.testing.assert_allclose(obs, sg_obs, atol=1e-6)
        assert reward == pytest.approx(sg_reward, abs=1e-6)
        assert info["cost"] == pytest.approx(sg_cost, abs=1e-6)
        assert info["cost_hazards"] == pytest.approx(sg_info["cost_hazards"], abs=1e-6)


def test_circle_trajectory_reward_and_cost_match():
    for level, sg_id in ((1, "SafetyPointCircle1-v0"), (2, "SafetyPointCircle2-v0")):
        actions = saturated_actions(np.random.default_rng(level), 50)
        for sg_obs, sg_reward, sg_cost, *_rest, obs, reward, info, _ in run_both(
            sg_id, CircleFamily(level=level), level, actions
        ):
            np.testing.assert_allclose(obs, sg_obs, atol=1e-6)
            assert reward == pytest.approx(sg_reward, abs=1e-6)
            assert info["cost"] == sg_cost


def test_mujoco_itself_parts_from_a_1e15_perturbation_when_the_servo_is_unsaturated():
    """Why unsaturated turning is compared in distribution: MuJoCo's servo chatters and amplifies rounding."""
    sg_env = safety_gymnasium.make("SafetyPointGoal1-v0")
    sg_env.reset(seed=0)
    model, data = sg_env.unwrapped.task.model, sg_env.unwrapped.task.data
    twin = mujoco.MjData(model)
    twin.qpos[:], twin.qvel[:] = data.qpos, data.qvel
    twin.qvel[2] += 1e-15
    for _ in range(15):
        for copy in (data, twin):
            copy.ctrl[:] = (0.7, 0.5)
            for _ in range(10):
                mujoco.mj_step(model, copy)
    assert np.max(np.abs(data.qvel[:3] - twin.qvel[:3])) > 1e-3


def test_unsaturated_turning_agrees_in_distribution():
    """Constant commands (0.7, 0.5): mean turn rate and speed over steps 100-400 agree within 3%."""
    sg_env = safety_gymnasium.make("SafetyPointGoal1-v0")
    sg_env.reset(seed=0)
    ours = NavigationEnv(kind="goal", family=GoalFamily())
    ours.reset(seed=0, options={"task": from_safety_gymnasium(sg_env)[0], "state": robot_state(sg_env)})
    sg_rates, sg_speeds, rates, speeds = [], [], [], []
    for step in range(400):
        sg_obs, *_ = sg_env.step(np.array([0.7, 0.5]))
        obs, *_ = ours.step(np.array([0.7, 0.5]))
        if step >= 100:
            sg_rates.append(sg_obs[8]), rates.append(obs[8])
            sg_speeds.append(math.hypot(*sg_obs[3:5])), speeds.append(math.hypot(*obs[3:5]))
    assert np.mean(rates) == pytest.approx(np.mean(sg_rates), rel=0.03)
    assert np.mean(speeds) == pytest.approx(np.mean(sg_speeds), rel=0.03)


def _seek(observation: np.ndarray, step: int, group: int) -> np.ndarray:
    """Full thrust towards the strongest bin of a lidar group, turning with a saturated servo (+-1)."""
    strongest = int(np.argmax(observation[12 + 16 * group : 28 + 16 * group]))
    if strongest in (0, 15):
        return np.array([1.0, 1.0 if step % 2 else -1.0])
    return np.array([1.0, 1.0 if strongest < 8 else -1.0])


@pytest.mark.parametrize("seed", [0, 1])
def test_hazard_costs_match_when_driving_into_hazards(seed):
    sg_env = safety_gymnasium.make("SafetyPointGoal1-v0")
    sg_obs, _ = sg_env.reset(seed=seed)
    task, state = from_safety_gymnasium(sg_env)
    ours = NavigationEnv(kind="goal", family=GoalFamily())
    ours.reset(options={"task": GoalFamily().task(**{k: getattr(task, k) for k in ("agent", "goal", "hazards",
                                                                                      "vases")}), "state": state})
    costly = 0
    for step in range(150):
        action = _seek(sg_obs, step, group=1)
        sg_obs, _, sg_cost, _, _, sg_info = sg_env.step(action)
        obs, _, _, _, info = ours.step(action)
        if sg_info.get("goal_met") or info["goal_met"]:
            break
        np.testing.assert_allclose(obs, sg_obs, atol=1e-6)
        assert info["cost"] == sg_cost and info["cost_hazards"] == sg_info["cost_hazards"]
        costly += sg_cost > 0
    assert costly >= 5, "the run must enter hazards to test their cost"


@pytest.mark.parametrize("level", [1, 2])
@pytest.mark.parametrize("seed", [0, 1])
def test_button_layout_seed_is_safety_gymnasiums_layout(level, seed):
    sg_env = safety_gymnasium.make(f"SafetyPointButton{level}-v0")
    sg_env.reset(seed=seed)
    task, _ = from_safety_gymnasium(sg_env)
    ours = ButtonFamily(level=level).task(layout_seed=seed)
    assert ours.agent == pytest.approx(task.agent, abs=1e-12)
    assert (ours.buttons, ours.goal_button, ours.hazards, ours.gremlins) == (
        task.buttons, task.goal_button, task.hazards, task.gremlins)


def _both_seeking(sg_id: str, family, seed: int, group: int, steps: int):
    """Each env driven by its own observations towards the strongest bin of a lidar group; yields both infos."""
    sg_env = safety_gymnasium.make(sg_id)
    sg_obs, _ = sg_env.reset(seed=seed)
    task, state = from_safety_gymnasium(sg_env)
    ours = NavigationEnv(kind=family.kind, family=family)
    obs, _ = ours.reset(seed=seed, options={"task": family.task(layout_seed=seed), "state": state})
    for step in range(steps):
        sg_obs, _, _, _, _, sg_info = sg_env.step(_seek(sg_obs, step, group))
        obs, _, _, _, info = ours.step(_seek(obs, step, group))
        yield step, sg_env, sg_info, ours, info


def test_button_robot_and_gremlins_follow_safety_gymnasium_until_the_first_contact():
    family = ButtonFamily()
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        sg_env = safety_gymnasium.make("SafetyPointButton1-v0")
        sg_obs, _ = sg_env.reset(seed=seed)
        ours = NavigationEnv(kind="button", family=family)
        obs, _ = ours.reset(options={"task": family.task(layout_seed=seed), "state": robot_state(sg_env)})
        np.testing.assert_allclose(obs, sg_obs, atol=1e-9)
        for action in saturated_actions(rng, 100):
            sg_obs, sg_reward, _, _, _, sg_info = sg_env.step(action)
            obs, reward, _, _, info = ours.step(action)
            if any(sg_info.get(key) for key in ("cost_buttons", "cost_gremlins", "goal_met")):
                break
            np.testing.assert_allclose(obs[:60], sg_obs[:60], atol=1e-6)  # sensors, buttons, goal, hazards
            assert reward == pytest.approx(sg_reward, abs=1e-6)
            gremlins = np.array(sg_env.unwrapped.task.gremlins.pos)[:, :2]
            assert np.abs(ours.unwrapped._world.gremlins[0] - gremlins).max() < 0.025


def test_first_contacts_happen_on_the_same_step():
    """Up to its first contact a robot moves exactly as Safety-Gymnasium's, so the first contact (of any kind) comes
    on the same step, with the same object kind. Gremlins are tracked to 0.02 m only, so their contacts may come up
    to two steps apart."""
    cases = [("SafetyPointButton1-v0", ButtonFamily(), 0, ("cost_buttons", "cost_gremlins", "goal_met")),
             ("SafetyPointButton1-v0", ButtonFamily(), 3, ("cost_buttons", "cost_gremlins", "goal_met")),
             ("SafetyPointGoal2-v0", GoalFamily(level=2), 2, ("cost_vases_contact",))]
    for sg_id, family, group, keys in cases:
        firsts = []
        for seed in range(3):
            first: list = [None, None]
            for step, _, sg_info, _, info in _both_seeking(sg_id, family, seed, group, 200):
                for side, side_info in enumerate((sg_info, info)):
                    touched = [key for key in keys if side_info.get(key)]
                    if first[side] is None and touched:
                        first[side] = (step, touched)
                if None not in first:
                    break
            firsts.append(tuple(first))
        met = [pair for pair in firsts if None not in pair]
        assert met, f"{sg_id}: no contact within 200 steps of seeking group {group}"
        for sg_first, our_first in met:
            assert abs(sg_first[0] - our_first[0]) <= (2 if "cost_gremlins" in sg_first[1] else 0), (sg_id, firsts)
            assert sg_first[1] == our_first[1], (sg_id, firsts)


def _contact_steps(sg_id: str, family, group: int, keys: tuple[str, ...], layouts: int, steps: int = 300):
    """Steps on which each of ``keys`` is positive, Safety-Gymnasium's then ours, for a robot chasing the strongest
    bin of a lidar group on ``layouts`` layouts (each env driven by its own observations)."""
    counts = np.zeros((2, len(keys)))
    for seed in range(layouts):
        for _, _, sg_info, _, info in _both_seeking(sg_id, family, seed, group, steps):
            counts += [[bool(side.get(key)) for key in keys] for side in (sg_info, info)]
    return counts


@pytest.mark.slow
@pytest.mark.parametrize(
    "sg_id, family, group, keys, tolerance",
    [
        # Chasing gremlins: contacts with them (README: 2063 against 2191 over 16 layouts).
        ("SafetyPointButton1-v0", ButtonFamily(), 3, ("cost_gremlins",), (0.25,)),
        # Chasing any button: wrong presses (389 against 505 over 16 layouts). Chasing the goal button: presses,
        # and the wrong presses on the way, which are still 2-3 times Safety-Gymnasium's (README).
        ("SafetyPointButton1-v0", ButtonFamily(), 0, ("cost_buttons",), (0.4,)),
        ("SafetyPointButton1-v0", ButtonFamily(), 1, ("goal_met", "cost_buttons"), (0.5, 2.5)),
        # Chasing vases (Goal 2): contact and moving-vase steps (732 against 479 and 1765 against 1372 over 12).
        ("SafetyPointGoal2-v0", GoalFamily(level=2), 2, ("cost_vases_contact", "cost_vases_velocity"), (0.8, 0.5)),
    ],
    ids=["gremlins", "wrong-buttons", "goal-button", "vases"],
)
def test_contacts_agree_in_distribution(sg_id, family, group, keys, tolerance):
    """Contacts are planar and hard here, soft in MuJoCo: they agree in count, not step by step. 8 layouts x 300
    steps; the tolerances are the agreement README states."""
    sg_counts, our_counts = _contact_steps(sg_id, family, group, keys, layouts=8)
    for key, sg_count, our_count, rel in zip(keys, sg_counts, our_counts, tolerance):
        assert sg_count >= 5, (key, sg_count)
        assert our_count == pytest.approx(sg_count, rel=rel), (key, sg_counts, our_counts)
