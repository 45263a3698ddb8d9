"""il-robot bench: figures for the inverse dynamics, the simulator, the ROS torque loop, a live swap, and PlaNet."""

from __future__ import annotations

import time

import numpy as np

from il_robot.rates import CONTROL_RATE_HZ

BENCHES = ("id", "sim", "loop", "swap")
ON_REQUEST = ("realtime", "planet", "tecnet", "precision")   # need a trained model or minutes: run only when named


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="print speed figures (inverse dynamics, simulator, ROS torque loop)",
                       description="id: one inverse-dynamics step in-process; sim: real-time factor with the "
                                   "camera on and render time per frame; loop: the inverse-dynamics node "
                                   "answering joint states at the torque-loop rate through ROS (achieved rate "
                                   "and joint_states -> torque latency); swap: the pushing graph in realtime "
                                   "mode, one episode as it is and one with a live policy swap "
                                   "(scripted -> --swap-to -> scripted), missed torque and policy ticks of each. "
                                   "realtime (only when named): each of --policies for --realtime-seconds in "
                                   "realtime mode: torque steps without a fresh command, the longest gap, "
                                   "policy frames missed, CPU per node and the machine's steal time. "
                                   "planet (only when named): PlaNet planning latency on ONNX sessions, shipped "
                                   "and paper planner settings; with --episodes, in-process success of planet, "
                                   "the true-dynamics CEM upper bound and the scripted expert. tecnet (only when named): the "
                                   "TecNet control step (sentence cached) on one pinned core, one onnxruntime "
                                   "thread, p50/p99; with --episodes and --tecnet-demo-dir, in-process episodes "
                                   "planned as `il-robot eval` plans them. precision (only when named): the scripted expert's success when it "
                                   "sees the target offset by a few cm, i.e. how exactly a learned policy must "
                                   "locate the object.")
    p.add_argument("which", nargs="*", default=list(BENCHES), metavar="BENCH",
                   help=f"any of {', '.join(BENCHES + ON_REQUEST)} (default: {', '.join(BENCHES)})")
    p.add_argument("--seconds", type=float, default=10.0, help="duration of the loop benchmark (wall s)")
    p.add_argument("--rate", type=float, default=500.0, help="joint-state rate of the loop benchmark (Hz)")
    p.add_argument("--swap-to", default="hold", help="policy swapped in mid-episode by the swap bench")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--workers", type=int, default=1,
                   help="tecnet and planet with --episodes: share the episodes out to this many processes "
                        "(default 1)")
    from il_robot.cli import planet_bench, precision_bench, realtime_bench, tecnet_bench
    realtime_bench.add_arguments(p)
    planet_bench.add_arguments(p)
    tecnet_bench.add_arguments(p)
    precision_bench.add_arguments(p)
    p.set_defaults(func=run)


def _stats_us(samples) -> dict:
    a = np.asarray(samples) * 1e6
    return {"p50_us": float(np.median(a)), "p99_us": float(np.percentile(a, 99)), "mean_us": float(a.mean())}


def bench_id(n: int = 20000) -> dict:
    from il_robot.robot import panda_like
    from il_robot.robot.computed_torque import ComputedTorqueController
    from il_robot.robot.model import RobotModel

    robot = RobotModel.load()
    rng = np.random.default_rng(0)
    q = np.array(panda_like.HOME_Q) + rng.normal(0, 0.1, panda_like.N_JOINTS)
    qd, qdd = rng.normal(0, 0.3, panda_like.N_JOINTS), rng.normal(0, 1.0, panda_like.N_JOINTS)
    step = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        robot.inverse_dynamics(q, qd, qdd)
        step[i] = time.perf_counter() - t0
    ctl = ComputedTorqueController(robot, 400.0, 40.0)
    names = list(robot.joint_names)
    ctl.set_desired(names, q, qd, qdd, 0.0, 0.0)
    full = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        ctl.set_joint_state(names, q, qd, 0.0)
        ctl.command(0.0)
        full[i] = time.perf_counter() - t0
    return {"inverse_dynamics_step": _stats_us(step), "controller_update": _stats_us(full)}


def bench_sim(sim_seconds: float = 10.0) -> dict:
    from il_robot.sim.tasks import make_task
    from il_robot.sim.world import PushingWorld

    world = PushingWorld(make_task("heldout", 0))
    world.reset(0)
    steps = int(sim_seconds / world.timestep)
    per_frame = round(1 / (CONTROL_RATE_HZ * world.timestep))
    world.render()  # create the GL context outside the timing
    render = []
    t0 = time.perf_counter()
    for k in range(steps):
        world.step(world.gravity_torque())
        if k % per_frame == 0:
            r0 = time.perf_counter()
            world.render()
            render.append(time.perf_counter() - r0)
    wall = time.perf_counter() - t0
    physics = []
    for _ in range(2000):
        p0 = time.perf_counter()
        world.step(world.gravity_torque())
        physics.append(time.perf_counter() - p0)
    world.close()
    return {"real_time_factor_camera_20hz": sim_seconds / wall, "render_64x64": _stats_us(render),
            "physics_step": _stats_us(physics)}


def bench_loop(seconds: float, rate: float) -> dict:
    """A stand-in driver publishes /joint_states at `rate` and times each torque answer.

    Like a driver's control tick: a state is answered on time when its torque arrives before
    the next state is due; an answer that comes later is counted late (and, arriving in the
    next period, is not taken for that period's answer)."""
    import os
    import subprocess
    import sys
    import threading

    import rclpy
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    from il_robot import topics
    from il_robot.robot import panda_like
    from il_robot.ros import conversions as conv
    from il_robot.ros.topic_thread import TopicThread
    from il_robot.ros.env import ensure_localhost_discovery

    env = ensure_localhost_discovery(dict(os.environ))
    ensure_localhost_discovery()
    node_proc = subprocess.Popen(
        [sys.executable, "-m", "il_robot.ros.inverse_dynamics_node", "--ros-args", "-p", "use_sim_time:=false",
         "-p", "joint_state_timeout:=0.5", "--log-level", "warn"], env=env)
    rclpy.init()
    node = rclpy.create_node("bench_torque_loop_driver")
    sent: list[float] = []
    latency: list[float] = []
    answer = threading.Event()
    received = [0]

    def on_command(_msg):
        received[0] += 1
        answer.set()

    answers = TopicThread(node, "answers")   # off the executor, as a driver's loop would be
    answers.subscribe(Float64MultiArray, topics.EFFORT_COMMANDS, on_command, 100)
    answers.start()
    pub = node.create_publisher(JointState, topics.JOINT_STATES, 100)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    q = np.array(panda_like.HOME_Q)
    names = list(panda_like.JOINT_NAMES)
    try:
        deadline = time.monotonic() + 30.0
        while pub.get_subscription_count() == 0 or node.count_publishers(topics.EFFORT_COMMANDS) == 0:
            if time.monotonic() > deadline or node_proc.poll() is not None:
                raise RuntimeError("inverse-dynamics node did not come up")
            time.sleep(0.05)
        time.sleep(1.0)  # let discovery settle both ways before timing
        period = 1.0 / rate
        start = time.perf_counter()
        next_t = start
        while time.perf_counter() - start < seconds:
            msg = conv.joint_state(names, q, np.zeros(panda_like.N_JOINTS), np.zeros(panda_like.N_JOINTS), time.time())
            answer.clear()
            t_sent = time.perf_counter()
            sent.append(t_sent)
            pub.publish(msg)
            next_t += period
            if answer.wait(max(0.0, next_t - time.perf_counter())):
                latency.append(time.perf_counter() - t_sent)
            delay = next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    finally:
        answers.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        node_proc.terminate()
        node_proc.wait(10)
    lat = np.asarray(latency or [np.nan]) * 1e3
    return {"joint_state_rate_hz": len(sent) / seconds, "torque_rate_hz": received[0] / seconds,
            "on_time_fraction": len(latency) / max(1, len(sent)),
            "latency_ms": {"p50": float(np.median(lat)), "p99": float(np.percentile(lat, 99)),
                           "max": float(lat.max())}}


def bench_swap(swap_to: str, swap_at: float = 3.0, hold_for: float = 3.0) -> dict:
    """Realtime graph (the way an arm runs it): an episode without and one with two live swaps."""
    import tempfile
    import threading

    import rclpy

    from il_robot.cli.eval_cmd import loop_figures
    from il_robot.graph import PUSHING
    from il_robot.launcher import GraphProcesses, node_commands, parse_launch_args
    from il_robot.ros.env import ensure_localhost_discovery
    from il_robot.ros.episode_client import EpisodeClient, spin_in_background

    ensure_localhost_discovery()
    values = parse_launch_args(PUSHING, ["mode:=realtime", "auto_reset:=false", "episode_duration:=10.0"])
    log_dir = tempfile.mkdtemp(prefix="il_robot_bench_swap_")
    rclpy.init()
    client = EpisodeClient("il_robot_bench_swap")
    executor, _ = spin_in_background(client)
    figures = {"log_dir": log_dir, "swap_to": swap_to}
    try:
        with GraphProcesses(node_commands(PUSHING, values), log_dir=log_dir) as procs:
            client.run_episode("heldout", 0, 0)  # warm-up: discovery, first renders
            figures["without_swap"] = loop_figures(client.run_episode("heldout", 1, 1))
            swaps: list[dict] = []

            def swap_twice():
                for name, wait in ((swap_to, swap_at), ("scripted", hold_for)):
                    time.sleep(wait)
                    t0 = time.perf_counter()
                    client.set_parameters("/policy", policy=name)
                    swaps.append({"to": name, "call_ms": (time.perf_counter() - t0) * 1e3})

            swapper = threading.Thread(target=swap_twice)
            swapper.start()
            figures["with_swap"] = loop_figures(client.run_episode("heldout", 1, 1))
            swapper.join()
            figures["swaps"] = swaps
            if procs.poll():
                raise RuntimeError(f"node(s) exited: {procs.poll()}; logs in {log_dir}")
    finally:
        executor.shutdown()
        client.destroy_node()
        rclpy.try_shutdown()
    return figures


def run(args) -> int:
    from il_robot.cli.json_file import write_json

    figures = {}
    which = args.which or list(BENCHES)
    unknown = sorted(set(which) - set(BENCHES + ON_REQUEST))
    if unknown:
        raise ValueError(f"unknown bench {unknown}; choose from {', '.join(BENCHES + ON_REQUEST)}")
    if "id" in which:
        figures["id"] = r = bench_id()
        print(f"inverse dynamics step: p50 {r['inverse_dynamics_step']['p50_us']:.1f} us, "
              f"p99 {r['inverse_dynamics_step']['p99_us']:.1f} us (target <= 20 us); full controller update "
              f"p50 {r['controller_update']['p50_us']:.1f} us")
    if "sim" in which:
        figures["sim"] = r = bench_sim()
        print(f"simulator: real-time factor {r['real_time_factor_camera_20hz']:.1f}x with a 64x64 camera at "
              f"20 Hz; render p50 {r['render_64x64']['p50_us'] / 1e3:.2f} ms/frame; physics step p50 "
              f"{r['physics_step']['p50_us']:.1f} us")
    if "loop" in which:
        figures["loop"] = r = bench_loop(args.seconds, args.rate)
        print(f"ROS torque loop: joint states {r['joint_state_rate_hz']:.0f} Hz -> torques "
              f"{r['torque_rate_hz']:.0f} Hz, {r['on_time_fraction'] * 100:.1f}% answered within the period; "
              f"latency of those p50 {r['latency_ms']['p50']:.2f} ms, p99 {r['latency_ms']['p99']:.2f} ms, "
              f"max {r['latency_ms']['max']:.2f} ms")
    if "swap" in which:
        figures["swap"] = r = bench_swap(args.swap_to)
        for key in ("without_swap", "with_swap"):
            e = r[key]
            print(f"realtime episode {key.replace('_', ' ')}: torque {e['torque_rate_hz']:.0f} Hz, missed "
                  f"{e['torque_missed']}/{e['physics_steps']} ticks (one cycle late {e['torque_late']}); policy {e['policy_rate_hz']:.1f} Hz, missed "
                  f"{e['policy_missed']}/{e['frames']} frames")
        print("swaps: " + ", ".join(f"-> {s['to']} in {s['call_ms']:.0f} ms" for s in r["swaps"]))
    if "realtime" in which:
        from il_robot.cli import realtime_bench
        figures["realtime"] = []
        for policy in [p.strip() for p in args.policies.split(",") if p.strip()]:
            r = realtime_bench.bench_realtime(policy, args.realtime_seconds, args.camera_delay)
            figures["realtime"].append(r)
            realtime_bench.print_realtime(r)
    if "tecnet" in which:
        from il_robot.cli import tecnet_bench
        demo = args.tecnet_demo or tecnet_bench.first_demo(args.tecnet_demo_dir, args.tasks, args.demo_skill)
        figures["tecnet"] = r = tecnet_bench.bench_tecnet(args.tecnet_dir, demo, args.ticks)
        tecnet_bench.print_tecnet(r)
        if args.episodes and args.tecnet_demo_dir:
            r["episodes"] = e = tecnet_bench.run_episodes(args.tecnet_dir, args.tecnet_demo_dir, args.episodes,
                                                          args.tasks, args.seed, args.shots, args.demo_skill,
                                                          workers=args.workers)
            tecnet_bench.print_episodes(e)
        elif args.episodes:
            print("tecnet: --episodes needs --tecnet-demo-dir (the demos that name each episode's task)")
    if "planet" in which:
        from il_robot.cli import planet_bench
        figures["planet"] = planet_bench.run(args)
    if "precision" in which:
        from il_robot.cli import precision_bench
        offsets = [float(x) for x in args.offsets.split(",") if x.strip()]
        figures["precision"] = r = precision_bench.bench_precision(offsets, args.precision_episodes)
        precision_bench.print_precision(r)
    write_json(args.json, figures)
    return 0
