"""EpisodeClient's rollout video: one frame per camera stamp, through real rclpy topics."""

import numpy as np
import rclpy
from sensor_msgs.msg import Image

from conftest import wait_until
from il_robot import topics
from il_robot.ros import conversions as conv
from il_robot.ros.episode_client import EpisodeClient


def test_a_re_sent_frame_is_one_frame_of_the_video(ros):
    """A lockstep simulator re-sends an unanswered step's frame (same stamp, same pixels): the video
    gets it once, and frames outside the episode's [start, end) stay out."""
    client = ros.add(EpisodeClient("episode_client_test", record_frames=True, context=ros.context))
    camera = ros.add(rclpy.create_node("camera_test", context=ros.context))
    pub = camera.create_publisher(Image, topics.IMAGE, 100)
    wait_until(lambda: pub.get_subscription_count() > 0 and client.count_publishers(topics.IMAGE) > 0,
               timeout=30, what="the camera and the client to match")
    start = 1_048_576.0
    stamps = [start - 0.05, start, start + 0.05, start + 0.05, start + 0.10, start + 0.15]   # a re-send
    for k, t in enumerate(stamps):
        pub.publish(conv.image(np.full((4, 4, 3), 10 * k, np.uint8), t))
    # One publisher, reliable and in order: once the last stamp is heard, all are.
    wait_until(lambda: client.frames_between(start + 0.15, start + 0.2), timeout=30, what="the last frame")

    frames = client.frames_between(start, start + 0.15)
    assert [int(f[0, 0, 0]) for f in frames] == [10, 20, 40]   # in stamp order, the re-send kept out
