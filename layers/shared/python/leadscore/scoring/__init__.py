"""Serving a lead score: the scoring service, its cache, the model store, reasons, the rules.

- `service`: request -> lead score (`ScoringService`, the `Scorer` protocol);
- `model_store`: resolves ``MODEL_URI`` and keeps the current bundle loaded;
- `cache`: the in-process LRU, the remote tier and the cache key;
- `reasons`: salesperson-readable reasons for the top factors;
- `rules`: the transparent rules score used when no model is loaded.
"""
