"""PlaNet (Hafner et al., ICML 2019): a world model for the CEM planner, conditioned on a demo's last frame.

Two world models behind the same graphs (task / observe / imagine) and the same run loop:
  positions: the latent is the tool tip and the target (positions, positions_config, positions_train),
             the default on CPU;
  rssm:      the paper's recurrent state-space model (rssm, rssm_config, rssm_train, pretrain).
Shared by both: data (episodes, seed collection, sampling), reward, planner (planner episodes in the
simulator), checkpoint, export (ONNX), plots; truth is the true-dynamics upper bound.
"""
