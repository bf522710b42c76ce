"""Training data: teacher trajectories filtered, balanced and written as SFT datasets (DeepMMSearchVQA-style)."""
