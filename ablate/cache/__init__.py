"""The stage cache: content-addressed entries (``_store``), the keys of every stage of the trial path (``_keys``),
and the code fingerprints in those keys (``_code``)."""
