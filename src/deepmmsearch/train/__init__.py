"""Training: the SFT cold start and online multi-turn GRPO, both on TRL through its documented hooks.

Entry points :func:`deepmmsearch.train.sft.train_sft` and :func:`deepmmsearch.train.grpo.train_grpo` (and the
``dmms train`` commands). Importing this package imports no torch, transformers or TRL.
"""
