from __future__ import annotations

import numpy as np
import pytest

from opsloop.clustering.embedders import hybrid_vectors, lsa_vectors

TEXTS = ["vpn client fails to connect", "vpn connect error on laptop", "printer out of toner",
         "printer toner empty on floor two", "password reset for mail account", "mail password expired reset"]


def test_lsa_vectors_are_unit_rows_that_bring_texts_sharing_words_together():
    z = lsa_vectors(TEXTS, n_components=3)
    assert z.shape == (6, 3) and z.dtype == np.float32
    assert np.allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    sim = z @ z.T
    assert sim[0, 1] > sim[0, 2] and sim[2, 3] > sim[2, 4] and sim[4, 5] > sim[4, 0]


def test_lsa_vectors_of_a_corpus_without_shared_words_are_empty():
    assert lsa_vectors(["alpha", "beta", "gamma"]).shape == (3, 0)
    assert lsa_vectors(["one text"]).shape == (1, 0)


def test_hybrid_vectors_weigh_the_lexical_part_and_keep_the_embedding_at_weight_zero():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(6, 8)).astype(np.float32)  # embeddings that know nothing of the words
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    assert np.allclose(hybrid_vectors(emb, TEXTS, weight=0), unit, atol=1e-6)
    h = hybrid_vectors(emb, TEXTS, weight=1.0, n_components=3)
    assert h.shape == (6, 11) and np.allclose(np.linalg.norm(h, axis=1), 1.0, atol=1e-5)
    lex = lsa_vectors(TEXTS, 3)  # cosine is the weighted mean of the two parts' cosines
    assert np.allclose(h @ h.T, (unit @ unit.T + lex @ lex.T) / 2, atol=1e-5)
    with pytest.raises(ValueError):
        hybrid_vectors(emb, TEXTS[:3])
