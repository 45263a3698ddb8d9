"""The robot host's Fast DDS profile: who may talk to the arm when the graph spans two hosts.

SROS2 (DDS Security) would authenticate the policy host; the Fast DDS in the ROS 2 wheels is built
without it. What the middleware does offer, and this profile uses:

- UDP only on the interface that faces the policy host (and loopback; shared memory for this
  host's own processes): a host on any other network cannot even discover the robot's nodes.
- The torque path's subscriptions listen on loopback only, so only this host's processes reach
  them, the policy host included: torque commands, joint states and the clock never need to cross
  the link. The policy host's desired motion still does, to the controller, which checks it.

Used as FASTDDS_DEFAULT_PROFILES_FILE by every process on the robot host (docs/two_hosts.md).
"""

from __future__ import annotations

import re
from xml.sax.saxutils import quoteattr

from il_robot import topics

# Readers on the robot host that only that host's own processes may reach.
LOCAL_ONLY_TOPICS = (topics.EFFORT_COMMANDS, topics.JOINT_STATES, topics.CLOCK)

_INTERFACE = re.compile(r"^[\w.:@-]{1,15}$")   # a Linux interface name


def robot_host_profile(interface: str, local_only: tuple[str, ...] = LOCAL_ONLY_TOPICS) -> str:
    """The XML for FASTDDS_DEFAULT_PROFILES_FILE on the robot host; `interface` faces the policy host."""
    if not _INTERFACE.match(interface) or interface == "lo":
        raise ValueError(f"'{interface}' is not a network interface name (the one facing the policy host, "
                         f"e.g. eth1; `ip -br addr` lists them)")
    readers = "".join(f"""
    <data_reader profile_name={quoteattr(topic)}>
      <unicastLocatorList>
        <locator><udpv4><address>127.0.0.1</address></udpv4></locator>
      </unicastLocatorList>
    </data_reader>""" for topic in local_only)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- il_robot robot host: DDS on {interface} and loopback only; the torque path local-only.
     Written by `il-robot dds-profile`; see docs/two_hosts.md. -->
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>policy_link</transport_id>
        <type>UDPv4</type>
        <interfaces>
          <allowlist>
            <interface name={quoteattr(interface)} netmask_filter="AUTO"/>
            <interface name="lo"/>
          </allowlist>
        </interfaces>
      </transport_descriptor>
      <transport_descriptor>
        <transport_id>this_host</transport_id>
        <type>SHM</type>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="il_robot_robot_host" is_default_profile="true">
      <rtps>
        <useBuiltinTransports>false</useBuiltinTransports>
        <userTransports>
          <transport_id>this_host</transport_id>
          <transport_id>policy_link</transport_id>
        </userTransports>
      </rtps>
    </participant>{readers}
  </profiles>
</dds>
"""
