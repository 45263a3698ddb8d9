"""PlaNet policy at run time: latent-model MPC on exported ONNX graphs, conditioned on a demo bag.

Each model step (every `action_repeat` control ticks) the belief is filtered with the
posterior on the current frame, joint state and task (observe.onnx), then the CEM planner scores
J candidate action sequences in one call of imagine_h<H>.onnx (prior + reward model
unrolled over the horizon) and the first action of the refined plan is held until the
next model step. The task is a vector from the demo's last frame (task.onnx), computed
once at build. No torch here; the model directory is what `il-robot export planet` writes
and its metadata.json is checked against the graphs before anything runs.

`LatentMPC` is the planning loop itself, on any backend with `observe` and `returns`: the
ONNX model below at run time, the torch model while training collects episodes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from il_robot.paths import models_dir
from il_robot.policies.base import Observation, Policy, PolicyConfig, PolicyLoadError, register
from il_robot.policies.demo_bags import demo_images, demos_or_shipped
from il_robot.policies.cem import CEMConfig, CEMPlanner
from il_robot.policies.image_input import image_batch
from il_robot.policies.onnx_session import create_session, read_model_metadata, shape_matches
from il_robot.robot.panda_like import N_JOINTS

log = logging.getLogger(__name__)

FORMAT = "il_robot.planet"
VERSION = 2                         # 2: observe.onnx takes the task vector (task-conditioned posterior)
DEFAULT_MODEL = "planet"            # under the package's models/ directory
METADATA_FILE = "metadata.json"
JOINT_DIM = 2 * N_JOINTS           # q then qd
ACTION_DIM = 3
# graph -> inputs/outputs this code feeds and reads (None: size read from the metadata)
EXPECTED_IO = {
    "task": {"inputs": ("frame",), "outputs": ("task",)},
    "observe": {"inputs": ("belief", "state", "action", "image", "joints", "task"),
                "outputs": ("posterior_belief", "posterior_state")},
    "imagine": {"inputs": ("belief", "state", "actions", "task"), "outputs": ("returns", "rewards")},
}


def default_model_dir() -> Path:
    return models_dir() / DEFAULT_MODEL


def imagine_graph(horizon: int) -> str:
    return f"imagine_h{int(horizon)}"


class LatentBackend(Protocol):
    belief_size: int
    state_size: int

    def observe(self, belief: np.ndarray, state: np.ndarray, action: np.ndarray, image: np.ndarray,
                joints: np.ndarray, task: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def returns(self, belief: np.ndarray, state: np.ndarray, actions: np.ndarray,
                task: np.ndarray) -> np.ndarray: ...


class LatentMPC:
    """Belief filtering + CEM over a latent model, one model step every `repeat` control ticks."""

    def __init__(self, backend: LatentBackend, cem: CEMConfig, bound: float, repeat: int,
                 exploration_noise: float = 0.0, seed: int = 0):
        self.backend, self.bound, self.repeat = backend, float(bound), max(1, int(repeat))
        self.noise = exploration_noise
        self.planner = CEMPlanner(-self.bound * np.ones(ACTION_DIM), self.bound * np.ones(ACTION_DIM), cem, seed)
        self.rng = np.random.default_rng([seed, 23])
        self.reset()

    def reset(self) -> None:
        self.planner.reset()
        self.belief = np.zeros((1, self.backend.belief_size), np.float32)
        self.state = np.zeros((1, self.backend.state_size), np.float32)
        self.action = np.zeros(ACTION_DIM)          # held between model steps
        self.tick = 0

    def step(self, image: np.ndarray, joints: np.ndarray, task: np.ndarray) -> np.ndarray:
        """Tip velocity (3,) m/s for this control tick."""
        if self.tick % self.repeat == 0:
            self.belief, self.state = self.backend.observe(
                self.belief, self.state, self.action.astype(np.float32)[None], image, joints, task)
            plan = self.planner.plan(lambda a: self.backend.returns(self.belief, self.state, a, task))
            action = plan[0]
            if self.noise > 0:
                action = action + self.noise * self.bound * self.rng.standard_normal(ACTION_DIM)
            self.action = np.clip(action, -self.bound, self.bound)
        self.tick += 1
        return self.action.copy()


class PlanetModel:
    """The task, observe and imagine graphs of one exported model directory (onnxruntime)."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", threads: int = 1):
        self.dir = Path(model_dir)
        self.device, self.threads = device, threads
        if not self.dir.is_dir():
            raise PolicyLoadError(f"PlaNet model directory {self.dir} not found (train one with `il-robot train "
                                  f"planet`, or export a checkpoint with `il-robot export planet`)")
        self.meta = self._read_metadata()
        self._read_sizes()
        self.task_session = self._session("task", "task")
        self.observe_session = self._session("observe", "observe")
        self.provider = self.observe_session.get_providers()[0]
        self._imagine: dict[int, object] = {}
        self.imagine_session(self.planner.horizon)
        self._smoke_test()

    # -- loading -------------------------------------------------------------------------------------
    def _read_metadata(self) -> dict:
        return read_model_metadata(self.dir, METADATA_FILE, FORMAT, VERSION, "PlaNet")

    def _read_sizes(self) -> None:
        meta, where = self.meta, self.dir / METADATA_FILE
        try:
            self.height, self.width = int(meta["image"]["height"]), int(meta["image"]["width"])
            self.belief_size = int(meta["latent"]["belief_size"])
            self.state_size = int(meta["latent"]["state_size"])
            self.task_size = int(meta["task"]["size"])
            self.bound = float(meta["action"]["bound"])
            self.repeat = int(meta["action"]["repeat"])
            self.control_rate_hz = float(meta["action"]["control_rate_hz"])
            p = meta["planner"]
            self.planner = CEMConfig(int(p["horizon"]), int(p["candidates"]), int(p["top_k"]),
                                     int(p["iterations"]), float(p.get("init_std", 1.0)),
                                     float(p.get("min_std", 0.0)))
            action_name = meta["action"]["name"]
        except (KeyError, TypeError, ValueError) as err:
            raise PolicyLoadError(f"{where}: incomplete ({type(err).__name__}: {err})") from None
        try:
            self.planner.check()
        except ValueError as err:
            raise PolicyLoadError(f"{where}: planner: {err}") from None
        if action_name != "tip_velocity" or meta["action"].get("dim", ACTION_DIM) != ACTION_DIM:
            raise PolicyLoadError(f"{where}: action '{action_name}'; this policy outputs tip_velocity (3)")
        if not (self.bound > 0 and np.isfinite(self.bound) and self.repeat >= 1 and self.control_rate_hz > 0):
            raise PolicyLoadError(f"{where}: action bound, repeat and control rate must be positive")

    def _expected_shapes(self, kind: str) -> dict[str, list]:
        b, s, t, hh, ww = self.belief_size, self.state_size, self.task_size, self.height, self.width
        return {"task": {"frame": ["N", 3, hh, ww], "task": ["N", t]},
                "observe": {"belief": ["N", b], "state": ["N", s], "action": ["N", ACTION_DIM],
                            "image": ["N", 3, hh, ww], "joints": ["N", JOINT_DIM], "task": ["N", t],
                            "posterior_belief": ["N", b], "posterior_state": ["N", s]},
                "imagine": {"belief": ["N", b], "state": ["N", s], "actions": ["N", "H", ACTION_DIM],
                            "task": ["N", t], "returns": ["N"], "rewards": ["N", "H"]}}[kind]

    def _session(self, graph: str, kind: str, horizon: int | None = None):
        where = self.dir / METADATA_FILE
        try:
            entry = self.meta["models"][graph]
            file = self.dir / entry["file"]
        except (KeyError, TypeError):
            raise PolicyLoadError(f"{where}: models.{graph}.file missing") from None
        session = create_session(file, self.device, self.threads)
        expected = self._expected_shapes(kind)
        for io, nodes in (("inputs", session.get_inputs()), ("outputs", session.get_outputs())):
            names = {n.name: n for n in nodes}
            if set(names) != set(EXPECTED_IO[kind][io]):
                raise PolicyLoadError(f"{file}: {io} are {sorted(names)}, expected {sorted(EXPECTED_IO[kind][io])}")
            for name, node in names.items():
                if node.type != "tensor(float)":
                    raise PolicyLoadError(f"{file}: {io[:-1]} '{name}' is {node.type}, expected tensor(float)")
                want = [horizon if d == "H" else d for d in expected[name]]
                declared = (entry.get(io) or {}).get(name, {}).get("shape")
                if declared is None or not shape_matches(declared, want):
                    raise PolicyLoadError(f"{where}: {graph} {io[:-1]} '{name}' declared {declared}, this runtime "
                                          f"feeds {want}")
                if not shape_matches(node.shape, want):
                    raise PolicyLoadError(f"{file}: {io[:-1]} '{name}' has shape {node.shape}, expected {want}")
        return session

    def imagine_session(self, horizon: int):
        """The imagine graph unrolled over `horizon` steps (exported horizons: metadata planner.horizons)."""
        if horizon not in self._imagine:
            name = imagine_graph(horizon)
            if name not in self.meta.get("models", {}):
                have = sorted(int(k.split("_h")[1]) for k in self.meta.get("models", {}) if k.startswith("imagine_h"))
                raise PolicyLoadError(f"{self.dir}: no imagine graph for horizon {horizon}; exported: {have} "
                                      "(export with --horizons)")
            self._imagine[horizon] = self._session(name, "imagine", horizon)
        return self._imagine[horizon]

    def _smoke_test(self) -> None:
        blank = np.zeros((self.height, self.width, 3), np.uint8)
        try:
            task = self.task_vector(blank)
            belief = np.zeros((1, self.belief_size), np.float32)
            state = np.zeros((1, self.state_size), np.float32)
            belief, state = self.observe(belief, state, np.zeros((1, 3), np.float32), blank, np.zeros(JOINT_DIM),
                                         task)
            returns = self.returns(belief, state, np.zeros((2, self.planner.horizon, 3)), task)
        except PolicyLoadError:
            raise
        except Exception as err:
            raise PolicyLoadError(f"{self.dir}: model does not run: {type(err).__name__}: {err}") from None
        if not (np.all(np.isfinite(task)) and np.all(np.isfinite(returns)) and np.all(np.isfinite(belief))):
            raise PolicyLoadError(f"{self.dir}: model returns non-finite values on a blank input")

    # -- inference -------------------------------------------------------------------------------------
    def task_vector(self, frame: np.ndarray) -> np.ndarray:
        """(task_size,) from a demo's last frame (H, W, 3) uint8."""
        out = self.task_session.run(None, {"frame": image_batch(frame, height=self.height, width=self.width)})[0]
        if out.shape != (1, self.task_size):
            raise PolicyLoadError(f"task graph returned shape {out.shape}, expected (1, {self.task_size})")
        return out[0]

    def task_from_demo(self, bag: str | Path) -> np.ndarray:
        return self.task_vector(demo_images(bag)[-1])

    def observe(self, belief, state, action, image, joints, task):
        joints = np.asarray(joints, np.float64).ravel()
        if joints.size != JOINT_DIM:
            raise ValueError(f"expected {N_JOINTS} joint positions and velocities, got {joints.size} values")
        if not np.all(np.isfinite(joints)):
            raise ValueError("joint state holds NaN/Inf")
        feeds = {"belief": np.asarray(belief, np.float32), "state": np.asarray(state, np.float32),
                 "action": np.asarray(action, np.float32).reshape(1, ACTION_DIM),
                 "image": image_batch(image, height=self.height, width=self.width),
                 "joints": joints.astype(np.float32)[None], "task": np.asarray(task, np.float32).reshape(1, -1)}
        belief, state = self.observe_session.run(None, feeds)
        return belief, state

    def returns(self, belief, state, actions, task) -> np.ndarray:
        actions = np.asarray(actions, np.float32)
        n = actions.shape[0]
        session = self.imagine_session(actions.shape[1])
        feeds = {"belief": np.repeat(np.asarray(belief, np.float32).reshape(1, -1), n, 0),
                 "state": np.repeat(np.asarray(state, np.float32).reshape(1, -1), n, 0),
                 "actions": np.ascontiguousarray(actions),
                 "task": np.repeat(np.asarray(task, np.float32).reshape(1, -1), n, 0)}
        return session.run(["returns"], feeds)[0]


@register("planet")
class PlanetPolicy(Policy):
    """Latent MPC for the task shown by one or more demo bags (their last frames)."""
    needs_image = True

    def __init__(self, config: PolicyConfig, model: PlanetModel | None = None, task: np.ndarray | None = None):
        model_dir = Path(config.model_dir or default_model_dir())
        self.model = model or PlanetModel(model_dir, config.device)
        self.demos = [d for d in (config.demos or []) if d]
        if task is None:
            self.demos = demos_or_shipped("planet", self.demos, self.model.dir)
            task = np.mean([self.model.task_from_demo(d) for d in self.demos], axis=0)
        self.task = np.asarray(task, np.float32)
        model_step = self.model.repeat / self.model.control_rate_hz
        ticks = model_step * float(config.rate_hz or self.model.control_rate_hz)
        if abs(ticks - round(ticks)) > 1e-6:
            log.warning("planet: control rate %.1f Hz is not a multiple of the model step (%.3f s); holding each "
                        "plan %d ticks", config.rate_hz, model_step, max(1, round(ticks)))
        self.mpc = LatentMPC(self.model, self.model.planner, self.model.bound, max(1, round(ticks)))
        log.info("planet: model %s on %s, horizon %d, %d candidates, %d iterations, plan every %d ticks",
                 self.model.dir, self.model.provider, self.model.planner.horizon, self.model.planner.candidates,
                 self.model.planner.iterations, self.mpc.repeat)

    def reset(self, context: dict) -> None:
        self.mpc.reset()

    def act(self, obs: Observation) -> np.ndarray:
        if obs.image is None:
            raise ValueError("planet needs a camera image; none received yet")
        q, qd = np.asarray(obs.q, np.float64).ravel(), np.asarray(obs.qd, np.float64).ravel()
        if q.size != N_JOINTS or qd.size != N_JOINTS:
            raise ValueError(f"expected {N_JOINTS} joint positions and velocities, got {q.size} and {qd.size}")
        return self.mpc.step(obs.image, np.concatenate([q, qd]), self.task)
