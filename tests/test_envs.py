"""robo_rl.envs: spaces, action mapping, repeat, episode ends, seeding, frame stacks, state."""
import sys

import gymnasium as gym
import numpy as np
import pytest

from robo_rl.envs import EnvConfig, list_tasks, make_env, rescale_action
from robo_rl.envs import rendering
from robo_rl.envs.core import ADDITIVE_INFO_KEYS
from robo_rl.envs.rendering import RENDERER_HELP, configure_mujoco_gl, renderer_errors

DMC = "dmc/cartpole_swingup"
GYM = "gym/HalfCheetah-v5"
SMALL_IMAGE = 32  # pixel tests render small frames: CPU rendering is the slow part


def make(name, **overrides):
    return make_env(EnvConfig(name=name, **overrides))


def rollout(env, actions):
    """(obs, reward, terminated, truncated) for each action, from the env's current state."""
    return [env.step(action)[:4] for action in actions]


def assert_same_rollouts(first, second):
    assert len(first) == len(second)
    for (obs_a, *flags_a), (obs_b, *flags_b) in zip(first, second):
        assert flags_a == flags_b
        if isinstance(obs_a, dict):
            for key in obs_a:
                np.testing.assert_array_equal(obs_a[key], obs_b[key])
        else:
            np.testing.assert_array_equal(obs_a, obs_b)


def fixed_actions(env, count, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-scale, scale, env.action_space.shape).astype(np.float32)
            for _ in range(count)]


@pytest.mark.parametrize("name", [DMC, GYM])
@pytest.mark.parametrize("obs_type", ["state", "pixels", "pixels_state"])
def test_spaces_and_dtypes(name, obs_type):
    stack = 2
    env = make(name, obs_type=obs_type, frame_stack=stack, image_size=SMALL_IMAGE)
    assert env.action_space == gym.spaces.Box(-1, 1, env.action_space.shape, np.float32)
    pixel_shape = (3 * stack, SMALL_IMAGE, SMALL_IMAGE)
    space = env.observation_space
    if obs_type == "state":
        assert space.dtype == np.float32 and len(space.shape) == 1
    elif obs_type == "pixels":
        assert space.dtype == np.uint8 and space.shape == pixel_shape
    else:
        assert set(space.spaces) == {"pixels", "state"}
        assert space["pixels"].dtype == np.uint8 and space["pixels"].shape == pixel_shape
        assert space["state"].dtype == np.float32 and len(space["state"].shape) == 1
    obs, _ = env.reset()
    assert space.contains(obs)
    for action in fixed_actions(env, 2):
        obs, reward, terminated, truncated, _ = env.step(action)
        assert space.contains(obs) and isinstance(reward, float)
        assert terminated is False and truncated is False
    env.close()


def test_rescale_action_hand_checked():
    low, high = np.array([-2.0, 0.0]), np.array([4.0, 10.0])
    np.testing.assert_allclose(rescale_action(np.array([-1.0, 1.0]), low, high), [-2.0, 10.0])
    np.testing.assert_allclose(rescale_action(np.array([0.0, 0.0]), low, high), [1.0, 5.0])
    np.testing.assert_allclose(rescale_action(np.array([0.5, -0.5]), low, high), [2.5, 2.5])
    # outside [-1, 1] is clipped to the bounds
    np.testing.assert_allclose(rescale_action(np.array([3.0, -7.0]), low, high), [4.0, 0.0])


def test_rescaled_action_drives_the_simulator_in_native_units():
    # InvertedPendulum's actuator range is [-3, 3]: agent action 0.5 must act as 1.5.
    env = make("gym/InvertedPendulum-v5", seed=5)
    raw = gym.make("InvertedPendulum-v5")
    obs, _ = env.reset()
    raw_obs, _ = raw.reset(seed=5)
    np.testing.assert_array_equal(obs, raw_obs.astype(np.float32))
    np.testing.assert_allclose(env.to_native_action(np.array([0.5])), [1.5])
    for _ in range(3):
        obs, reward, *_ = env.step(np.array([0.5], np.float32))
        raw_obs, raw_reward, *_ = raw.step(np.array([1.5], np.float32))
        np.testing.assert_array_equal(obs, raw_obs.astype(np.float32))
        assert reward == raw_reward


def test_bad_actions_are_rejected():
    env = make(DMC)
    env.reset()
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="not finite"):
        env.step(np.array([np.nan]))


def test_action_repeat_sums_rewards_and_matches_unrepeated_steps():
    repeat, agent_steps = 3, 4
    repeated = make(DMC, action_repeat=repeat)
    single = make(DMC, action_repeat=1)
    repeated.reset()
    single.reset()
    for action in fixed_actions(repeated, agent_steps):
        obs, reward, *_ = repeated.step(action)
        sub_steps = rollout(single, [action] * repeat)
        assert reward == pytest.approx(sum(step[1] for step in sub_steps), abs=1e-12)
        np.testing.assert_array_equal(obs, sub_steps[-1][0])


def test_action_repeat_sums_energy_and_cost_of_arm_sub_steps():
    repeat = 2
    repeated = make("arm/reach", action_repeat=repeat)
    single = make("arm/reach", action_repeat=1)
    repeated.reset(seed=3)
    single.reset(seed=3)
    for action in fixed_actions(repeated, 3, seed=4):
        _, _, _, _, info = repeated.step(action)
        sub_infos = [single.step(action)[4] for _ in range(repeat)]
        for key in ADDITIVE_INFO_KEYS:
            assert info[key] == pytest.approx(sum(sub[key] for sub in sub_infos), abs=1e-12)
        # state quantities are the last sub-step's, not summed
        assert info["goal_distance"] == sub_infos[-1]["goal_distance"]
    assert info["cost"] > 0.0  # the set-point moved: the comparison above is not 0 == 0


@pytest.mark.parametrize("name, obs_type", [(DMC, "state"), (GYM, "state"),
                                            ("arm/reach", "state"), (DMC, "pixels_state")])
def test_mutating_a_returned_observation_changes_nothing_inside(name, obs_type):
    mutated, untouched = (make(name, obs_type=obs_type, image_size=SMALL_IMAGE)
                          for _ in range(2))

    def scribble(obs):
        for array in (obs.values() if isinstance(obs, dict) else [obs]):
            array[...] = 7

    obs_mutated, _ = mutated.reset(seed=5)
    obs_untouched, _ = untouched.reset(seed=5)
    for action in fixed_actions(mutated, 3, seed=6):
        scribble(obs_mutated)
        # the env's own copy of the current observation is intact...
        assert_same_rollouts([(mutated.get_state()["single_obs"],)],
                             [(untouched.get_state()["single_obs"],)])
        obs_mutated = mutated.step(action)[0]
        obs_untouched = untouched.step(action)[0]
        # ...and so is every later observation (frame stacks included)
        assert_same_rollouts([(obs_mutated,)], [(obs_untouched,)])


def test_action_repeat_stops_at_the_time_limit():
    # limit 7 simulator steps, 3 per agent step: agent steps of 3, 3 and 1 simulator steps
    limit, repeat = 7, 3
    repeated = make(DMC, action_repeat=repeat, max_episode_steps=limit)
    single = make(DMC, action_repeat=1)
    repeated.reset()
    single.reset()
    action = np.array([0.7], np.float32)
    single_rewards = [step[1] for step in rollout(single, [action] * limit)]
    results = rollout(repeated, [action] * 3)
    assert [step[3] for step in results] == [False, False, True]
    total = sum(step[1] for step in results)
    assert total == pytest.approx(sum(single_rewards), abs=1e-12)
    assert results[-1][1] == pytest.approx(single_rewards[-1], abs=1e-12)


def test_dmc_time_limit_is_truncation_with_episode_statistics():
    repeat = 4
    env = make("dmc/cartpole_balance", action_repeat=repeat)
    assert env.max_episode_steps == 1000  # cartpole: 10 s at 0.01 s control steps
    env.reset()
    rewards, action = [], np.zeros(1, np.float32)
    while True:
        _, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        if terminated or truncated:
            break
        assert "episode" not in info
    assert truncated and not terminated
    assert info["episode"]["length"] == 1000 // repeat == len(rewards)
    assert info["episode"]["return"] == pytest.approx(sum(rewards))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(action)


def test_gym_hopper_falling_is_termination():
    env = make("gym/Hopper-v5")
    env.reset()
    push = np.ones(env.action_space.shape, np.float32)
    for _ in range(env.max_episode_steps):
        _, _, terminated, truncated, info = env.step(push)
        if terminated or truncated:
            break
    assert terminated and not truncated
    assert info["episode"]["length"] < env.max_episode_steps


def test_gym_time_limit_override_is_truncation():
    env = make(GYM, max_episode_steps=5)
    env.reset()
    flags = [step[2:4] for step in rollout(env, fixed_actions(env, 5))]
    assert flags == [(False, False)] * 4 + [(False, True)]


@pytest.mark.parametrize("name", [DMC, GYM])
def test_seeding_is_deterministic(name):
    first, second = make(name, seed=3), make(name, seed=3)
    obs_first, _ = first.reset()
    obs_second, _ = second.reset()
    np.testing.assert_array_equal(obs_first, obs_second)
    actions = fixed_actions(first, 10)
    assert_same_rollouts(rollout(first, actions), rollout(second, actions))
    # reset(seed) replays the same episode start; another seed gives another start
    np.testing.assert_array_equal(first.reset(seed=3)[0], obs_first)
    obs_four, _ = first.reset(seed=4)
    assert not np.array_equal(obs_four, obs_first)
    np.testing.assert_array_equal(second.reset(seed=4)[0], obs_four)
    assert_same_rollouts(rollout(first, actions), rollout(second, actions))


@pytest.mark.parametrize("obs_type", ["pixels", "pixels_state"])
def test_frame_stack_repeats_first_frame_then_shifts(obs_type):
    env = make(DMC, obs_type=obs_type, frame_stack=3, image_size=SMALL_IMAGE)

    def pixels(obs):
        return obs if obs_type == "pixels" else obs["pixels"]

    previous = pixels(env.reset()[0])
    first_frame = previous[:3]
    for slot in range(3):
        np.testing.assert_array_equal(previous[3 * slot:3 * slot + 3], first_frame)
    for action in [np.ones(1, np.float32)] * 3:
        current = pixels(env.step(action)[0])
        np.testing.assert_array_equal(current[:6], previous[3:])  # older frames shift left
        newest = env.render_frame(SMALL_IMAGE, SMALL_IMAGE).transpose(2, 0, 1)
        np.testing.assert_array_equal(current[6:], newest)
        previous = current
    assert not np.array_equal(previous[6:], first_frame)  # the cart moved


# Ant reads body positions before stepping (x velocity): the restore must keep them as mj_step
# left them, not recompute them.
# These are S3RL's snapshot resets too (robo_rl.snapshot): HalfCheetah, Hopper, a dm_control task
# and an arm task (its controller and task RNG are part of the state).
@pytest.mark.parametrize("name, obs_type", [("dmc/cheetah_run", "state"), ("gym/HalfCheetah-v5", "state"),
                                            ("gym/Hopper-v5", "state"), ("gym/Ant-v5", "state"),
                                            ("arm/peg_insert", "state"), (DMC, "pixels_state"),
                                            (GYM, "pixels")])
def test_set_state_then_step_equals_original_steps(name, obs_type):
    env = make(name, obs_type=obs_type, image_size=SMALL_IMAGE)
    env.reset()
    # small actions keep Hopper upright: the episode must not end inside the test
    last_obs = rollout(env, fixed_actions(env, 15, seed=1, scale=0.1))[-1][0]  # in contact
    snapshot = env.get_state()
    actions = fixed_actions(env, 10, seed=2, scale=0.1)
    original = rollout(env, actions)
    restored_obs = env.set_state(snapshot)
    assert_same_rollouts([(restored_obs,)], [(last_obs,)])
    assert_same_rollouts(original, rollout(env, actions))
    # stepping on from the restored state did not change the saved snapshot
    env.set_state(snapshot)
    assert_same_rollouts(original, rollout(env, actions))


def test_set_state_restores_task_randomness_across_a_reset():
    # reacher's target position is a model field the task rewrites at every reset
    env = make("dmc/reacher_easy")
    env.reset()
    rollout(env, fixed_actions(env, 5))
    snapshot = env.get_state()
    actions = fixed_actions(env, 10, seed=2)
    original = rollout(env, actions)
    env.reset(seed=123)
    env.set_state(snapshot)
    assert_same_rollouts(original, rollout(env, actions))
    # the task RNG is part of the state: the next unseeded reset draws the same start twice
    env.set_state(snapshot)
    next_start = env.reset()[0]
    env.set_state(snapshot)
    np.testing.assert_array_equal(env.reset()[0], next_start)


def test_set_state_continues_or_restarts_the_episode():
    env = make(DMC, obs_type="pixels", frame_stack=2, image_size=SMALL_IMAGE, max_episode_steps=8)
    env.reset()
    rollout(env, fixed_actions(env, 5))
    snapshot = env.get_state()
    continued = env.set_state(snapshot)
    results = rollout(env, fixed_actions(env, 3))
    assert [step[3] for step in results] == [False, False, True]  # 5 + 3 = limit 8
    restarted = env.set_state(snapshot, new_episode=True)
    np.testing.assert_array_equal(restarted[:3], continued[3:])  # newest frame, repeated
    np.testing.assert_array_equal(restarted[3:], continued[3:])
    results = rollout(env, fixed_actions(env, 3))  # the time limit restarted at the snapshot
    assert [step[3] for step in results] == [False, False, False]


@pytest.mark.parametrize("name", [DMC, GYM])
def test_render_frame_size(name):
    env = make(name, video_size=64)
    env.reset()
    frame = env.render_frame()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8 and frame.max() > 0
    assert env.render_frame(48, 40).shape == (48, 40, 3)
    assert env.render_frame(40).shape == (40, 40, 3)


def test_video_fps_plays_back_in_real_time():
    # cartpole: 0.01 s per control step; two per agent step -> 50 frames per second
    assert make(DMC, action_repeat=2).video_fps == pytest.approx(50.0)
    # HalfCheetah: 5 physics steps of 0.01 s per env step -> 20 frames per second
    assert make(GYM).video_fps == pytest.approx(20.0)


def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError) as error:
        make("dmc/cheetah_runn")
    message = str(error.value)
    assert "dmc/cheetah_run" in message and "dmc/walker_walk" in message
    assert all(prefix in message for prefix in ("dmc/", "gym/", "arm/"))
    with pytest.raises(ValueError, match="gym/HalfCheetah-v5"):
        make("gym/HalfCheeta-v5")
    assert "dmc/ball_in_cup_catch" in list_tasks() and GYM in list_tasks()


@pytest.mark.parametrize("field, value", [("name", "cheetah_run"), ("obs_type", "rgb"),
                                          ("action_repeat", 0), ("frame_stack", 0),
                                          ("image_size", 8), ("max_episode_steps", 0),
                                          ("render_quality", "ultra")])
def test_config_validation(field, value):
    kwargs = {"name": DMC, field: value}
    with pytest.raises(ValueError, match=field if field != "name" else "dmc/"):
        EnvConfig(**kwargs)


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="framestack"):
        EnvConfig.from_dict({"name": DMC, "framestack": 3})
    assert make_env({"name": DMC, "action_repeat": 2}).cfg.action_repeat == 2


def test_unknown_camera_is_named():
    with pytest.raises(ValueError, match="no_such_camera"):
        make(DMC, obs_type="pixels", camera="no_such_camera")


def test_renderer_failure_names_mujoco_gl_and_packages():
    with pytest.raises(RuntimeError, match="MUJOCO_GL") as error:
        with renderer_errors("test"):
            raise OSError("eglInitialize failed")
    assert "libegl1 libgl1-mesa-dri" in str(error.value) and "libosmesa6" in RENDERER_HELP


def test_mujoco_gl_respects_the_user_and_falls_back_to_osmesa(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "glx")
    assert configure_mujoco_gl() == "glx"
    monkeypatch.delenv("MUJOCO_GL")  # restored after the test
    monkeypatch.setattr(rendering.platform, "system", lambda: "Linux")
    monkeypatch.setattr(rendering.ctypes.util, "find_library",
                        lambda library: "libOSMesa.so.8" if library == "OSMesa" else None)
    with pytest.warns(UserWarning, match="too late"):  # mujoco is already imported here
        assert configure_mujoco_gl() == "osmesa"


def test_arm_tasks_without_robo_rl_tasks_give_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "robo_rl.tasks", None)  # makes `import robo_rl.tasks` fail
    with pytest.raises(RuntimeError, match="robo_rl.tasks"):
        make("arm/reach")
    assert not [task for task in list_tasks() if task.startswith("arm/")]


# gymnasium's checker warns about these by design: state vectors are unbounded, and envs built by
# make_env have no registry spec (so it cannot try other render modes; rgb_array is the only one).
EXPECTED_CHECKER_WARNINGS = ("observation space minimum value is -infinity",
                             "observation space maximum value is infinity",
                             "not having a spec")


@pytest.mark.parametrize("name", [DMC, "gym/InvertedPendulum-v5", "arm/reach"])
@pytest.mark.parametrize("obs_type", ["state", "pixels", "pixels_state"])
def test_every_env_family_passes_gymnasium_check_env(name, obs_type):
    import warnings

    from gymnasium.utils.env_checker import check_env

    env = make(name, obs_type=obs_type, image_size=SMALL_IMAGE, video_size=SMALL_IMAGE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)  # includes the render check (rgb_array frames)
    unexpected = [str(w.message) for w in caught
                  if not any(text in str(w.message) for text in EXPECTED_CHECKER_WARNINGS)]
    assert unexpected == []
    assert env.metadata["render_fps"] == pytest.approx(env.video_fps)
    env.close()


# --------------------------------------------------------------------------- EnvConfig.options
ARM_YAMLS = ["reach", "push", "peg_insert", "contact_maze"]
REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def load_task_yaml(task, overrides=()):
    """configs/task/<task>.yaml as Hydra builds it: the yaml merged into the EnvConfig schema,
    then command-line style overrides (`options.energy_tank=true`)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(OmegaConf.structured(EnvConfig),
                          OmegaConf.load(REPO / "configs" / "task" / f"{task}.yaml"),
                          OmegaConf.from_dotlist(list(overrides)))
    return OmegaConf.to_object(cfg)


def gen_task_configs():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_task_configs",
                                                  REPO / "scripts" / "gen_task_configs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_env_config_is_an_omegaconf_structured_schema():
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue, ValidationError

    schema = OmegaConf.structured(EnvConfig)  # name missing: still a valid schema
    assert OmegaConf.is_missing(schema, "name")
    with pytest.raises(MissingMandatoryValue):
        OmegaConf.to_object(schema)
    with pytest.raises(ValueError, match="name is required"):
        EnvConfig()
    with pytest.raises(ValidationError):
        OmegaConf.merge(schema, {"max_episode_steps": "abc"})
    cfg = OmegaConf.merge(schema, {"name": "arm/reach", "camera": "wrist", "max_episode_steps": 7,
                                   "options": {"stiffness_range": [400, 900],
                                               "impedance": {"damping_ratio": 0.9}}})
    env_cfg = OmegaConf.to_object(cfg)  # runs __post_init__ on OmegaConf's output
    assert isinstance(env_cfg, EnvConfig) and env_cfg.camera == "wrist"
    assert env_cfg.options == {"stiffness_range": [400, 900], "impedance": {"damping_ratio": 0.9}}
    assert type(env_cfg.options) is dict and type(env_cfg.options["impedance"]) is dict
    # and back: a structured config of the instance round-trips to an equal EnvConfig
    assert OmegaConf.to_object(OmegaConf.structured(env_cfg)) == env_cfg
    assert EnvConfig(name=DMC).options == {}
    with pytest.raises(ValueError, match="options"):
        EnvConfig(name=DMC, options=[1, 2])


@pytest.mark.parametrize("task", ARM_YAMLS)
def test_arm_yaml_lists_every_task_option_with_its_default(task):
    import dataclasses

    from robo_rl.envs import arm
    from robo_rl.tasks import task_config_class

    gen = gen_task_configs()
    cfg = load_task_yaml(f"arm/{task}")
    fields = {f.name for f in dataclasses.fields(task_config_class(task))}
    assert set(cfg.options) == fields - set(arm.ENV_CONFIG_FIELDS)
    expected = {**arm.default_options(task), **gen.ARM_OPTION_OVERRIDES.get(task, {})}
    assert cfg.options == expected
    # the values build exactly the default Config (YAML lists -> tuples, nested params)
    built = task_config_class(task)(**arm.task_options(task, cfg.options))
    assert built == dataclasses.replace(task_config_class(task)(),
                                        **arm.task_options(task, gen.ARM_OPTION_OVERRIDES.get(task, {})))
    # the file is what the generator writes (hand-tuned values live in the generator)
    assert (REPO / "configs" / "task" / "arm" / f"{task}.yaml").read_text() == gen.arm_yaml(task)


def test_reach_yaml_keeps_its_hand_tuned_time_limit():
    assert load_task_yaml("arm/reach").max_episode_steps == 50


def test_arm_options_from_the_yaml_change_the_task():
    from robo_rl.controllers import PassivityFilter

    plain = make_env(load_task_yaml("arm/contact_maze"))
    assert plain.backend.task.tank is None
    assert not isinstance(plain.backend.task.controller, PassivityFilter)
    tanked = make_env(load_task_yaml("arm/contact_maze", ["options.energy_tank=true",
                                                          "options.tank.initial_energy=0.5"]))
    assert isinstance(tanked.backend.task.controller, PassivityFilter)
    assert tanked.backend.task.tank is not None
    assert tanked.backend.task.tank.params.initial_energy == 0.5
    variable = make_env(load_task_yaml("arm/contact_maze", [
        "options.variable_impedance=true", "options.stiffness_range=[400,1500]",
        "options.reward_type=sparse", "options.episode_steps=20",
        "options.impedance.translational_stiffness=1000"]))
    assert variable.action_space.shape[0] == plain.action_space.shape[0] + 1
    task_cfg = variable.backend.task.config
    assert task_cfg.stiffness_range == (400.0, 1500.0) and task_cfg.reward_type == "sparse"
    assert task_cfg.episode_steps == 20 and task_cfg.impedance.translational_stiffness == 1000.0
    variable.reset(seed=0)
    steps = 0
    while True:
        *_, terminated, truncated, _ = variable.step(np.zeros(variable.action_space.shape))
        steps += 1
        if terminated or truncated:
            break
    assert steps == 20  # episode_steps reached the task
    # a mapping (the loop's to_container path) gives the same task
    same = make_env({"name": "arm/contact_maze", "options": {"energy_tank": True}})
    assert same.backend.task.tank is not None
    for env in (plain, tanked, variable, same):
        env.close()


@pytest.mark.parametrize("options, message", [
    ({"energy_tank": "yes"}, r"task\.options\.energy_tank='yes' must be a bool"),
    ({"episode_steps": 2.5}, r"task\.options\.episode_steps=2\.5 must be an integer"),
    ({"energy_tnk": True}, r"unknown task\.options key\(s\) \['energy_tnk'\].*'energy_tank'"),
    ({"camera": "wrist"}, r"camera: set task\.camera"),
    ({"stiffness_range": [1, 2, 3]}, r"task\.options\.stiffness_range=\[1, 2, 3\] must be a list of 2"),
    ({"impedance": {"translational_stifness": 1.0}},
     r"unknown task\.options\.impedance key\(s\).*'translational_stiffness'"),
    ({"impedance": {"translational_stiffness": "stiff"}},
     r"task\.options\.impedance\.translational_stiffness='stiff' must be a number"),
    ({"tank": {"min_energy": 5.0}}, r"task\.options\.tank: EnergyTankParams need"),
    ({"safety": {"max_force": -1.0}}, r"task\.options\.safety: SafetyParams\.max_force"),
    ({"reward_type": "shaped"}, r"arm/reach task\.options: reward_type='shaped'"),
])
def test_bad_arm_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        make(f"arm/reach", options=options)


def test_arm_safety_option_builds_the_limits_the_task_uses():
    env = make("arm/reach", options={"safety": {"max_force": 30.0,
                                                "workspace_low": [0.3, -0.2, 0.05]}})
    params = env.backend.task.safety.params
    assert params.max_force == 30.0 and params.workspace_low == (0.3, -0.2, 0.05)
    env.close()


def test_dmc_options_are_forwarded_to_suite_load():
    env = make("dmc/cartpole_three_poles",
               options={"task_kwargs": {"num_poles": 2},
                        "environment_kwargs": {"control_timestep": 0.02}})
    default = make("dmc/cartpole_three_poles")
    assert env.observation_space.shape[0] < default.observation_space.shape[0]  # fewer poles
    assert env.backend.control_timestep == pytest.approx(0.02)
    assert env.max_episode_steps == default.max_episode_steps // 2  # same 10 s time limit
    env.close()
    default.close()
    with pytest.raises(ValueError, match=r"task_kwargs.*\['time_limit'\].*max_episode_steps"):
        make(DMC, options={"task_kwargs": {"time_limit": 5}})
    with pytest.raises(ValueError, match=r"unknown task\.options key\(s\) \['num_poles'\]"):
        make(DMC, options={"num_poles": 2})
    with pytest.raises(ValueError, match=r"environment_kwargs key\(s\) \['legacy_step'\]"):
        make(DMC, options={"environment_kwargs": {"legacy_step": True}})
    with pytest.raises(ValueError, match=r"fully_observable=1 must be a bool"):
        make("dmc/manipulator_bring_ball", options={"task_kwargs": {"fully_observable": 1}})


def test_gym_options_are_forwarded_to_gymnasium_make():
    env = make("gym/Hopper-v5", options={"ctrl_cost_weight": 1, "healthy_z_range": [0.5, 3],
                                         "exclude_current_positions_from_observation": False})
    raw = env.backend._env
    assert raw._ctrl_cost_weight == 1.0 and raw._healthy_z_range == (0.5, 3.0)
    assert env.observation_space.shape == (12,)  # x position included
    env.close()
    with pytest.raises(ValueError, match=r"\['render_mode'\].*task\.camera"):
        make("gym/Hopper-v5", options={"render_mode": "human"})
    with pytest.raises(ValueError, match=r"task\.options\.ctrl_cost_weight='a' must be a number"):
        make("gym/Hopper-v5", options={"ctrl_cost_weight": "a"})
    with pytest.raises(ValueError, match=r"\['bogus'\].*'reset_noise_scale'"):
        make("gym/Hopper-v5", options={"bogus": 1})
