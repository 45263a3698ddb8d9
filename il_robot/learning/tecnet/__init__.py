"""TecNet (James, Bloesch & Davison, CoRL 2018): few-shot imitation from a task embedding of a demo.

config (settings) | data (demos, batches, val set) | model (networks, losses) | checkpoint | train (step,
validation; the run loop is learning/run_loop.py) | rollouts (closed-loop val) | plots | export (ONNX) |
import_onnx (an exported model's weights back, to fine-tune a shipped model).
"""
