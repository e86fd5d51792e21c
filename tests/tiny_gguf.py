"""A tiny random-weight LLaMA model in GGUF format, for tests that need a real llama.cpp to load something.

```python
from tiny_gguf import write_tiny_gguf
path = write_tiny_gguf(tmp_path / "tiny.gguf")          # a few hundred KB, written in milliseconds
llm = llama_cpp.Llama(model_path=str(path), n_ctx=512)
```
Two layers, ``n_embd`` 64, four heads, and a SentencePiece-style vocabulary: ``<unk>``, ``<s>``, ``</s>``, the
256 byte-fallback tokens ``<0x00>``..``<0xFF>``, single characters, a few hundred ``▁word`` tokens and their
prefixes (so SentencePiece merges prompts into words). The metadata carries the token types, bos/eos/unk ids
and a ChatML ``tokenizer.chat_template``, so chat completions work, and mean pooling, so a server started with
``--embedding true`` answers ``/v1/embeddings`` with one vector per text.

The weights are random, so the model writes gibberish, but it always writes *words*: one residual dimension is
held constant through every layer, and the output projection uses it as a bias that makes every token but
the whole words (end-of-sequence included) practically impossible. So a generation never ends early and never
produces broken UTF-8; it runs until ``max_tokens`` (or the context) is used up.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

N_EMBD = 64
N_HEAD = 4
N_LAYER = 2
N_FF = 128
N_CTX_TRAIN = 2048

UNK, BOS, EOS = 0, 1, 2

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_WORD_TEXT = (
    "the of and to in is it you that he was for on are with as his they be at one have this from or had by "
    "word but what some we can out other were all there when up use your how said an each she which do "
    "their time if will way about many then them write would like so these her long make thing see him two "
    "has look more day could go come did number sound no most people my over know water than call first who "
    "may down side been now find any new work part take get place made live where after back little only "
    "round man year came show every good me give our under name very through just form sentence great think "
    "say help low line differ turn cause much mean before move right boy old too same tell does set three "
    "want air well also play small end put home read hand port large spell add even land here must big high "
    "such follow act why ask men change went light kind off need house picture try us again animal point "
    "mother world near build self earth father head stand own page should country found answer school grow "
    "study still learn plant cover food sun four between state keep eye never last let thought city tree "
    "cross farm hard start might story saw far sea draw left late run while press close night real life few "
    "north open seem together next white children begin got walk example ease paper group always music those "
    "both mark often letter until mile river car feet care second book carry took science eat room friend"
)
_WORDS = tuple(_WORD_TEXT.split())


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types, as llama.cpp's SentencePiece (``llama``) tokenizer reads them."""
    T = gguf.TokenType
    tokens = ["<unk>", "<s>", "</s>"]
    types = [T.UNKNOWN, T.CONTROL, T.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [T.BYTE] * 256
    chars = [chr(c) for c in range(33, 127)] + ["▁"]
    tokens += chars
    types += [T.NORMAL] * len(chars)
    words = list(dict.fromkeys("▁" + w for w in _WORDS))
    # SentencePiece builds a word by merging adjacent pieces, so every prefix of a word must be a token too.
    prefixes = [p for p in dict.fromkeys(w[:n] for w in words for n in range(2, len(w))) if p not in words]
    tokens += prefixes + words
    types += [T.NORMAL] * (len(prefixes) + len(words))
    # Longer pieces win SentencePiece's merges; special and byte tokens never take part in them.
    scores = [0.0] * (3 + 256) + [len(tok) - i / 10_000 for i, tok in enumerate(tokens[3 + 256 :])]
    return tokens, scores, [int(t) for t in types]


def write_tiny_gguf(path: str | Path, *, seed: int = 0) -> Path:
    """Write the tiny model to ``path`` (deterministic for a given ``seed``) and return the path."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    tokens, scores, types = vocabulary()
    n_vocab = len(tokens)
    head_dim = N_EMBD // N_HEAD

    def normal(*shape: int, std: float) -> np.ndarray:
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_name("podium-tiny-random")
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_context_length(N_CTX_TRAIN)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(UNK)
    w.add_bos_token_id(BOS)
    w.add_eos_token_id(EOS)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)
    w.add_pooling_type(gguf.PoolingType.MEAN)

    # numpy shapes are (rows, columns) = ggml's ne reversed: a (out, in) matrix maps in -> out.
    embd = normal(n_vocab, N_EMBD, std=1.0)
    embd[:, 0] = 4.0  # dimension 0 is a constant "bias" channel: no layer writes to it (rows 0 below are 0)
    w.add_tensor("token_embd.weight", embd)
    for i in range(N_LAYER):
        attn_out = normal(N_EMBD, N_EMBD, std=0.1)
        attn_out[0, :] = 0.0
        ffn_down = normal(N_EMBD, N_FF, std=0.1)
        ffn_down[0, :] = 0.0
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", normal(N_EMBD, N_EMBD, std=0.2))
        w.add_tensor(f"blk.{i}.attn_k.weight", normal(N_EMBD, N_EMBD, std=0.2))
        w.add_tensor(f"blk.{i}.attn_v.weight", normal(N_EMBD, N_EMBD, std=0.2))
        w.add_tensor(f"blk.{i}.attn_output.weight", attn_out)
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", normal(N_FF, N_EMBD, std=0.2))
        w.add_tensor(f"blk.{i}.ffn_up.weight", normal(N_FF, N_EMBD, std=0.2))
        w.add_tensor(f"blk.{i}.ffn_down.weight", ffn_down)
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    out = normal(n_vocab, N_EMBD, std=1.0)
    # After the final RMS norm, dimension 0 is always clearly positive; a large negative weight on it buries
    # every token but the whole ▁words (the last ones in the vocabulary), so the model only ever says words.
    words_from = n_vocab - len(set(_WORDS))
    out[:, 0] = 0.0
    out[:words_from, 0] = -1000.0
    w.add_tensor("output.weight", out)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
