"""Knowledge-base search: lexical (BM25 over stems and lemmas) and semantic (embeddings), combined."""
