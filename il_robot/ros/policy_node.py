"""Policy node: camera + joints (+ sim object poses) -> desired joint motion at control rate.

Ticks on the sensor frame the policy consumes (image, or object poses for the
scripted expert), at most `rate_hz`; every frame is answered once (frames
between ticks get the extrapolated reference). A frame is judged on this
node's clock: one stamped further than `stamp_tolerance` from it (another
clock, a glitch) is discarded with a log, and the policy keeps acting on the
next. Only with `lockstep` (set by the lockstep launch) is a re-sent frame
answered again, as the lockstep simulator's handshake needs.
The policy is swapped through parameters: the new one is built and checked in
the parameter callback, off the control path, then swapped between two ticks;
a failed build is refused with its reason and the old policy keeps running.
With `takeover` (human-gated DAgger), an operator holding the takeover
(/teleop/takeover) drives with /teleop/cmd_vel instead of the policy, through the
same resolved-rate path; each such tick's command also goes out on
/teleop/correction, the label a recorder keeps. Their device going silent
mid-takeover holds the arm still (il_robot.teleop.takeover).
"""

from __future__ import annotations

import json
import sys
import threading

import numpy as np
from geometry_msgs.msg import PoseArray, TwistStamped
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, String
from trajectory_msgs.msg import JointTrajectory

from il_robot import topics
from il_robot.policies.base import Observation, PolicyConfig, PolicyLoadError
from il_robot.policies.catalog import available, make_policy
from il_robot.rates import CONTROL_RATE_HZ
from il_robot.robot import panda_like
from il_robot.robot.joint_order import JointInputError, JointOrder
from il_robot.robot.model import RobotModel, RobotModelError
from il_robot.robot.resolved_rate import ResolvedRateController
from il_robot.ros import conversions as conv
from il_robot.graph import builtin_or
from il_robot.ros.latched import LATCHED, LATCHED_LATEST
from il_robot.ros.joint_state_history import JointStateHistory
from il_robot.ros.params import declare
from il_robot.ros.runner import run_node
from il_robot.ros.topic_thread import TopicThread
from il_robot.teleop.takeover import TAKEOVER_TIMEOUT, Driver, TakeoverArbiter

POLICY_PARAMS = ("policy", "model_dir", "demo", "device")
DEVICES = ("cpu", "cuda", "tensorrt")
JOINT_STATE_WAIT = 0.5   # s (wall): longest wait for the joint state of a frame's instant


class PolicyNode(Node):
    def __init__(self, node_name: str = "policy", default_policy: str = "scripted", **kwargs):
        super().__init__(node_name, **kwargs)
        self.policy_name = declare(self, "policy", default_policy, "Policy to run: " + ", ".join(available()))
        self.model_dir = builtin_or(declare(self, "model_dir", "", "Model directory (ONNX + metadata); '' or "
                                            "builtin = the shipped model"))
        self.demos = declare(self, "demo", [""], "Demo bag(s) conditioning a few-shot policy")
        self.device = declare(self, "device", "cpu", "Inference device", choices=DEVICES)
        self.rate_hz = declare(self, "rate_hz", CONTROL_RATE_HZ, "Control rate (Hz)", float_range=(1.0, 100.0))
        description = builtin_or(declare(self, "robot_description", "", "MJCF/URDF path or XML for "
                                         "kinematics; '' or builtin = the built-in arm", read_only=True))
        max_speed = declare(self, "max_tip_speed", 0.3, "Tool tip speed limit (m/s)", float_range=(0.01, 1.0))
        desired_topic = declare(self, "desired_topic", topics.DESIRED_MOTION, "Desired motion output",
                                read_only=True)
        teleop_topic = declare(self, "teleop_topic", topics.TELEOP_CMD,
                               "Operator velocity commands (TwistStamped) for the teleop policy", read_only=True)
        self.command_timeout = declare(self, "command_timeout", 0.5,
                                       "Teleop: a command older than this (s) counts as released -> stop",
                                       float_range=(0.01, 5.0))
        self.stamp_tolerance = declare(self, "stamp_tolerance", 0.5,
                                       "Camera frames and object poses stamped further than this (s) from "
                                       "this node's clock are discarded", float_range=(0.01, 60.0))
        takeover = declare(self, "takeover", False,
                           f"Let an operator take the arm from the policy: while {topics.TAKEOVER} says held, "
                           f"their {topics.TELEOP_CMD} drives (human-gated DAgger)", read_only=True)
        takeover_timeout = declare(self, "takeover_timeout", TAKEOVER_TIMEOUT,
                                   f"s without a {topics.TAKEOVER} message while the operator drives -> hold "
                                   "still until their device is heard again", float_range=(0.05, 5.0),
                                   read_only=True)
        self.lockstep = declare(self, "lockstep", False,
                                "Simulator only (the lockstep launch sets it), never on a real arm: answer "
                                "a re-sent frame again", read_only=True)

        self.robot = RobotModel.load(description, list(panda_like.JOINT_NAMES))
        self.order = JointOrder(self.robot.joint_names)
        self.rr = ResolvedRateController(self.robot, max_speed=max_speed)
        self.policy = self._build(self.policy_name, self._config())
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # `device` is what was asked for; this says what runs (cuda asked on a CPU-only install: CPU).
        self.pub_provider = self.create_publisher(String, topics.POLICY_PROVIDER, LATCHED_LATEST)
        self._report_provider()

        self._lock = threading.Lock()   # policy object, swap, episode context
        self._image: np.ndarray | None = None
        self._objects: dict[str, np.ndarray] = {}
        self._last_tick = -np.inf
        self._last_answer = -np.inf
        self.ticks = 0
        self.swaps = 0
        self.frames_discarded = 0
        self._episode: dict = {}
        self._last_desired: JointTrajectory | None = None
        self._command: tuple[float, np.ndarray] | None = None   # (stamp, tip velocity) from the operator
        self._episode_start = -np.inf   # sim time the episode began (simulator only; -inf on a real arm)
        self.takeover = TakeoverArbiter(takeover_timeout) if takeover else None
        self.corrections = 0   # ticks the operator drove

        # Frames are handled on a node of their own, spun in its own thread: a policy
        # being built in this node's parameter callback never delays a tick.
        # Its own clock follows /clock in its own thread too, to judge the frames it handles.
        self.control_node = rclpy.create_node(
            f"{self.get_name()}_control", namespace=self.get_namespace(), context=self.context,
            use_global_arguments=False, start_parameter_services=False,
            parameter_overrides=[rclpy.parameter.Parameter("use_sim_time",
                                                           value=self.get_parameter("use_sim_time").value)])
        control = self.control_node
        # The episode first: when its description and the first frame are both waiting, the
        # executor runs callbacks in creation order, and the frame must see the new episode.
        control.create_subscription(String, topics.EPISODE, self._on_episode, LATCHED)
        self.pub_desired = control.create_publisher(JointTrajectory, desired_topic, 10)
        self.pub_action = control.create_publisher(TwistStamped, topics.TIP_VELOCITY, 10)
        self.joint_states = JointStateHistory(self, topics.JOINT_STATES)
        control.create_subscription(Image, topics.IMAGE, self._on_image, qos_profile_sensor_data)
        control.create_subscription(PoseArray, topics.OBJECT_POSES, self._on_objects, 10)
        control.create_subscription(TwistStamped, teleop_topic, self._on_command, 10)
        if self.takeover is not None:
            control.create_subscription(Bool, topics.TAKEOVER, self._on_takeover, 10)
            self.pub_correction = control.create_publisher(TwistStamped, topics.CORRECTION, 10)
        # /clock (100 Hz on sim time) moves both nodes' clocks from a thread of its own: through an
        # executor it would cost more CPU than the policy's own 20 Hz work.
        self.clock_thread = TopicThread(self, "clock")
        self.topic_threads = [self.clock_thread]
        if self.clock_thread.follow_clock(self) | self.clock_thread.follow_clock(control):
            self.clock_thread.start()
        self.get_logger().info(f"policy '{self.policy_name}' at {self.rate_hz:g} Hz -> '{desired_topic}'"
                               + (f"; an operator takes over on {topics.TAKEOVER}" if takeover else ""))

    # -- building and swapping ----------------------------------------------------------
    def _config(self, **overrides) -> PolicyConfig:
        values = {"model_dir": self.model_dir, "demos": [d for d in self.demos if d], "device": self.device,
                  "rate_hz": self.rate_hz}
        values.update(overrides)
        return PolicyConfig(**values)

    def _build(self, name: str, config: PolicyConfig):
        policy = make_policy(name, config)
        q = np.array(panda_like.HOME_Q)
        tip, _ = self.robot.tip_pose(q)
        policy.check(Observation(0.0, q, np.zeros_like(q), tip, np.zeros((64, 64, 3), np.uint8)))
        return policy

    def _on_set_parameters(self, params) -> SetParametersResult:
        changes = {p.name: p.value for p in params}
        if "device" in changes and changes["device"] not in DEVICES:
            return SetParametersResult(successful=False, reason=f"device must be one of {list(DEVICES)}")
        if "rate_hz" in changes:
            self.rate_hz = changes["rate_hz"]
        if "command_timeout" in changes:
            self.command_timeout = changes["command_timeout"]
        if "stamp_tolerance" in changes:
            self.stamp_tolerance = changes["stamp_tolerance"]
        if not any(k in changes for k in POLICY_PARAMS):
            return SetParametersResult(successful=True)
        name = changes.get("policy", self.policy_name)
        config = self._config(
            model_dir=builtin_or(changes.get("model_dir", self.model_dir)),
            demos=[d for d in changes.get("demo", self.demos) if d],
            device=changes.get("device", self.device))
        try:
            policy = self._build(name, config)   # off the control path: the control group keeps ticking
        except PolicyLoadError as err:
            self.get_logger().error(f"policy swap refused, keeping '{self.policy_name}': {err}")
            return SetParametersResult(successful=False, reason=str(err))
        with self._lock:
            policy.reset(self._episode)
            self.policy, self.policy_name = policy, name
            self.model_dir, self.device = config.model_dir, config.device
            self.demos = changes.get("demo", self.demos)
            self.swaps += 1
        self.get_logger().info(f"swapped to policy '{name}'")
        self._report_provider()
        return SetParametersResult(successful=True)

    def _report_provider(self) -> None:
        """Publish (latched) the onnxruntime provider the policy's model runs on; 'none' without a model."""
        provider = getattr(getattr(self.policy, "model", None), "provider", None) or "none"
        self.pub_provider.publish(String(data=provider))
        if provider == "CPUExecutionProvider" and self.device != "cpu":
            self.get_logger().warning(f"device '{self.device}' asked for, but it is not available here: "
                                      f"the model runs on {provider}")

    # -- inputs ---------------------------------------------------------------------------
    def _on_episode(self, msg: String) -> None:
        try:
            context = json.loads(msg.data)
        except json.JSONDecodeError as err:
            self.get_logger().error(f"ignored malformed episode description: {err}")
            return
        with self._lock:
            self._episode = context
            self.policy.reset(context)
            self.rr.reset()
            self._command = None   # an operator's command belongs to its episode:
            self._episode_start = _seconds(context.get("start_time"))   # one from before it is stale
        self._last_tick = -np.inf

    def _on_image(self, msg: Image) -> None:
        t = conv.from_time(msg.header.stamp)
        if not self._plausible(t, "camera frame"):
            return
        try:
            self._image = conv.image_to_rgb(msg)
        except ValueError as err:
            self.get_logger().error(f"ignored camera image: {err}", throttle_duration_sec=2.0)
            return
        if self.policy.needs_image or not self.policy.needs_privileged:
            self._frame(t)  # teleop and hold tick on the camera too (once per stamp)

    def _on_command(self, msg: TwistStamped) -> None:
        v = np.array([msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z])
        if not np.all(np.isfinite(v)):
            self.get_logger().error(f"ignored non-finite teleop command {v.tolist()}", throttle_duration_sec=1.0)
            return
        self._command = (conv.from_time(msg.header.stamp), v)

    def _on_takeover(self, msg: Bool) -> None:
        before = self.takeover.driver
        after = self.takeover.heard(bool(msg.data), self._now())
        if after is before:
            return
        if after is Driver.OPERATOR:
            self.get_logger().info("operator took over: their commands drive" + (
                " (their device is heard again)" if before is Driver.LOST else ""))
        else:
            self.get_logger().info("operator released the takeover: the policy drives" + (
                " (their device is heard again)" if before is Driver.LOST else ""))

    def _now(self) -> float:
        return self.control_node.get_clock().now().nanoseconds * 1e-9

    def _driver(self) -> Driver:
        """Who drives this tick; the operator's device gone silent mid-takeover is logged once, then held."""
        if self.takeover is None:
            return Driver.POLICY
        before = self.takeover.driver
        driver = self.takeover.driver_at(self._now())
        if driver is Driver.LOST and before is not Driver.LOST:
            self.get_logger().error(
                f"takeover: no {topics.TAKEOVER} for {self.takeover.silent_for(self._now()):.2f} s while the "
                "operator had the arm: holding still until their device is heard again")
        return driver

    def _fresh_command(self, t: float) -> np.ndarray | None:
        if self._command is None:
            return None
        stamp, v = self._command
        return v if t - stamp <= self.command_timeout and stamp >= self._episode_start - 1e-9 else None

    def _on_objects(self, msg: PoseArray) -> None:
        t = conv.from_time(msg.header.stamp)
        if not self._plausible(t, "object pose"):
            return
        if len(msg.poses) >= 3:
            xyz = [np.array([p.position.x, p.position.y, p.position.z]) for p in msg.poses[:3]]
            self._objects = dict(zip(("target", "distractor", "goal"), xyz))
        if not self.policy.needs_image:
            self._frame(t)

    def _plausible(self, t: float, what: str) -> bool:
        """A sensor stamp near this node's clock; a clock gone back (a restarted simulator) restarts
        the frame sequence, which would otherwise wait for the old stamps to come round again."""
        now = self.control_node.get_clock().now().nanoseconds * 1e-9
        if now == 0.0:
            return False   # on sim time before the first /clock: nothing to judge a stamp by
        if now < self._last_answer - self.stamp_tolerance:
            self.get_logger().warning(f"clock went back by {self._last_answer - now:.3f} s: restarting the "
                                      "frame sequence")
            self._last_answer = self._last_tick = -np.inf
            with self._lock:
                self.rr.reset()
                self._episode_start = -np.inf   # the restarted simulator's episode says its own
        off = t - now
        # Lockstep: the simulator is the only clock, and its /clock may reach this node after a new
        # episode's first frame (a second ahead): the clock lags, the frame is good.
        if abs(off) <= self.stamp_tolerance or self.lockstep and off > 0.0:
            return True
        self.frames_discarded += 1
        self.get_logger().warning(
            f"discarded a {what} stamped {off:+.3f} s from this node's clock (tolerance "
            f"{self.stamp_tolerance:g} s): another clock, or a glitch", throttle_duration_sec=2.0)
        return False

    # -- control ----------------------------------------------------------------------------
    def _frame(self, t: float) -> None:
        if t < self._last_answer or t < self._episode_start - 1e-9:
            return  # an old frame, or one of the episode before (the simulator reset since)
        if t == self._last_answer:
            # Answered already (image and poses share a stamp). A lockstep simulator re-sends a frame
            # whose answer it missed: answer again with the same message.
            if self.lockstep and self._last_desired is not None:
                self.pub_desired.publish(self._last_desired)
            return
        js = self.joint_states.at(t, JOINT_STATE_WAIT)   # the arm as the frame saw it (a lagging camera)
        if js is None:
            self.get_logger().warning("no /joint_states yet: not acting", throttle_duration_sec=2.0)
            return
        if js.stamp < t - 1e-9:
            self.get_logger().warning(
                f"no joint state stamped at the frame ({t:.3f} s) after {JOINT_STATE_WAIT} s: acting on an "
                "older one (are the camera and the arm on one clock?)", throttle_duration_sec=5.0)
        try:
            q = self.order.reorder(js.name, js.position, "joint_states.position")
            qd = self.order.reorder(js.name, js.velocity, "joint_states.velocity")
        except JointInputError as err:
            self.get_logger().error(f"not acting on bad /joint_states: {err}", throttle_duration_sec=1.0)
            return
        period = 1.0 / self.rate_hz
        self._last_answer = t
        with self._lock:
            if t - self._last_tick >= period - 1e-6:
                self._last_tick = t
                self._tick(t, q, qd, period)
            else:
                self._republish(t)

    def _tick(self, t: float, q: np.ndarray, qd: np.ndarray, period: float) -> None:
        tip, _ = self.robot.tip_pose(q)
        obs = Observation(t, q, qd, tip, self._image, dict(self._objects), self._fresh_command(t))
        driver = self._driver()
        if driver is Driver.OPERATOR:   # their command (checked finite on arrival); none fresh: hold still
            if obs.command is None:     # ... and no label: what they wanted here is not known
                v = np.zeros(3)
            else:
                v = np.asarray(obs.command, dtype=float)
                self.pub_correction.publish(conv.twist_stamped(v, t))
                self.corrections += 1
        elif driver is Driver.LOST:
            v = np.zeros(3)
        else:
            v = self._policy_action(obs)
        dm = self.rr.step(q, v, t, period)
        self._publish_desired(dm, t)
        self.pub_action.publish(conv.twist_stamped(v, t))
        self.ticks += 1

    def _policy_action(self, obs: Observation) -> np.ndarray:
        try:
            v = np.asarray(self.policy.act(obs), dtype=float)
            if v.shape != (3,) or not np.all(np.isfinite(v)):
                raise ValueError(f"action {v.tolist()} is not 3 finite numbers")
        except Exception as err:  # a policy bug must not take the arm with it
            self.get_logger().error(f"policy '{self.policy_name}' failed, holding still: {err}",
                                    throttle_duration_sec=1.0)
            v = np.zeros(3)
        return v

    def _republish(self, t: float) -> None:
        dm = self.rr.reference_at(t)
        if dm is not None:
            self._publish_desired(dm, t)

    def _publish_desired(self, dm, t: float) -> None:
        self._last_desired = conv.desired_motion(self.robot.joint_names, dm.positions, dm.velocities,
                                                 dm.accelerations, t)
        self.pub_desired.publish(self._last_desired)


    def extra_nodes(self) -> list:
        return [self.control_node]

    def close(self) -> None:
        """Destroy the helper nodes (once): left alive, they would outlive this node in its context."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        self.clock_thread.close()
        self.joint_states.destroy()
        self.control_node.destroy_node()

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


def _seconds(value) -> float:
    """An episode's start_time, -inf when it has none usable (no episodes on a real arm)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return -np.inf


def main(args=None) -> int:
    return run_node(PolicyNode, args, errors=(RobotModelError, PolicyLoadError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
