"""Inverse-dynamics node: /joint_states + desired motion -> /effort_controller/commands.

One torque command per joint-state message (event driven: lowest latency, and
the torque loop runs at the driver's rate), answered on a thread of its own off
rclpy's executor, from the message's bytes, at realtime priority
(docs/realtime.md). Freshness is judged on this node's
own clock, by when each message arrived, with the clock's jumps taken out
(ElapsedClock); header stamps are the sender's claim and only checked. A
steady-clock watchdog catches states that stop, and a sim clock that stops.
Each fault's safe state is in docs/safety.md; a command that is not finite or
beyond a limit is never published.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from il_robot import topics
from il_robot.elapsed_clock import ElapsedClock
from il_robot.robot.computed_torque import ComputedTorqueController, JointInputError, Mode, StaleReference
from il_robot.robot.model import RobotModel, RobotModelError
from il_robot.ros import cdr
from il_robot.ros import conversions as conv
from il_robot.ros.log_throttle import LogThrottle
from il_robot.ros.params import declare
from il_robot.ros.thread_priority import DEFAULT_PRIORITY, PRIORITY_RANGE
from il_robot.ros.topic_thread import TopicThread
from il_robot.ros.runner import run_node

CLOCK_JUMP_TOLERANCE = 0.025   # s the clock may move beyond steady time between two readings (coarse /clock)
LOGGED_FORWARD_JUMP = 1.0      # s: forward jumps from here on are logged (a lockstep reset is one)
KP_RANGE = (0.0, 10000.0)      # 1/s^2
LOG_PERIOD = 1.0               # s between two log lines of one kind of fault on the torque path
KD_RANGE = (1.0, 1000.0)       # 1/s: some damping always (it also enforces the speed limits)


class InverseDynamicsNode(Node):
    def __init__(self, **kwargs):
        super().__init__("inverse_dynamics", **kwargs)
        description = declare(self, "robot_description", "",
                              "MJCF or URDF: a file path or the XML itself; empty = built-in Panda-like arm",
                              read_only=True)
        joints = declare(self, "joints", [""],
                         "Controlled joints in the effort controller's order; [''] = all joints of the model. "
                         "/joint_states may name more (a gripper): those are ignored", read_only=True)
        velocity_limits = declare(self, "velocity_limits", [0.0],
                                  "Joint speed limits (rad/s), one for all or one per joint; [0.0] = the "
                                  "built-in arm's datasheet values by joint name", read_only=True)
        kp = declare(self, "kp", [400.0], "Position gains (1/s^2): one value for all joints, or one per joint",
                     float_range=KP_RANGE)
        kd = declare(self, "kd", [40.0], "Velocity gains (1/s): one value for all joints, or one per joint",
                     float_range=KD_RANGE)
        js_timeout = declare(self, "joint_state_timeout", 0.05,
                             "Joint states older than this (s, this node's clock) -> stop commanding",
                             float_range=(0.002, 5.0))
        self.joint_state_wall_timeout = declare(self, "joint_state_wall_timeout", 1.0,
                                    "Joint states or a sim /clock still for this long (s, steady clock) -> "
                                    "stop commanding (the guard when the sim clock itself stops; a realtime "
                                    "sim on a busy 2-core machine stalls for up to ~0.6 s)",
                                    float_range=(0.01, 10.0))
        dm_timeout = declare(self, "desired_timeout", 0.5,
                             "Desired motion older than this (s) -> hold the pose with gravity compensation",
                             float_range=(0.01, 10.0))
        max_extrap = declare(self, "max_extrapolation", 0.2,
                             "How far (s) a desired point is extrapolated along its velocity from its "
                             "stamp (a policy stamps it with its camera frame's capture time: this covers "
                             "a camera lag of up to ~0.15 s at a 20 Hz policy)",
                             float_range=(0.0, 1.0))
        self.stamp_tolerance = declare(self, "stamp_tolerance", 0.5,
                                       "Header stamps further than this (s) from this node's clock are "
                                       "flagged (joint states) or rejected (desired motion)",
                                       float_range=(0.01, 60.0))
        self.thread_priority = declare(self, "thread_priority", DEFAULT_PRIORITY,
                                       "Realtime (SCHED_FIFO) priority of this node's process (the torque "
                                       "path, middleware threads included); 0 = normal scheduling",
                                       int_range=PRIORITY_RANGE, read_only=True)
        watchdog_rate = declare(self, "watchdog_rate", 100.0, "Watchdog check rate (Hz, steady clock)",
                                float_range=(1.0, 1000.0), read_only=True)
        self.lockstep = declare(self, "lockstep", False,
                                "Simulator only (the lockstep launch sets it), never on a real arm: echo each "
                                "reference taken on reference_topic, and send nothing when states stop (a "
                                "lockstep simulator takes any command as an answer); no steady-clock guard",
                                read_only=True)
        desired_topic = declare(self, "desired_topic", topics.DESIRED_MOTION,
                                "Desired joint motion (trajectory_msgs/JointTrajectory)", read_only=True)
        command_topic = declare(self, "command_topic", topics.EFFORT_COMMANDS,
                                "Torque output (std_msgs/Float64MultiArray)", read_only=True)
        reference_topic = declare(self, "reference_topic", topics.CONTROLLER_REFERENCE,
                                  "lockstep: each desired motion once taken (the simulator waits on it)",
                                  read_only=True)

        joint_names = [j for j in joints if j] or None
        limits = [v for v in velocity_limits if v != 0.0] or None
        self.robot = RobotModel.load(description, joint_names, velocity_limits=limits)
        unknown = [n for n, v in zip(self.robot.joint_names, self.robot.limits.qd_max) if not np.isfinite(v)]
        if unknown:
            raise RobotModelError(f"no speed limit known for joint(s) {unknown}: set velocity_limits (rad/s)")
        self.controller = ComputedTorqueController(self.robot, self._gains(kp, KP_RANGE, "kp"),
                                                   self._gains(kd, KD_RANGE, "kd"),
                                                   js_timeout, dm_timeout, max_extrap)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.sim_time = self.get_parameter("use_sim_time").value
        self.clock = ElapsedClock(CLOCK_JUMP_TOLERANCE)
        self._clock_raw = -np.inf
        self._state_elapsed = -np.inf          # lockstep: when (elapsed) the latest joint state came
        self._clock_moved = time.monotonic()   # steady time the node's clock last moved on
        self._state_steady = -np.inf          # steady time the latest valid joint state arrived
        self._known_names: set[tuple[str, ...]] = set()
        self.mode: Mode | None = None
        self.commands_sent = 0
        self.rejected = 0
        self.stale_refused = 0   # desired motions from before a pose jump (a reset): refused, not malformed
        self.stamps_flagged = 0
        self.clock_jumps = 0
        self.watchdog_ticks = 0

        self.pub = self.create_publisher(Float64MultiArray, command_topic, 10)
        self.pub_reference = (self.create_publisher(JointTrajectory, reference_topic, 10)
                              if self.lockstep else None)
        # The torque path runs on a thread of its own: /clock, desired motion and joint states, in
        # that order when several wait (as the executor took them), off the executor, whose overhead
        # per message would cost more than the controller itself. The watchdog runs in that thread
        # too, on the steady clock: on sim time a timer on the node's clock would stop with /clock.
        # The executor is left the parameters.
        self._lock = threading.Lock()   # the controller: torque thread, parameters
        self._log_throttle = LogThrottle(LOG_PERIOD)
        # Joint states come as bytes, read with numpy (ros/cdr.py): a Python message costs more than the
        # control. Lockstep keeps the executor, one callback at a time in arrival order: there speed does
        # not matter, and with the torque thread a replay was not bit-exact (the order in which /clock,
        # desired motion and states were taken differed from run to run; not pinned down).
        self.topic_threads: list[TopicThread] = []
        if self.lockstep:
            self.create_subscription(JointTrajectory, desired_topic, self._on_desired, 10)
            self.create_subscription(JointState, topics.JOINT_STATES, self._on_joint_state, 10, raw=True)
            self.create_timer(1.0 / watchdog_rate, self._watchdog, clock=Clock(clock_type=ClockType.STEADY_TIME))
        else:
            self.torque_thread = TopicThread(self, "torque", on_idle=self._watchdog,
                                             idle_period=1.0 / watchdog_rate, priority=self.realtime_priority())
            self.torque_thread.follow_clock()
            self.torque_thread.subscribe(JointTrajectory, desired_topic, self._on_desired, 10)
            self.torque_thread.subscribe(JointState, topics.JOINT_STATES, self._on_joint_state, 10, raw=True)
            self.topic_threads.append(self.torque_thread)
            self.torque_thread.start()
        self.get_logger().info(
            f"computed-torque control of {self.robot.joint_names}; torque limits "
            f"{np.round(self.robot.limits.tau_max, 1).tolist()} Nm, speed limits "
            f"{np.round(self.robot.limits.qd_max, 2).tolist()} rad/s; '{desired_topic}' -> '{command_topic}'"
            + (" (lockstep handshake on)" if self.lockstep else ""))

    # -- parameters -----------------------------------------------------------------------
    def _gains(self, values, bounds: tuple[float, float], name: str) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        if values.size not in (1, self.robot.n):
            raise ValueError(f"{name} needs 1 or {self.robot.n} values, got {values.size}")
        if not np.all((values >= bounds[0]) & (values <= bounds[1])):
            raise ValueError(f"{name} values must lie in [{bounds[0]:g}, {bounds[1]:g}], got {values.tolist()}")
        return values if values.size > 1 else np.full(self.robot.n, values[0])

    def _on_set_parameters(self, params) -> SetParametersResult:
        with self._lock:
            return self._set_parameters(params)

    def _set_parameters(self, params) -> SetParametersResult:
        kp, kd = self.controller.kp, self.controller.kd
        try:
            for p in params:
                if p.name == "kp":
                    kp = self._gains(p.value, KP_RANGE, "kp")
                elif p.name == "kd":
                    kd = self._gains(p.value, KD_RANGE, "kd")
                elif p.name in ("joint_state_timeout", "desired_timeout", "max_extrapolation"):
                    setattr(self.controller, p.name, p.value)
                elif p.name in ("joint_state_wall_timeout", "stamp_tolerance"):
                    setattr(self, p.name, p.value)
            self.controller.set_gains(kp, kd)
        except ValueError as err:
            return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    # -- time -------------------------------------------------------------------------------
    def _read_clock(self) -> tuple[float, float, float]:
        """(elapsed, clock, steady): the jump-free timeline every age is measured on, this node's
        clock (sim or system time, to check stamps against) and the steady clock. A clock that
        went back drops the reference: it belonged to the time before (a restarted simulator or
        driver), and tracking it would drive the arm to where it was then."""
        raw = self.get_clock().now().nanoseconds * 1e-9
        steady = time.monotonic()
        elapsed, jump = self.clock.update(raw, steady)
        started = self._clock_raw > 0.0   # on sim time the clock reads 0 until the first /clock
        if raw != self._clock_raw:
            self._clock_raw, self._clock_moved = raw, steady
        if jump is not None and started:
            self.clock_jumps += 1
            if jump.backwards:
                self.controller.drop_reference()
                self.get_logger().warning(
                    f"clock jumped back by {-jump.delta:.3f} s (a restarted simulator or driver?): "
                    "reference dropped, holding the measured pose")
            elif jump.delta >= LOGGED_FORWARD_JUMP:
                self.get_logger().info(f"clock jumped forward by {jump.delta:.3f} s (not counted as elapsed)")
        return elapsed, raw, steady

    @staticmethod
    def _elapsed_at(stamp: float, now: float, elapsed: float) -> float:
        """A time stamped on this node's clock, on the elapsed timeline: `elapsed` less its age."""
        return elapsed - (now - stamp)

    def _stamp_offset(self, stamp: float, now: float) -> float | None:
        """How far a stamp lies from this node's clock, when beyond the tolerance."""
        off = stamp - now
        return off if abs(off) > self.stamp_tolerance else None

    # -- inputs -------------------------------------------------------------------------------
    def _on_joint_state(self, msg: bytes) -> None:
        with self._lock:
            self._handle_joint_state(msg)

    def _handle_joint_state(self, data: bytes) -> None:
        elapsed, now, steady = self._read_clock()
        try:
            msg = cdr.read_joint_state(data)
            before = self.controller.state_time
            off = self._stamp_offset(msg.stamp, now)
            # Realtime: the state's own instant times a pose jump, as desired points are timed; one
            # stamped on another clock counts from its arrival.
            measured_at = None if self.lockstep or off is not None else self._elapsed_at(msg.stamp, now, elapsed)
            event = self.controller.set_joint_state(msg.name, msg.position, msg.velocity,
                                                    msg.stamp if self.lockstep else elapsed, measured_at)
        except (JointInputError, ValueError) as err:
            self.rejected += 1
            if self._log_throttle.ready("rejected state"):
                self.get_logger().error(f"rejected /joint_states: {err}")
            return
        self._state_steady = steady
        if self.lockstep:
            self._lockstep_state(msg.stamp, before, elapsed)
        names = tuple(msg.name)
        if names not in self._known_names:
            self._known_names.add(names)
            extra = self.controller.order.extra(names)
            if extra:
                self.get_logger().info(f"/joint_states also names {extra}: not controlled here, ignored")
        if off is not None:
            self.stamps_flagged += 1
            if self._log_throttle.ready("stamp"):
                self.get_logger().warning(
                    f"/joint_states stamped {off:+.3f} s from this node's clock (another clock?); freshness "
                    "is judged by arrival, the stamp is not used")
        if event:
            self.get_logger().warning(event)
        self._act(msg.stamp if self.lockstep else elapsed, elapsed, steady)

    def _lockstep_state(self, stamp: float, before: float, elapsed: float) -> None:
        """Lockstep times the controller by the states' own stamps, not by this node's clock.

        The simulator is then the only clock and its stamps are exact; this node's clock follows
        /clock, another topic, and whether a step's /clock came in before or after that step's
        state differs from run to run, and with it the reference's extrapolation and the torque
        (a replay off by a millimetre). A state stamped before the last one is a restarted
        simulator: the reference belonged to the time before. One that comes after a gap (a reset,
        a pause) re-anchors the hold where the arm is now, as states that come back after a stop do.
        Staleness stays judged on this node's clock (_stale)."""
        ctl = self.controller
        if stamp < before - 1e-9:
            ctl.drop_reference()
        elif stamp - before > ctl.joint_state_timeout:
            ctl.hold_q = None
        self._state_elapsed = elapsed

    def _on_desired(self, msg: JointTrajectory) -> None:
        with self._lock:
            self._handle_desired(msg)

    def _handle_desired(self, msg: JointTrajectory) -> None:
        elapsed, now, _ = self._read_clock()
        if self.lockstep:   # on the states' timeline (_lockstep_state); /clock may lag the newest state
            now = max(now, self.controller.state_time)
        if len(msg.points) != 1:
            self._reject_desired(f"need exactly 1 point, got {len(msg.points)}")
            return
        point = msg.points[0]
        stamp = conv.from_time(msg.header.stamp)
        if stamp > 0.0:   # unstamped: from its arrival
            off = self._stamp_offset(stamp, now)
            if off is not None:
                self._reject_desired(f"stamped {off:+.3f} s from this node's clock (tolerance "
                                     f"{self.stamp_tolerance:g} s): another clock, or a reference from before "
                                     "a restart")
                return
        point_time = stamp + conv.from_time(point.time_from_start) if stamp > 0.0 else None
        if self.lockstep:   # the point's own time, exactly (elapsed less its age would round)
            t_point = now if point_time is None else point_time
            t_received = now
        else:
            t_point = elapsed if point_time is None else self._elapsed_at(point_time, now, elapsed)
            t_received = elapsed
        try:
            self.controller.set_desired(msg.joint_names, point.positions, point.velocities,
                                        point.accelerations, t_point, t_received)
        except JointInputError as err:
            self._reject_desired(str(err))
            return
        except StaleReference as err:
            self.stale_refused += 1
            if self._log_throttle.ready("stale desired"):
                self.get_logger().info(f"refused a desired motion from before the pose jump ({err}): holding "
                                       "until a newer one comes")
            return
        if self.pub_reference is not None:
            # Every joint state handled from here on is answered with this reference: a lockstep
            # simulator waits for this echo before it asks for the torque of a frame's state.
            self.pub_reference.publish(msg)

    def _reject_desired(self, why: str) -> None:
        self.rejected += 1
        if self._log_throttle.ready("rejected desired"):
            self.get_logger().error(f"rejected desired motion: {why}")

    # -- output --------------------------------------------------------------------------------
    def _stale(self, elapsed: float, steady: float) -> str | None:
        """Why there is no fresh state to act on, or None."""
        ctl = self.controller
        if self.lockstep:   # the controller runs on the states' stamps; their age is on this node's clock
            if ctl.q is None:
                return "no /joint_states yet"
            age = elapsed - self._state_elapsed
            # (a lockstep simulator may pause for as long as it likes: no steady-clock guard)
            return f"no fresh /joint_states for {age:.3f} s" if age > ctl.joint_state_timeout else None
        if ctl.mode(elapsed) is Mode.STALE:   # the controller's own rule: none yet, or older than its timeout
            return "no /joint_states yet" if ctl.q is None else \
                f"no fresh /joint_states for {elapsed - ctl.state_time:.3f} s"
        if steady - self._state_steady > self.joint_state_wall_timeout:
            return f"no /joint_states for {steady - self._state_steady:.3f} s of steady time"
        if self.sim_time and steady - self._clock_moved > self.joint_state_wall_timeout:
            return f"/clock has not moved for {steady - self._clock_moved:.3f} s (simulator stopped?)"
        return None

    def _watchdog(self) -> None:
        with self._lock:
            self.watchdog_ticks += 1
            elapsed, _, steady = self._read_clock()
            reason = self._stale(elapsed, steady)
            if reason and self.controller.q is not None:
                self._enter_stale(reason)

    def _enter_stale(self, reason: str) -> None:
        """Stop commanding: once, the float command (gravity of the last measured pose, no feedback)
        unless lockstep, then nothing, so a driver's command timeout engages its brakes."""
        if self.mode is Mode.STALE:
            return
        self.controller.hold_q = None   # states that come back re-anchor the hold where the arm is then
        tau = None if self.lockstep else self.controller.float_command()
        if tau is not None:
            self._send(tau)
        self.mode = Mode.STALE
        self.get_logger().error(f"{reason}: stopped commanding torque"
                                + ("" if tau is None else " (last command: gravity of the last measured pose)"))

    def _act(self, t: float, elapsed: float, steady: float) -> None:
        """The torque for the state just taken, at t on the controller's timeline (elapsed, or the
        state's stamp in lockstep)."""
        reason = self._stale(elapsed, steady)
        if reason:
            self._enter_stale(reason)
            return
        tau, mode = self.controller.command(t)
        if tau is None:
            self.rejected += 1
            if self._log_throttle.ready("not finite"):
                self.get_logger().error("computed torque is not finite: not published")
            return
        if mode is not self.mode:
            log = self.get_logger()
            if mode is Mode.HOLD:
                log.warning("no fresh desired motion: holding the measured pose (gravity compensated)")
            else:
                log.info("tracking desired motion")
            self.mode = mode
        self._send(tau)

    def _send(self, tau: np.ndarray) -> None:
        self.pub.publish(cdr.float64_array(tau))   # serialized here: no Python message object
        self.commands_sent += 1

    def realtime_priority(self) -> int:
        """The whole process is the torque path; a lockstep simulator waits for it, no deadline."""
        return 0 if self.lockstep else self.thread_priority

    def destroy_node(self) -> None:
        for thread in self.topic_threads:   # they use this node's handles
            thread.close()
        super().destroy_node()


def main(args=None) -> int:
    return run_node(InverseDynamicsNode, args, errors=(RobotModelError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
