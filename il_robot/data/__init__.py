"""Demo bags and the training dataset built from them (ROS-free: rosbags + numpy, no rclpy, no torch).

- bag_format: the topics, types and rules of a demo bag (one episode per bag)
- messages:   standard messages from numpy, for writers that are not ROS nodes
- bag_writer: EpisodeBagWriter, one episode -> one rosbag2 directory (mcap or sqlite3)
- bag_reader: a bag -> numpy arrays, aligned per camera frame
- bag_check:  everything wrong with a bag, one line each
- dataset:    bags -> dataset directory (npz per episode + dataset.json), and load_dataset
"""
