"""Exit codes the nodes and launchers agree on (ROS-free)."""

# A node that cannot start (bad parameter, missing file) exits with this code (sysexits' EX_CONFIG):
# both launchers then stop the graph, so a configuration error never leaves the rest running on.
EXIT_CANNOT_START = 78
