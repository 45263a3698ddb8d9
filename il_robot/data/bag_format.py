"""What a demo bag holds: one episode, standard message types, the topics below.

The recorder (ROS), the in-process data generator and the dataset builder all
read these constants, so the format is written down once.
"""

from __future__ import annotations

from typing import NamedTuple

from il_robot import topics
from il_robot.rates import CONTROL_RATE_HZ
from il_robot.robot.panda_like import JOINT_NAMES

TELEOP_CMD = topics.TELEOP_CMD       # geometry_msgs/TwistStamped: raw operator command
CORRECTION = topics.CORRECTION       # geometry_msgs/TwistStamped: the operator's command at a frame they took over
OPERATOR = topics.OPERATOR           # std_msgs/String, JSON {"operator", "skill", ...}

TYPESTORE = "ros2_kilted"           # rosbags.typesys.Stores value; standard messages as in Jazzy/Kilted
STORAGES = ("mcap", "sqlite3")
DEFAULT_STORAGE = "mcap"

IMAGE_ENCODING = "rgb8"
JOINT_ORDER = JOINT_NAMES           # panda_joint1..7; bags are matched by name, never by position
SPLITS = ("train", "val", "heldout")  # an episode's split is its task's task set
SKILLS = ("expert", "okay", "poor", "unknown")


class TopicSpec(NamedTuple):
    topic: str
    msgtype: str
    required: bool


DEMO_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(topics.JOINT_STATES, "sensor_msgs/msg/JointState", True),
    TopicSpec(topics.IMAGE, "sensor_msgs/msg/Image", True),
    TopicSpec(topics.CAMERA_INFO, "sensor_msgs/msg/CameraInfo", False),
    TopicSpec(topics.TIP_VELOCITY, "geometry_msgs/msg/TwistStamped", True),   # the action label
    TopicSpec(topics.DESIRED_MOTION, "trajectory_msgs/msg/JointTrajectory", False),
    TopicSpec(TELEOP_CMD, "geometry_msgs/msg/TwistStamped", False),
    TopicSpec(topics.OBJECT_POSES, "geometry_msgs/msg/PoseArray", False),
    TopicSpec(topics.EPISODE, "std_msgs/msg/String", True),
    TopicSpec(topics.EPISODE_RESULT, "std_msgs/msg/String", False),
    TopicSpec(OPERATOR, "std_msgs/msg/String", False),
    TopicSpec(CORRECTION, "geometry_msgs/msg/TwistStamped", False),   # only while an operator has taken over
)

MSGTYPES: dict[str, str] = {s.topic: s.msgtype for s in DEMO_TOPICS}
REQUIRED_TOPICS: tuple[str, ...] = tuple(s.topic for s in DEMO_TOPICS if s.required)

# Nominal rates (Hz) of the streamed topics; the JSON topics come once per episode.
NOMINAL_RATES: dict[str, float] = {
    topics.JOINT_STATES: 500.0, topics.IMAGE: CONTROL_RATE_HZ, topics.CAMERA_INFO: CONTROL_RATE_HZ,
    topics.TIP_VELOCITY: CONTROL_RATE_HZ, topics.DESIRED_MOTION: CONTROL_RATE_HZ, TELEOP_CMD: CONTROL_RATE_HZ,
    topics.OBJECT_POSES: CONTROL_RATE_HZ,
}

# Published latched (transient local) by their nodes: recorded with that QoS so `ros2 bag play`
# republishes them latched too.
LATCHED_TOPICS: tuple[str, ...] = (topics.EPISODE, topics.EPISODE_RESULT, OPERATOR)

# Keys of the /sim/episode JSON that the dataset needs (PushingWorld.reset() + recorder keys).
EPISODE_REQUIRED_KEYS = ("task", "seed", "start_time")
EPISODE_TASK_REQUIRED_KEYS = ("name", "task_set")

# Alignment of one training sample per camera frame.
JOINT_STATE_MAX_AGE = 0.05      # s: the joint state used for a frame is at most this old
ACTION_MATCH_TOLERANCE = 0.001  # s: an action answers the frame whose stamp is this close
JOINT_GAP_FACTOR = 10.0         # a joint-state gap > this x median period is a problem
IMAGE_GAP_FACTOR = 3.0          # an image gap > this x median period is a problem

# The recorder's verdict on an episode bag, in metadata.yaml custom_data. "incomplete": the bag
# lacks the episode's result or differs from what the simulator says it published; `dataset check`
# and `dataset build` refuse it. Bags written by other tools carry no verdict.
RECORDING_KEY = "il_robot.recording"
RECORDING_COMPLETE, RECORDING_INCOMPLETE = "complete", "incomplete"
RECORDING_PROBLEMS_KEY = "il_robot.recording_problems"
INCOMPLETE_SUFFIX = "_incomplete"   # the recorder names flagged bags <name>_incomplete
