"""Local vision-language models: sizes, vocabularies, the image-only processor, and building/loading checkpoints.

Every module here except :mod:`deepmmsearch.models.sizes` and :mod:`deepmmsearch.models.chat` imports torch or
transformers, so import them where they are used, never from package import time.
"""
