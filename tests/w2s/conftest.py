"""Fixtures for aarlab.w2s tests: a synthetic task, a fake BIG-bench archive, a tiny random-weight Qwen3."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from aarlab.w2s.synthetic import write_synthetic_task

BB_PREFIX = "bigbench-1.0.0/bigbench/benchmark_tasks/"


@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch):
    """One thread per process: on a shared 2-core machine, OpenMP threads spinning against each other
    made small models 10-30x slower. Subprocesses (method runs) inherit OMP_NUM_THREADS."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(before)


@pytest.fixture
def synthetic_task(tmp_path) -> Path:
    return write_synthetic_task(tmp_path / "task", n_unlabel=120, n_test=80)


def _add(tar: tarfile.TarFile, name: str, data: dict) -> None:
    raw = json.dumps(data).encode()
    info = tarfile.TarInfo(name)
    info.size = len(raw)
    tar.addfile(info, io.BytesIO(raw))


def fake_bigbench_sdist(path: Path) -> Path:
    """A small archive with the sdist's internal layout: a 4-sentiment task and a multiple-choice task."""
    words = {"positive": ["great", "lovely", "superb"], "negative": ["awful", "bad", "grim"],
             "neutral": ["okay", "plain", "average"], "ambivalent": ["mixed", "unsure", "torn"]}
    emo = []
    for i in range(200):
        label = list(words)[i % 4]
        emo.append({"input": f"the stay was {words[label][i % 3]} number {i}",
                    "target_scores": {k: int(k == label) for k in words}})
    qa = [{"input": f"What is {i} plus 1?", "target_scores": {str(i + 1): 1, str(i + 2): 0, str(i): 0}}
          for i in range(60)]
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, BB_PREFIX + "multiemo/all_sentence_en/task.json", {"name": "multiemo", "examples": emo})
        _add(tar, BB_PREFIX + "multiemo/task.json", {"name": "multiemo", "subtasks": []})
        _add(tar, BB_PREFIX + "simple_sum/task.json", {"name": "simple_sum", "examples": qa})
    return path


@pytest.fixture
def fake_bigbench(tmp_path, monkeypatch) -> Path:
    sdist = fake_bigbench_sdist(tmp_path / "bigbench-1.0.0.tar.gz")
    monkeypatch.setenv("AARLAB_BIGBENCH_SDIST", str(sdist))
    monkeypatch.setenv("AARLAB_CACHE", str(tmp_path / "cache"))
    return sdist


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory) -> Path:
    """A 2-layer random-weight Qwen3 with a byte-level BPE tokenizer trained here, saved as a local HF dir."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    out = tmp_path_factory.mktemp("tiny-qwen3")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    corpus = ["the food was good", "the room was bad", "Answer: negative positive", "great awful lovely grim"] * 5
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<eos>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    fast.save_pretrained(out)
    torch.manual_seed(0)
    config = Qwen3Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=16, vocab_size=len(fast), pad_token_id=fast.pad_token_id,
                         eos_token_id=fast.eos_token_id, tie_word_embeddings=True)
    Qwen3ForCausalLM(config).save_pretrained(out)
    return out
