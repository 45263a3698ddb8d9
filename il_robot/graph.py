"""The node graph of each launch, described once.

Read by launch/*.launch.py (ros2 launch, under a ROS 2 install) and by
`il-robot launch` (pip users): same nodes, same parameter files, same launch
arguments, no second copy of the node list. ROS-free on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from il_robot.rates import CONTROL_RATE_HZ

# How a launch argument says "the built-in default" (arm description, shipped model). `ros2 launch`
# refuses an empty value (`name:=`) and passes `name:="''"` on as the two characters '', so each
# spelling means the built-in one, and both launchers hand the nodes an empty string.
BUILTIN = "builtin"
BUILTIN_SPELLINGS = ("", BUILTIN, "''", '""')
BUILTIN_PARAMS = ("robot_description", "model_dir")   # parameters that take a "built-in" spelling


def builtin_or(value: str) -> str:
    """'' for any spelling of "built-in", else the value itself."""
    return "" if str(value).strip() in BUILTIN_SPELLINGS else value


# Hosts of a split graph: the robot's PC runs the simulator or driver and the torque loop, the policy
# host runs the learned policy; `all` (the default) runs every node on one machine.
ROBOT, POLICY, ALL = "robot", "policy", "all"
ROLES = (ALL, ROBOT, POLICY)


def is_true(value: str) -> bool:
    """A launch argument's boolean, as ros2 launch's IfCondition reads it."""
    return str(value).strip().lower() in ("true", "1", "yes", "on")


@dataclass(frozen=True)
class Argument:
    name: str
    default: str
    description: str


@dataclass(frozen=True)
class NodeSpec:
    executable: str                 # console script (lib/il_robot/<executable> under colcon)
    module: str                     # python -m <module> for pip users
    name: str                       # node name (matches the key in the parameter file)
    params: dict[str, str] = field(default_factory=dict)  # parameter -> launch argument
    condition: str | None = None    # launch argument that must be true to start the node
    # parameter -> (launch argument, value): the boolean parameter is true when the argument has that
    # value (the controller and policy take part in the simulator's lockstep handshake only then).
    flags: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Its exit stops the graph (the simulator, the controller). Any other node's exit is logged as an
    # error and the rest runs on: the controller holds the arm when the policy dies, as on a real arm.
    required: bool = False
    # Which host runs it when the graph is split (launch argument `role`): "robot" beside the arm's
    # driver (simulator, torque loop), "policy" on the host with the accelerator. docs/two_hosts.md.
    role: str = ROBOT


@dataclass(frozen=True)
class Graph:
    name: str
    params_file: str                # under config/
    arguments: tuple[Argument, ...]
    nodes: tuple[NodeSpec, ...]

    def defaults(self) -> dict[str, str]:
        return {a.name: a.default for a in self.arguments}

    def starts(self, spec: "NodeSpec", values: dict[str, str]) -> bool:
        """Whether a launch with these argument values starts the node: its condition holds and it
        belongs to this host's role (graphs without a `role` argument run whole)."""
        if spec.condition and not is_true(values[spec.condition]):
            return False
        role = str(values.get("role", ALL)).strip()
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got '{role}'")
        return role in (ALL, spec.role)


LOCKSTEP_FLAG = {"lockstep": ("mode", "lockstep")}

PUSHING = Graph(
    name="pushing",
    params_file="pushing.yaml",
    arguments=(
        Argument("policy", "scripted", "Policy to run (scripted, hold, tecnet, planet, ...)"),
        Argument("model_dir", BUILTIN, "Model directory of a learned policy; builtin = the shipped model"),
        Argument("demo", "['']", "Demo bag(s) for few-shot policies (a path or a YAML list)"),
        Argument("device", "cpu", "Inference device: cpu, cuda or tensorrt"),
        Argument("rate_hz", str(CONTROL_RATE_HZ), "Policy control rate (Hz)"),
        Argument("sim", "true", "Start the MuJoCo simulator (false: a real arm's driver provides the topics)"),
        Argument("use_sim_time", "true", "Follow /clock (true with the simulator)"),
        Argument("mode", "realtime", "Simulator mode: realtime or lockstep (deterministic, for evaluation)"),
        Argument("sync_policy", "false", "Lockstep simulator waits for the policy at each frame"),
        Argument("task_set", "heldout", "Task set of the first episode: train, val or heldout"),
        Argument("task_index", "0", "Task of the first episode"),
        Argument("seed", "0", "Episode seed of the first episode"),
        Argument("auto_reset", "true", "Start the next episode when one ends"),
        Argument("episode_duration", "10.0", "Episode length (s of sim time)"),
        Argument("camera_rate", str(CONTROL_RATE_HZ), "Camera rate (Hz)"),
        Argument("camera_delay", "0.0", "Camera latency (s of sim time, 0..0.5; realtime mode only): frames "
                 "and object poses go out this long after their capture stamp"),
        Argument("render", "true", "Render camera images (headless, EGL)"),
        Argument("robot_description", BUILTIN, "MJCF/URDF path of the arm for dynamics; builtin = the "
                 "built-in arm"),
        Argument("role", ALL, "Which part of the graph this host runs: all (one machine), robot (simulator or "
                 "driver and the torque loop) or policy (the policy node); docs/two_hosts.md"),
    ),
    nodes=(
        NodeSpec("sim_node", "il_robot.ros.sim_node", "sim",
                 params={"mode": "mode", "sync_policy": "sync_policy", "task_set": "task_set",
                         "task_index": "task_index", "seed": "seed", "auto_reset": "auto_reset",
                         "episode_duration": "episode_duration", "camera_rate": "camera_rate",
                         "camera_delay": "camera_delay", "render": "render"},
                 condition="sim", required=True),
        NodeSpec("inverse_dynamics_node", "il_robot.ros.inverse_dynamics_node", "inverse_dynamics",
                 params={"use_sim_time": "use_sim_time", "robot_description": "robot_description"},
                 flags=LOCKSTEP_FLAG, required=True),
        NodeSpec("policy_node", "il_robot.ros.policy_node", "policy",
                 params={"use_sim_time": "use_sim_time", "policy": "policy", "model_dir": "model_dir",
                         "demo": "demo", "device": "device", "rate_hz": "rate_hz",
                         "robot_description": "robot_description"},
                 flags=LOCKSTEP_FLAG, role=POLICY),
    ),
)

RECORD_DEMOS = Graph(
    name="record_demos",
    params_file="record_demos.yaml",
    arguments=(
        Argument("out_dir", "demos", "Directory for the bags (one per episode)"),
        Argument("storage", "mcap", "rosbag2 storage: mcap or sqlite3"),
        Argument("sim_operator", "false", "Start a simulated operator (otherwise a human drives /teleop/cmd_vel)"),
        Argument("skill", "expert", "Simulated operator's skill: expert, okay or poor"),
        Argument("operator_seed", "0", "Seed of the simulated operator's noise"),
        Argument("joy", "false", "Start the joystick teleop (needs a joy/spacenav driver on /joy)"),
        Argument("sim", "true", "Start the MuJoCo simulator"),
        Argument("use_sim_time", "true", "Follow /clock (true with the simulator)"),
        Argument("mode", "realtime", "Simulator mode: realtime (humans) or lockstep"),
        Argument("sync_policy", "false", "Lockstep simulator waits for the teleop node at each frame"),
        Argument("task_set", "train", "Task set of the first episode"),
        Argument("task_index", "0", "Task of the first episode"),
        Argument("seed", "0", "Episode seed of the first episode"),
        Argument("auto_reset", "true", "Start the next episode (seed + 1) when one ends"),
        Argument("episode_duration", "10.0", "Episode length (s of sim time)"),
    ),
    nodes=(
        NodeSpec("sim_node", "il_robot.ros.sim_node", "sim",
                 params={"mode": "mode", "sync_policy": "sync_policy", "task_set": "task_set",
                         "task_index": "task_index", "seed": "seed", "auto_reset": "auto_reset",
                         "episode_duration": "episode_duration"},
                 condition="sim", required=True),
        NodeSpec("inverse_dynamics_node", "il_robot.ros.inverse_dynamics_node", "inverse_dynamics",
                 params={"use_sim_time": "use_sim_time"}, flags=LOCKSTEP_FLAG, required=True),
        NodeSpec("teleop_node", "il_robot.ros.teleop_node", "teleop", params={"use_sim_time": "use_sim_time"},
                 flags=LOCKSTEP_FLAG),
        NodeSpec("operator_node", "il_robot.ros.operator_node", "operator",
                 params={"use_sim_time": "use_sim_time", "skill": "skill", "seed": "operator_seed"},
                 condition="sim_operator"),
        NodeSpec("joy_teleop", "il_robot.ros.joy_teleop_node", "joy_teleop",
                 params={"use_sim_time": "use_sim_time"}, condition="joy"),
        NodeSpec("recorder_node", "il_robot.ros.recorder_node", "recorder",
                 params={"use_sim_time": "use_sim_time", "out_dir": "out_dir", "storage": "storage"}),
    ),
)

CORRECT = Graph(
    name="correct",
    params_file="correct.yaml",
    arguments=(
        Argument("policy", "tecnet", "Learned policy that drives (tecnet, planet, ...)"),
        Argument("model_dir", BUILTIN, "Model directory of the policy; builtin = the shipped model"),
        Argument("demo", "['']", "Demo bag(s) of the task for few-shot policies (a path or a YAML list)"),
        Argument("device", "cpu", "Inference device: cpu, cuda or tensorrt"),
        Argument("out_dir", "corrections", "Directory for the bags (one per episode)"),
        Argument("storage", "mcap", "rosbag2 storage: mcap or sqlite3"),
        Argument("round", "1", "DAgger round written into every bag (dataset add files the corrections under it)"),
        Argument("joy", "true", "Start the joystick teleop (a person's joy/spacenav driver, or the simulated "
                 "corrector, on /joy); false: keyboard_teleop in a terminal takes over with t"),
        Argument("operator", "human:joy", "Who corrects, recorded with every episode"),
        Argument("skill", "unknown", "Their skill, recorded with every episode: expert, okay, poor or unknown"),
        Argument("joy_deadzone", "0.1", "Stick values below this count as zero"),
        Argument("sim_operator", "false", "Start the simulated corrector on /joy (watches the object poses, takes "
                 "over when the push drifts off its line, hands back when it is on track)"),
        Argument("corrector_skill", "expert", "The simulated corrector's skill: expert, okay or poor (record it "
                 "with operator:=sim:corrector skill:=<the same>)"),
        Argument("operator_seed", "0", "Seed of the simulated corrector's noise"),
        Argument("sim", "true", "Start the MuJoCo simulator"),
        Argument("use_sim_time", "true", "Follow /clock (true with the simulator)"),
        Argument("mode", "realtime", "Simulator mode: realtime (a person) or lockstep (the simulated corrector)"),
        Argument("sync_policy", "false", "Lockstep simulator waits for the policy at each frame"),
        Argument("task_set", "train", "Task set of the first episode"),
        Argument("task_index", "0", "Task of the first episode"),
        Argument("seed", "0", "Episode seed of the first episode"),
        Argument("auto_reset", "true", "Start the next episode (seed + 1) when one ends"),
        Argument("episode_duration", "10.0", "Episode length (s of sim time)"),
        Argument("robot_description", BUILTIN, "MJCF/URDF path of the arm for dynamics; builtin = the "
                 "built-in arm"),
    ),
    nodes=(
        NodeSpec("sim_node", "il_robot.ros.sim_node", "sim",
                 params={"mode": "mode", "sync_policy": "sync_policy", "task_set": "task_set",
                         "task_index": "task_index", "seed": "seed", "auto_reset": "auto_reset",
                         "episode_duration": "episode_duration"},
                 condition="sim", required=True),
        NodeSpec("inverse_dynamics_node", "il_robot.ros.inverse_dynamics_node", "inverse_dynamics",
                 params={"use_sim_time": "use_sim_time", "robot_description": "robot_description"},
                 flags=LOCKSTEP_FLAG, required=True),
        NodeSpec("policy_node", "il_robot.ros.policy_node", "policy",
                 params={"use_sim_time": "use_sim_time", "policy": "policy", "model_dir": "model_dir",
                         "demo": "demo", "device": "device", "robot_description": "robot_description"},
                 flags=LOCKSTEP_FLAG),
        NodeSpec("joy_teleop", "il_robot.ros.joy_teleop_node", "joy_teleop",
                 params={"use_sim_time": "use_sim_time", "operator": "operator", "skill": "skill",
                         "deadzone": "joy_deadzone"}, condition="joy"),
        NodeSpec("corrector_node", "il_robot.ros.corrector_node", "corrector",
                 params={"use_sim_time": "use_sim_time", "skill": "corrector_skill", "seed": "operator_seed"},
                 condition="sim_operator"),
        NodeSpec("recorder_node", "il_robot.ros.recorder_node", "recorder",
                 params={"use_sim_time": "use_sim_time", "out_dir": "out_dir", "storage": "storage",
                         "correction_round": "round"}),
    ),
)

GRAPHS = {g.name: g for g in (PUSHING, RECORD_DEMOS, CORRECT)}
