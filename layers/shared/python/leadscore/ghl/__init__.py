"""Everything HighLevel-specific, from a webhook in to the score written back.

- `auth`: signatures (Ed25519, legacy RSA), the workflow secrets, timestamps, raw bodies;
- `credentials`: each location's own workflow secret and /score key (hashed, rotatable);
- `payloads`: webhook kinds and the mapping of a payload to a scoring request;
- `webhook`: the webhook flow (authenticate, parse, deduplicate, score, queue the write-back);
- `messages`: the write-back queue message (one writer, one reader);
- `write_plan`: what to write onto a contact and when to skip;
- `writeback`: the write-back flow (one queue message -> HighLevel API calls).

The HTTP client and the DynamoDB state live in `leadscore.adapters` (`ghl_api`, `ghl_state`).
"""
