"""Offline learning (PyTorch): one package per model, on one run loop and one ONNX helper.

  tecnet/, planet/   each model's config, data, model(s), checkpoint, train, export
  run_loop.py        run directory, step cadence, CSV logs, checkpoints, Ctrl-C, summary, export hook
  onnx_graphs.py     graph export, torch vs onnxruntime check, metadata source, staged model directories
  checkpoints.py, config.py, augment.py, plots.py, keypoints.py   what the models share
  dagger.py          DAgger in simulation (corrective episodes for TecNet datasets)

Nothing here is imported by the runtime (nodes, policies): they read the exported
ONNX models and metadata only, so a robot needs no torch. Import the submodules
directly; this package imports nothing on purpose.
"""
