"""Offline learning (PyTorch): models, losses, training loops, ONNX export, plots.

Nothing here is imported by the runtime (nodes, policies): they read the exported
ONNX models and metadata only, so a robot needs no torch. Import the submodules
directly; this package imports nothing on purpose.
"""
