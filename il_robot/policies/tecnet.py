"""TecNet policy at run time: exported ONNX graphs on onnxruntime, conditioned on demo bags.

The demos are embedded once, when the policy is built (k demos: the normalised mean
of their normalised embeddings); each tick then runs only the control graph. No
torch here: a robot needs onnxruntime, numpy and OpenCV. The model directory is what
`il-robot export tecnet` writes; its metadata.json is checked against the graphs
before anything runs, so a wrong or broken model is refused at load, not mid-episode.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from il_robot.paths import models_dir
from il_robot.policies.base import Observation, Policy, PolicyConfig, PolicyLoadError, register
from il_robot.policies.demo_bags import demo_images, demos_or_shipped
from il_robot.policies.image_input import image_batch
from il_robot.policies.onnx_session import create_session, read_model_metadata, shape_matches
from il_robot.policies.tecnet_state import LAYOUTS, N_JOINTS, state_size, state_vector

log = logging.getLogger(__name__)

FORMAT = "il_robot.tecnet"
VERSION = 1
DEFAULT_MODEL = "tecnet"            # under the package's models/ directory
METADATA_FILE = "metadata.json"
EXPECTED_IO = {                     # graph -> input/output name -> channel or feature size this code feeds
    "embedding": {"inputs": {"frames": 6}, "outputs": {"embedding": None}},
    "control": {"inputs": {"image": 3, "sentence": None, "state": None}, "outputs": {"action": 3}},
}


def default_model_dir() -> Path:
    return models_dir() / DEFAULT_MODEL


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / max(float(np.linalg.norm(x)), 1e-8)).astype(np.float32)


def _meta_shape(meta: dict, graph: str, kind: str, name: str) -> list:
    try:
        return list(meta["models"][graph][kind][name]["shape"])
    except (KeyError, TypeError):
        raise PolicyLoadError(f"{METADATA_FILE}: no shape for {graph} {kind[:-1]} '{name}'") from None


def _check_graph(session, graph: str, meta: dict, file: Path) -> None:
    """The session's inputs/outputs must be exactly the metadata's names, with compatible shapes."""
    for kind, nodes in (("inputs", session.get_inputs()), ("outputs", session.get_outputs())):
        actual = {n.name: n for n in nodes}
        expected = set(EXPECTED_IO[graph][kind])
        if set(actual) != expected:
            raise PolicyLoadError(f"{file}: {kind} are {sorted(actual)}, expected {sorted(expected)}")
        for name, node in actual.items():
            if node.type != "tensor(float)":
                raise PolicyLoadError(f"{file}: {kind[:-1]} '{name}' is {node.type}, expected tensor(float)")
            declared = _meta_shape(meta, graph, kind, name)
            if not shape_matches(node.shape, declared):
                raise PolicyLoadError(f"{file}: {kind[:-1]} '{name}' has shape {node.shape}, metadata says {declared}")
            size = EXPECTED_IO[graph][kind][name]
            if size is not None and declared[1] != size:
                raise PolicyLoadError(f"{file}: {kind[:-1]} '{name}' has {declared[1]} channels/features; "
                                      f"this runtime feeds {size}")


class TecNetModel:
    """The embedding and control graphs of one exported model directory, with its normalisation."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", threads: int = 1):
        self.dir = Path(model_dir)
        if not self.dir.is_dir():
            raise PolicyLoadError(f"TecNet model directory {self.dir} not found (train one with `il-robot train "
                                  f"tecnet`, or export a checkpoint with `il-robot export tecnet`)")
        self.meta = self._read_metadata()
        self.embedding = self._session("embedding", device, threads)
        self.control = self._session("control", device, threads)
        self.provider = self.control.get_providers()[0]
        self._check_sizes()
        self._smoke_test()

    def _read_metadata(self) -> dict:
        return read_model_metadata(self.dir, METADATA_FILE, FORMAT, VERSION, "TecNet")

    def _session(self, graph: str, device: str, threads: int):
        try:
            file = self.dir / self.meta["models"][graph]["file"]
        except (KeyError, TypeError):
            raise PolicyLoadError(f"{self.dir / METADATA_FILE}: models.{graph}.file missing") from None
        session = create_session(file, device, threads)
        _check_graph(session, graph, self.meta, file)
        return session

    def _check_sizes(self) -> None:
        meta = self.meta
        try:
            self.height, self.width = int(meta["image"]["height"]), int(meta["image"]["width"])
            self.embedding_size = int(meta["embedding"]["size"])
            self.state_mean = np.asarray(meta["state"]["mean"], np.float32)
            self.state_std = np.asarray(meta["state"]["std"], np.float32)
            self.action_mean = np.asarray(meta["action"]["mean"], np.float32)
            self.action_std = np.asarray(meta["action"]["std"], np.float32)
            action_name = meta["action"]["name"]
            self.state_layout = tuple(meta["state"].get("layout", ("q", "qd")))
        except (KeyError, TypeError, ValueError) as err:
            raise PolicyLoadError(f"{self.dir / METADATA_FILE}: incomplete ({type(err).__name__}: {err})") from None
        if self.state_layout not in LAYOUTS:
            raise PolicyLoadError(f"{self.dir / METADATA_FILE}: state layout {list(self.state_layout)}; this "
                                  f"runtime feeds {' or '.join(str(list(k)) for k in LAYOUTS)}")
        size = state_size(self.state_layout)
        shapes = {
            "embedding output": (_meta_shape(meta, "embedding", "outputs", "embedding")[1:], [self.embedding_size]),
            "control sentence": (_meta_shape(meta, "control", "inputs", "sentence")[1:], [self.embedding_size]),
            "frames": (_meta_shape(meta, "embedding", "inputs", "frames")[2:], [self.height, self.width]),
            "image": (_meta_shape(meta, "control", "inputs", "image")[2:], [self.height, self.width]),
            "control state": (_meta_shape(meta, "control", "inputs", "state")[1:], [size]),
            "state normalisation": ([self.state_mean.size, self.state_std.size], [size] * 2),
            "action normalisation": ([self.action_mean.size, self.action_std.size], [3, 3]),
        }
        for what, (got, want) in shapes.items():
            if got != want:
                raise PolicyLoadError(f"{self.dir / METADATA_FILE}: {what} size {got}, expected {want}")
        if action_name != "tip_velocity":
            raise PolicyLoadError(f"{self.dir / METADATA_FILE}: action '{action_name}'; "
                                  "this policy outputs tip_velocity")
        if not (np.all(np.isfinite(self.state_std)) and np.all(self.state_std > 0)
                and np.all(np.isfinite(self.action_std)) and np.all(self.action_std > 0)):
            raise PolicyLoadError(f"{self.dir / METADATA_FILE}: normalisation std must be finite and positive")

    def _smoke_test(self) -> None:
        """Run both graphs once: a graph that loads but cannot run is refused here, not at the first tick."""
        blank = np.zeros((self.height, self.width, 3), np.uint8)
        try:
            sentence = self.embed_frames(blank, blank)
            action = self.act(blank, np.zeros(N_JOINTS), np.zeros(N_JOINTS), sentence, np.zeros(3))
        except PolicyLoadError:
            raise
        except Exception as err:
            raise PolicyLoadError(f"{self.dir}: model does not run: {type(err).__name__}: {err}") from None
        if not np.all(np.isfinite(action)):
            raise PolicyLoadError(f"{self.dir}: model returns non-finite actions on a blank input")

    # -- inference -------------------------------------------------------------------------------
    def embed_frames(self, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Unit task embedding (D,) of a demo from its first and last RGB frames (H, W, 3) uint8."""
        x = image_batch(first, last, height=self.height, width=self.width)
        out = self.embedding.run(None, {"frames": x})[0]
        if out.shape != (1, self.embedding_size):
            raise PolicyLoadError(f"embedding graph returned shape {out.shape}, expected (1, {self.embedding_size})")
        return _normalise(out[0])

    def embed_demo(self, bag: str | Path) -> np.ndarray:
        """Embedding of a demo bag from its first and last frames."""
        images = demo_images(bag)
        return self.embed_frames(images[0], images[-1])

    @staticmethod
    def sentence(embeddings: list[np.ndarray]) -> np.ndarray:
        """Task sentence from one or more demo embeddings: normalised mean of the normalised embeddings."""
        return _normalise(np.mean([_normalise(e) for e in embeddings], axis=0))

    def act(self, image: np.ndarray, q: np.ndarray, qd: np.ndarray, sentence: np.ndarray,
            tip: np.ndarray | None = None) -> np.ndarray:
        """Tip velocity (3,) m/s for one camera frame and joint state (and tip position, when the
        model's state layout has it)."""
        flat = (lambda x: None if x is None else np.asarray(x, np.float64).ravel())
        state = state_vector(self.state_layout, flat(q), flat(qd), flat(tip))
        if not np.all(np.isfinite(state)):
            raise ValueError("joint state holds NaN/Inf")
        feeds = {
            "image": image_batch(image, height=self.height, width=self.width),
            "sentence": np.asarray(sentence, np.float32).reshape(1, self.embedding_size),
            "state": ((state - self.state_mean) / self.state_std).astype(np.float32)[None],
        }
        out = self.control.run(None, feeds)[0]
        return (out.reshape(3) * self.action_std + self.action_mean).astype(np.float64)


@register("tecnet")
class TecNetPolicy(Policy):
    """Few-shot imitation: one or more demo bags of a task in, tip velocities for that task out."""
    needs_image = True

    def __init__(self, config: PolicyConfig):
        model_dir = Path(config.model_dir or default_model_dir())
        demos = demos_or_shipped("tecnet", config.demos, model_dir)
        self._condition(TecNetModel(model_dir, config.device), demos)
        log.info("tecnet: model %s on %s, conditioned on %d demo(s)", self.model.dir, self.model.provider, len(demos))

    @classmethod
    def conditioned(cls, model: TecNetModel, demos: list[str]) -> TecNetPolicy:
        """A policy on an already loaded model: many episodes, each on its own demos, one model load."""
        policy = cls.__new__(cls)
        policy._condition(model, list(demos))
        return policy

    def _condition(self, model: TecNetModel, demos: list[str]) -> None:
        self.model, self.demos = model, demos
        self.demo_embeddings = [model.embed_demo(d) for d in demos]
        self.sentence = model.sentence(self.demo_embeddings)

    def embed_frames(self, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        return self.model.embed_frames(first, last)

    def reset(self, context: dict) -> None:
        pass    # the task comes from the demos, fixed at construction; nothing carries over between episodes

    def act(self, obs: Observation) -> np.ndarray:
        if obs.image is None:
            raise ValueError("tecnet needs a camera image; none received yet")
        return self.model.act(obs.image, obs.q, obs.qd, self.sentence, obs.tip)
