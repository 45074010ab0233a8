"""Runbook retrieval: loading and chunking (:mod:`.documents`), BM25 tokenizer (:mod:`.text`), the
hybrid dense + BM25 index (:mod:`.index`), the persisted knowledge base (:mod:`.store`) and
incident query building (:mod:`.query`)."""
