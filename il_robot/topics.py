"""Topic and service names shared by nodes, tools and tests (ROS-free constants)."""

JOINT_STATES = "/joint_states"
IMAGE = "/camera/image_raw"
CAMERA_INFO = "/camera/camera_info"
EFFORT_COMMANDS = "/effort_controller/commands"
DESIRED_MOTION = "/desired_joint_motion"        # trajectory_msgs/JointTrajectory, one point
CONTROLLER_REFERENCE = "/inverse_dynamics/reference"   # JointTrajectory: desired motion the controller took
TIP_VELOCITY = "/tip_velocity_command"          # geometry_msgs/TwistStamped: the policy's action
POLICY_PROVIDER = "~/active_provider"           # std_msgs/String, latched: onnxruntime provider in use
CLOCK = "/clock"
OBJECT_POSES = "/sim/object_poses"              # geometry_msgs/PoseArray: target, distractor, goal
EPISODE = "/sim/episode"                        # std_msgs/String, JSON; latched
EPISODE_RESULT = "/sim/episode_result"          # std_msgs/String, JSON; latched
SIM_RESET = "/sim/reset"                        # std_srvs/Trigger
SIM_NEXT_EPISODE = "/sim/next_episode"          # std_srvs/Trigger
TELEOP_CMD = "/teleop/cmd_vel"                  # geometry_msgs/TwistStamped: an operator's tip velocity
OPERATOR = "/teleop/operator"                   # std_msgs/String, JSON {"operator", "skill", ...}; latched
JOY = "/joy"                                    # sensor_msgs/Joy from a joy / spacenav driver
TAKEOVER = "/teleop/takeover"                   # std_msgs/Bool: the operator holds the takeover (human-gated DAgger)
CORRECTION = "/teleop/correction"               # geometry_msgs/TwistStamped: the operator's command executed at a
                                                # frame while they had taken over from the policy (the label)
