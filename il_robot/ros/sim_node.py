"""Simulator node: the MuJoCo pushing world behind the same topics as a real arm.

Publishes /joint_states and /clock every physics step, the camera and the
object poses at camera rate; applies /effort_controller/commands. Two modes:
- realtime: steps on the wall clock, applies the latest torque (like hardware);
- lockstep: each step waits for the torque answering its joint state (and, with
  sync_policy, for the policy's answer to each frame), and the world holds
  between an episode's end and the next reset, so results do not depend on
  machine speed and a run replays: the evaluation mode.

Physics runs in a dedicated thread; in realtime mode a camera thread renders
(the GL context belongs to it), the torque commands arrive on a thread of their
own as CDR bytes, and the process runs at realtime priority but its renderer
(docs/realtime.md). Other ROS callbacks run in the executor thread; data is
handed over under a lock.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import rclpy
from geometry_msgs.msg import PoseArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from il_robot import topics
from il_robot.ros import cdr
from il_robot.ros import conversions as conv
from il_robot.ros.log_throttle import LogThrottle
from il_robot.ros.camera_worker import CameraWorker
from il_robot.ros.topic_thread import TopicThread
from il_robot.ros.latched import LATCHED_LATEST
from il_robot.ros.params import check_choices, declare
from il_robot.ros.runner import run_node
from il_robot.rates import CONTROL_RATE_HZ
from il_robot.ros.thread_priority import DEFAULT_PRIORITY, PRIORITY_RANGE, set_thread_priority
from il_robot.sim.tasks import GOAL_XY, MAX_SEED, TASK_SET_SIZES, make_task
from il_robot.sim.world import PushingWorld

MODES = ("realtime", "lockstep")
RETRANSMIT = 0.25    # s (wall): lockstep re-sends an unanswered state after this
LOCKSTEP_EPOCH = 2**20  # s (sim, ~12 days): lockstep episodes start on whole seconds from here
BRAKE_DAMPING = 5.0  # N m s/rad, while no controller drives the arm
ANSWER_WINDOW = 0.75  # realtime: the least part of a step the controller has from the state to the step
CAMERA_DRAIN_TIMEOUT = 0.5  # s (wall): realtime, the result waits this long for the episode's last frame
MAX_CAMERA_DELAY = 0.5      # s (sim): the longest camera_delay (a policy discards frames older than 0.5 s)


@dataclass
class LoopStats:
    """Control-loop figures of one episode, as the arm's side sees them.

    Realtime: a torque tick is missed when a physics step comes with no new
    command since the previous step (the arm would reuse a stale torque); it is
    late when the command answering this step's own joint state had not arrived
    yet (a one-cycle delay, normal across processes). Lockstep: a tick is missed
    when its answer needed a re-send. A policy frame is missed when no desired
    motion stamped at or after it arrived before the next frame. The longest gap is the
    longest sim time the arm ran on one torque command (one step when none was missed).
    """
    steps: int = 0
    torque_missed: int = 0
    torque_late: int = 0
    frames: int = 0
    policy_missed: int = 0
    missed_run: int = 0      # steps missed in a row, so far
    longest_run: int = 0     # ... the most in the episode
    longest_at: int = 0      # step where that run began
    started_wall: float = field(default_factory=time.monotonic)
    published: dict = field(default_factory=dict)   # topic -> messages published in the episode

    def tick(self, answered: bool, on_time: bool) -> None:
        self.steps += 1
        self.torque_missed += not answered
        self.torque_late += not on_time
        self.missed_run = 0 if answered else self.missed_run + 1
        if self.missed_run > self.longest_run:
            self.longest_run, self.longest_at = self.missed_run, self.steps - self.missed_run

    def as_dict(self, timestep: float) -> dict:
        return {"steps": self.steps, "torque_missed": self.torque_missed, "torque_late": self.torque_late,
                "longest_gap_ms": (self.longest_run + 1) * timestep * 1e3,
                "longest_gap_at": self.longest_at * timestep,
                "wall_time": time.monotonic() - self.started_wall,
                "frames": self.frames, "policy_missed": self.policy_missed}

    def count(self, topic: str, n: int = 1) -> None:
        self.published[topic] = self.published.get(topic, 0) + n


@dataclass
class Capture:
    """Realtime: what the camera captured at `stamp`, waiting until sim time reaches `due`
    (camera_delay later) to go out. Without poses it marks an ended episode's result, due with
    the episode's last frame."""
    due: float
    stamp: float
    poses: PoseArray | None = None
    snapshot: tuple | None = None   # (model, qpos) the camera thread draws; None without rendering
    counted: bool = False           # captured within the episode: counted in its `published`
    judged: bool = False            # taken by the policy-missed count (every counted frame but the end one)


class SimNode(Node):
    def __init__(self, **kwargs):
        super().__init__("sim", **kwargs)
        self.task_set = declare(self, "task_set", "heldout", "Task set of the next reset",
                                choices=tuple(TASK_SET_SIZES))
        self.task_index = declare(self, "task_index", 0, "Task of the next reset (within its task set's size: "
                                  + ", ".join(f"{k} {v}" for k, v in TASK_SET_SIZES.items()) + ")",
                                  int_range=(0, max(TASK_SET_SIZES.values()) - 1))
        self.seed = declare(self, "seed", 0, "Episode seed of the next reset (positions, start pose)",
                            int_range=(0, MAX_SEED))
        self.mode = declare(self, "mode", "realtime", "realtime (wall clock) or lockstep (deterministic)",
                            choices=MODES, read_only=True)
        self.camera_rate = declare(self, "camera_rate", CONTROL_RATE_HZ, "Camera and object-pose rate (Hz)",
                                   float_range=(1.0, 100.0), read_only=True)
        self.camera_delay = declare(self, "camera_delay", 0.0,
                                    "Realtime: camera latency (s, sim time). A frame (image, camera_info, "
                                    "object poses) is stamped when captured and published this much later",
                                    float_range=(0.0, MAX_CAMERA_DELAY), read_only=True)
        if self.camera_delay > 0 and self.mode != "realtime":
            raise ValueError(f"camera_delay {self.camera_delay:g} s needs mode realtime (a lockstep "
                             "simulator publishes each frame as it captures it, then waits for the answer)")
        clock_rate = declare(self, "clock_rate", 100.0, "/clock publish rate (Hz); stamps stay exact",
                             float_range=(1.0, 10000.0), read_only=True)
        width = declare(self, "image_width", 64, "Camera image width (px)", int_range=(16, 640), read_only=True)
        height = declare(self, "image_height", 64, "Camera image height (px)", int_range=(16, 480), read_only=True)
        self.render_enabled = declare(self, "render", True, "Render and publish camera images", read_only=True)
        self.episode_duration = declare(self, "episode_duration", 10.0, "Episode length (s, sim time)",
                                        float_range=(0.5, 600.0))
        self.auto_reset = declare(self, "auto_reset", False, "Start the next episode (seed + 1) when one ends")
        self.sync_policy = declare(self, "sync_policy", False,
                                   "Lockstep only: after each frame, wait for the policy's desired motion",
                                   read_only=True)
        self.response_timeout = declare(self, "response_timeout", 2.0,
                                        "Lockstep: warn after waiting this long (s, wall) for an answer",
                                        float_range=(0.01, 60.0))
        self.command_timeout = declare(self, "command_timeout", 0.1,
                                       "Realtime: torque older than this (s) -> brake (gravity comp + damping)",
                                       float_range=(0.002, 5.0))
        desired_topic = declare(self, "desired_topic", "",
                                "Desired motion watched by sync_policy and the policy-missed count "
                                "(JointTrajectory); '' = the controller's echo of what it took in lockstep "
                                f"({topics.CONTROLLER_REFERENCE}), the policy's output in realtime "
                                f"({topics.DESIRED_MOTION})", read_only=True)
        desired_topic = desired_topic or (topics.CONTROLLER_REFERENCE if self.mode == "lockstep"
                                          else topics.DESIRED_MOTION)
        self.thread_priority = declare(self, "thread_priority", DEFAULT_PRIORITY,
                                       "Realtime mode: realtime (SCHED_FIFO) priority of this process but its "
                                       "renderer (physics, torque commands, middleware); 0 = normal scheduling",
                                       int_range=PRIORITY_RANGE, read_only=True)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.world = PushingWorld(make_task(self.task_set, self.task_index), image_size=(height, width))
        self.n = len(self.world.joint_names)
        self.steps_per_frame = max(1, round(1.0 / (self.camera_rate * self.world.timestep)))
        self.steps_per_clock = max(1, round(1.0 / (clock_rate * self.world.timestep)))

        self._lock = threading.Lock()        # guards the world
        self._cv = threading.Condition()     # lockstep hand-over
        self._tau = np.zeros(self.n)
        self._tau_time = -np.inf             # sim time the latest torque arrived
        self._pending = 0                    # joint states published and not yet answered
        self._policy_stamp = -np.inf
        self._interrupt = False
        self._restart_frames = False
        self._stop = False
        self._last_sent: list = []
        self._last_state: bytes | None = None   # serialized (ros/cdr.py): no Python message per step
        self._log_throttle = LogThrottle(1.0)
        self.episode_id = 0
        self.episode_done = False
        self.bad_commands = 0
        self._commands_rx = 0                # torque commands received, ever
        self._rx_at_publish = 0              # ... when the latest state went out
        self._rx_at_step = 0                 # ... at the previous physics step
        self._frame_stamp = -np.inf          # latest camera frame (sim time)
        self._due: list[Capture] = []        # realtime: captures not yet published, in capture order
        self._ended: dict | None = None      # an ended episode whose result is not out yet
        self.loop = LoopStats()

        self.pub_js = self.create_publisher(JointState, topics.JOINT_STATES, 100)  # slack for recorders
        self.pub_clock = self.create_publisher(Clock, topics.CLOCK, 10)
        self.pub_image = self.create_publisher(Image, topics.IMAGE, 20)
        self.pub_info = self.create_publisher(CameraInfo, topics.CAMERA_INFO, 10)
        self.pub_objects = self.create_publisher(PoseArray, topics.OBJECT_POSES, 10)
        self.pub_episode = self.create_publisher(String, topics.EPISODE, LATCHED_LATEST)
        self.pub_result = self.create_publisher(String, topics.EPISODE_RESULT, LATCHED_LATEST)
        # The torque commands, on a thread of their own (see TopicThread): at 500 Hz the executor's
        # overhead per message would cost more than the physics.
        self.command_thread = TopicThread(self, "torque_commands", priority=self.realtime_priority())
        self.command_thread.subscribe(Float64MultiArray, topics.EFFORT_COMMANDS, self._on_command, 10, raw=True)
        self.topic_threads = [self.command_thread]
        self.command_thread.start()
        # Watched in both modes: sync_policy waits on it, and the loop figures count answers.
        self.create_subscription(JointTrajectory, desired_topic, self._on_desired, 10)
        self.create_service(Trigger, topics.SIM_RESET, self._srv_reset)
        self.create_service(Trigger, topics.SIM_NEXT_EPISODE, self._srv_next_episode)

        self.camera = None
        if self.render_enabled and self.mode == "realtime":
            self.camera = CameraWorker(height, width, self._publish_image)
        with self._lock:
            self._start_episode()
        self._thread = threading.Thread(target=self._loop, name="physics", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"pushing world, {self.mode} mode, physics {1 / self.world.timestep:.0f} Hz, camera "
            f"{self.camera_rate:g} Hz {width}x{height}{'' if self.render_enabled else ' (not rendered)'}"
            + (f", published {self.camera_delay * 1e3:g} ms after capture" if self.camera_delay else ""))

    # -- parameters and services ----------------------------------------------------
    def _on_set_parameters(self, params):
        result = check_choices(params, {"task_set": tuple(TASK_SET_SIZES)})
        if not result.successful:
            return result
        changes = {p.name: p.value for p in params}
        task_set = changes.get("task_set", self.task_set)
        task_index = changes.get("task_index", self.task_index)
        if not 0 <= task_index < TASK_SET_SIZES[task_set]:
            return SetParametersResult(successful=False, reason=(
                f"task_index {task_index} is outside task set '{task_set}' (0..{TASK_SET_SIZES[task_set] - 1})"))
        for p in params:
            if p.name in ("task_set", "task_index", "seed", "episode_duration", "auto_reset",
                          "response_timeout", "command_timeout"):
                setattr(self, p.name, p.value)
        return result

    def _start_episode(self) -> str:
        """Apply task_set / task_index / seed; caller holds the world lock."""
        task = make_task(self.task_set, self.task_index)
        self.world.use_task(task)
        if self._ended is not None:   # realtime: reset within camera_delay of the end, result not out yet
            self._publish_result(next_episode=False)   # without the frames still due
        self._due.clear()   # no frame of one episode is published into the next
        # A reset takes one camera period of sim time, and frames restart at the episode's start:
        # no stamp is shared by two episodes and frames keep at least a period apart, so nodes
        # that answer frames by stamp and rate never confuse the last frame of one episode with
        # the first of the next.
        self.world.clock += self.steps_per_frame * self.world.timestep
        if self.mode == "lockstep":
            # Contact dynamics are chaotic: the float rounding of the stamps alone moves a pushed
            # object by centimetres over an episode. Episodes start on a whole second within one
            # binade [2^20, 2^21) s, where every start + step time rounds alike: an episode replays
            # to the last bit however many episodes came before it and whenever its reset came.
            self.world.clock = max(float(LOCKSTEP_EPOCH), math.ceil(self.world.clock - 1e-9))
        self._restart_frames = True
        info = self.world.reset(self.seed)
        self.episode_id += 1
        self.episode_done = False
        self.loop = LoopStats()
        self._frame_stamp = -np.inf
        info["episode_id"] = self.episode_id
        info["episode_duration"] = self.episode_duration
        text = json.dumps(info)
        self.pub_episode.publish(String(data=text))
        self.get_logger().info(f"episode {self.episode_id}: task {task.name}, seed {self.seed}")
        with self._cv:
            self._interrupt = True
            self._cv.notify_all()
        return text

    def _srv_reset(self, request, response):
        try:
            with self._lock:
                response.message = self._start_episode()
            response.success = True
        except (ValueError, RuntimeError) as err:
            response.success, response.message = False, str(err)
            self.get_logger().error(f"reset refused: {err}")
        return response

    def _srv_next_episode(self, request, response):
        self.set_parameters([rclpy.parameter.Parameter("seed", value=self.seed + 1)])
        return self._srv_reset(request, response)

    # -- inputs -------------------------------------------------------------------------
    def _on_command(self, data: bytes) -> None:
        try:
            tau = conv.checked_effort(cdr.read_float64_array(data), self.n)
        except ValueError as err:
            self.bad_commands += 1
            if self._log_throttle.ready("bad command"):
                self.get_logger().error(f"ignored torque command: {err}")
            tau = None
        with self._cv:
            if tau is not None:
                self._tau = tau
                self._tau_time = self.world.clock
            unasked = self.mode == "lockstep" and self._pending == 0
            self._pending = max(0, self._pending - 1)
            self._commands_rx += 1
            self._cv.notify_all()
        if unasked:   # a second answer to one state: harmless after a re-send, else a sign of drift
            self.get_logger().info("lockstep: a torque command came with no state waiting for it",
                                   throttle_duration_sec=5.0)

    def _on_desired(self, msg: JointTrajectory) -> None:
        with self._cv:
            self._policy_stamp = max(self._policy_stamp, conv.from_time(msg.header.stamp))
            self._cv.notify_all()

    # -- physics thread -----------------------------------------------------------------
    def _wait(self, ready, what: str) -> bool | None:
        """Lockstep wait: True when answered at once, False when it took a re-send,
        None when interrupted by a reset or shutdown.

        A message published before its subscriber matched is lost (startup, a
        restarted node), so the last state is re-sent every RETRANSMIT seconds.
        """
        waited = 0.0
        with self._cv:
            while not ready():
                if self._stop or self._interrupt:
                    return None
                if not self._cv.wait(RETRANSMIT):
                    waited += RETRANSMIT
                    for pub, msg in self._last_sent:
                        pub.publish(msg)   # a retry: counted once, when first published
                    if waited >= self.response_timeout:
                        self.get_logger().warning(f"lockstep: still waiting for {what}",
                                                  throttle_duration_sec=5.0)
        return waited == 0.0

    def _publish_state(self, k: int) -> tuple[float, bool]:
        w = self.world
        t = w.clock
        self._last_state = cdr.joint_state(w.joint_names, w.q, w.qd, w.applied_torque, round(t * 1e9))
        sent = [(self.pub_js, self._last_state)]
        frame = k % self.steps_per_frame == 0
        ending = not self.episode_done and w.episode_time >= self.episode_duration - 1e-9
        realtime = self.mode == "realtime"
        if frame and not ending and not realtime:   # realtime: as the frame goes out (_publish_due)
            self._count_policy_answer()
            self._frame_stamp = t
        if frame:
            poses = PoseArray()
            poses.header.stamp = conv.to_time(t)
            poses.header.frame_id = "world"
            tgt, dis = w.object_pose("target"), w.object_pose("distractor")
            poses.poses = [conv.pose(tgt[:3], tgt[3:]), conv.pose(dis[:3], dis[3:]),
                           conv.pose((*GOAL_XY, 0.0))]
            if realtime:   # captured now, out when due (_publish_due): now, or camera_delay later
                counted = not self.episode_done
                self._due.append(Capture(t + self.camera_delay, t, poses,
                                         w.snapshot() if self.camera is not None else None,
                                         counted, counted and not ending))
            else:
                if self.render_enabled:  # lockstep: the frame goes out before the step waits on it
                    sent.append((self.pub_image, conv.image(w.render(), t)))
                    sent.append((self.pub_info, self._camera_info(t)))
                sent.append((self.pub_objects, poses))
        due = bool(self._due) and self._due[0].due <= t + 1e-9
        if frame or due or k % self.steps_per_clock == 0:   # a delayed frame goes out after its due clock
            sent.insert(0, (self.pub_clock, Clock(clock=conv.to_time(t))))
        with self._cv:
            self._rx_at_publish = self._commands_rx
        for pub, msg in sent:
            pub.publish(msg)
            if not self.episode_done and pub is not self.pub_clock:
                self.loop.count(pub.topic_name)
        self._last_sent = sent
        if ending:
            self._finish_episode()
        if realtime:
            self._publish_due(t)
        return t, frame

    def _publish_due(self, now: float) -> None:
        """Realtime: what the camera captured camera_delay ago goes out now, in capture order, like a
        camera pipeline's latency: the camera thread draws the pose captured then, and image,
        camera_info and object poses keep the capture's stamp (what a camera driver stamps). An
        ended episode's result follows its last frame."""
        while self._due and self._due[0].due <= now + 1e-9:
            c = self._due.pop(0)
            if c.poses is None:
                self._publish_result()   # the next episode (auto_reset) drops the frames still due
                continue
            if c.judged:
                self._count_policy_answer()
                self._frame_stamp = c.stamp
            if c.snapshot is not None:
                self._submit_frame(c.stamp, c.snapshot, c.counted)
            self.pub_objects.publish(c.poses)
            if c.counted:
                self.loop.count(self.pub_objects.topic_name)

    def _camera_info(self, t: float) -> CameraInfo:
        w = self.world
        return conv.camera_info(w.image_width, w.image_height, *w.camera_intrinsics(), t)

    def _submit_frame(self, t: float, snapshot: tuple, counted: bool) -> None:
        """Realtime: hand the frame captured at t to the camera thread. Image and camera_info of a frame
        captured within the episode are counted for it here, by stamp, like every other topic (the end
        frame included); a frame the camera drops is taken off again, and the episode's result waits
        until its last frame is out."""
        dropped = self.camera.submit(t, *snapshot)
        if not counted:
            return
        n = 1 if dropped is None or dropped < self.world.episode_start - 1e-9 else 0
        for topic in (self.pub_image.topic_name, self.pub_info.topic_name):
            self.loop.count(topic, n)

    def _publish_image(self, rgb: np.ndarray, t: float) -> None:
        """Camera thread (realtime mode): image, then its camera_info; counted at _submit_frame."""
        try:
            self.pub_image.publish(conv.image(rgb, t))
            self.pub_info.publish(self._camera_info(t))
        except Exception:  # noqa: BLE001
            if self.context.ok() and not self._stop:
                raise
            return   # Ctrl-C shut the context down under this thread: the frame is moot

    def _count_policy_answer(self) -> None:
        """Was the previous frame answered (desired motion stamped at or after it) before this one went
        out? Called as a frame is published: with camera_delay, at its stamp + delay, not at capture,
        so the policy has one camera period from receiving a frame to answering it, whatever the
        delay (the end-of-episode call judges the last frame by the time the end frame went out)."""
        if self._frame_stamp > -np.inf:
            with self._cv:
                answered = self._policy_stamp >= self._frame_stamp - 1e-9
            self.loop.frames += 1
            self.loop.policy_missed += not answered

    def _finish_episode(self) -> None:
        """Score the episode on its end state. Its result goes out once its last frame has: now in
        lockstep, camera_delay later in realtime (_publish_due)."""
        out = self.world.outcome()
        self.episode_done = True
        self._ended = {"episode_id": self.episode_id, "task": self.world.task.name,
                       "seed": self.world.episode_seed, "success": out.success,
                       "final_distance": out.final_distance, "duration": self.world.episode_time}
        if self.mode == "realtime":
            self._due.append(Capture(self.world.clock + self.camera_delay, self.world.clock))
        else:
            self._publish_result()

    def _publish_result(self, next_episode: bool = True) -> None:
        """The ended episode's result with what it published, then (auto_reset) the next episode."""
        if self.camera is not None and not self.camera.wait_idle(CAMERA_DRAIN_TIMEOUT):
            self.get_logger().warning(f"episode {self.episode_id}: its last camera frame was not out after "
                                      f"{CAMERA_DRAIN_TIMEOUT} s; the result may count it as published")
        self._count_policy_answer()
        self._frame_stamp = -np.inf
        result, self._ended = self._ended, None
        result.update(loop=self.loop.as_dict(self.world.timestep), published=dict(self.loop.published))
        self.pub_result.publish(String(data=json.dumps(result)))
        self.get_logger().info(f"episode {result['episode_id']} {'SUCCESS' if result['success'] else 'failure'}: "
                               f"target {result['final_distance'] * 100:.1f} cm from goal")
        if next_episode and self.auto_reset:
            self.seed += 1
            self._start_episode()

    def _torque(self) -> np.ndarray:
        """Latest command; the brake (gravity comp + damping) while none is fresh."""
        with self._cv:
            tau, tau_time = self._tau, self._tau_time
        if self.mode == "realtime" and self.world.clock - tau_time > self.command_timeout:
            return self.world.gravity_torque() - BRAKE_DAMPING * self.world.qd
        return tau

    def realtime_priority(self) -> int:
        """Lockstep waits for every answer: its threads need no realtime scheduling."""
        return self.thread_priority if self.mode == "realtime" else 0

    def background_threads(self) -> list[int]:
        """Threads run_node leaves on the default scheduler: the renderer."""
        return [self.camera.native_id] if self.camera is not None and self.camera.native_id else []

    def _loop(self) -> None:
        why_not = set_thread_priority(self.realtime_priority())
        if why_not:
            self.get_logger().warning(f"physics thread: {why_not}")
        try:
            self._run_physics()
        except Exception as err:  # noqa: BLE001
            if self.context.ok() and not self._stop:
                self.get_logger().fatal(f"physics thread stopped: {type(err).__name__}: {err}")
                raise
        finally:
            self.world.close()  # the GL context belongs to this thread

    def _await_answers(self, t: float, frame: bool) -> bool | None:
        """Lockstep: wait until the state published at `t` is answered, so that the torque now
        held is the one a replay would hold. True when answered without a re-send, False when
        it took one, None when a reset or shutdown interrupted.

        Two races between processes are closed here. (1) On a frame, the controller may answer
        the state before the policy's answer to that frame reaches it: that torque is taken,
        the simulator waits until the controller echoes the policy's answer (desired_topic),
        and sends the state again; the second answer tracks the new reference, as in-process
        rollouts do. (2) After a re-send (a slow peer), the controller may answer twice, and a
        late duplicate would be taken for the next state's torque: answers are drained for one
        re-send period, and the state is sent once more for a fresh answer.
        """
        def torque() -> bool | None:
            return self._wait(lambda: self._pending == 0, f"a torque command on {topics.EFFORT_COMMANDS}")

        fresh = retried = False
        if frame and self.sync_policy:
            policy = self._wait(lambda: self._policy_stamp >= t - 1e-9,
                                "the policy's desired motion, as the controller took it")
            if policy is None:
                return None
            fresh = True
            retried = not policy   # the frame's re-send carried the state too
        answer = torque()
        if answer is None:
            return None
        prompt = answer
        retried = retried or not answer
        while fresh or retried:
            with self._cv:
                if retried:   # answers to the re-sends land here and are dropped
                    self._cv.wait_for(lambda: self._stop or self._interrupt, RETRANSMIT)
                    self._pending = 0
                self._pending += 1
            self.pub_js.publish(self._last_state)   # a re-send: counted once, when first sent
            answer = torque()
            if answer is None:
                return None
            fresh, retried = False, not answer
        return prompt

    def _run_physics(self) -> None:
        lockstep = self.mode == "lockstep"
        k = 0
        next_wall = time.monotonic()
        while not self._stop:
            # A reset (service thread, under the world lock) lands either before this block, and the
            # state published is the new episode's first, or after it, and interrupts the waits.
            with self._lock:
                with self._cv:
                    self._interrupt = False
                    if self._restart_frames:
                        k, self._restart_frames = 0, False
                    if lockstep:
                        self._pending += 1
                t, frame = self._publish_state(k)
            published = time.monotonic()
            if lockstep:
                prompt = self._await_answers(t, frame)
                if prompt is None:
                    continue
                answered = on_time = prompt
                if self.episode_done:
                    # Lockstep holds between episodes, so the next one starts at the same sim time
                    # however long the reset takes to come.
                    with self._cv:
                        self._cv.wait_for(lambda: self._stop or self._interrupt)
                    continue
            else:
                # The controller always gets most of a period from the state going out; a step this
                # thread began late (a busy machine) shifts the schedule rather than shortening that
                # window: the simulator then runs a little behind the wall clock (real_time_factor).
                next_wall = max(next_wall + self.world.timestep, published + ANSWER_WINDOW * self.world.timestep)
                delay = next_wall - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -0.1:
                    next_wall = time.monotonic()  # fell behind: do not try to catch up in a burst
                with self._cv:
                    answered = self._commands_rx > self._rx_at_step
                    on_time = self._commands_rx > self._rx_at_publish
                    self._rx_at_step = self._commands_rx
            with self._lock:
                with self._cv:
                    if self._interrupt:   # reset after the answer came: the new start state is not out yet
                        continue
                self.world.step(self._torque())
                if not self.episode_done:
                    self.loop.tick(answered, on_time)
            k += 1

    def close(self) -> None:
        for thread in self.topic_threads:
            thread.close()
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join(timeout=2.0)
        if self.camera is not None:
            self.camera.close()

    def destroy_node(self) -> None:
        self.close()   # the threads use this node's handles
        super().destroy_node()


def main(args=None) -> int:
    return run_node(SimNode, args, errors=(ValueError, RuntimeError))


if __name__ == "__main__":
    sys.exit(main())
