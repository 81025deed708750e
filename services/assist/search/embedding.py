"""Sentence embeddings from a model whose weights ship inside a PyPI wheel: WordLlama's
`l2_supercat` (256 dimensions, a token-embedding codebook over Llama 3's multilingual tokenizer,
average-pooled). Loaded from site-packages by path: nothing is downloaded, at start or ever.

WordLlama's own `WordLlama.load()` looks for the tokenizer in a folder the wheel does not have and
then tries the network; hence the files are read here directly (the version is pinned in
requirements.txt, and a test fails if the files move)."""

from functools import cache
from pathlib import Path

import numpy as np
import wordllama
from safetensors import safe_open
from tokenizers import Tokenizer
from wordllama.inference import WordLlamaInference

PACKAGE = Path(wordllama.__file__).parent
WEIGHTS = PACKAGE / "weights" / "l2_supercat_256.safetensors"
TOKENIZER = PACKAGE / "tokenizers" / "l2_supercat_tokenizer_config.json"
DIMENSIONS = 256


@cache
def model() -> WordLlamaInference:
    """The model, loaded once per process (about 0.1 s, 16 MB of weights)."""
    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    with safe_open(str(WEIGHTS), framework="np", device="cpu") as weights:
        embedding = weights.get_tensor("embedding.weight")
    return WordLlamaInference(embedding, tokenizer)


def embed(texts: list[str]) -> np.ndarray:
    """One unit-length row per text (float32), so a dot product is the cosine similarity; a text with
    nothing to embed (empty, spaces) gets a zero row, similar to nothing, rather than the NaN the model gives."""
    vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    present = [n for n, text in enumerate(texts) if text.strip()]
    if present:
        embedded = np.asarray(model().embed([texts[n] for n in present], norm=True), dtype=np.float32)
        vectors[present] = np.nan_to_num(embedded.reshape(len(present), DIMENSIONS))  # belt and braces
    return vectors
