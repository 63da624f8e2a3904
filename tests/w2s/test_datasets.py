import json

import pytest

from aarlab.errors import UserError
from aarlab.w2s.datasets import list_datasets, load_dataset


def test_bigbench_multiemo_defaults_to_positive_negative(fake_bigbench):
    examples = load_dataset("bigbench:multiemo/all_sentence_en")
    assert len(examples) == 100  # the neutral and ambivalent halves are dropped
    assert {ex.label_space for ex in examples} == {("negative", "positive")}
    assert all(("great" in ex.text or "lovely" in ex.text or "superb" in ex.text) == (ex.label == 1)
               for ex in examples)


def test_bigbench_multiple_choice_becomes_binary_true_false_seeded(fake_bigbench):
    a = load_dataset("bigbench:simple_sum", seed=0)
    assert len(a) == 60 and a[0].label_space == ("False", "True")
    assert 15 < sum(ex.label for ex in a) < 45
    for ex in a:
        n = int(ex.fields["question"].split()[2])
        assert (ex.fields["answer"] == str(n + 1)) == bool(ex.label)
    assert [ex.text for ex in a] == [ex.text for ex in load_dataset("bigbench:simple_sum", seed=0)]
    assert [ex.text for ex in a] != [ex.text for ex in load_dataset("bigbench:simple_sum", seed=1)]


def test_bigbench_unknown_task_names_its_subtasks(fake_bigbench):
    with pytest.raises(UserError, match="multiemo is split into subtasks; name one: multiemo/all_sentence_en"):
        load_dataset("bigbench:multiemo")
    with pytest.raises(UserError, match="no task 'simple_summ'.*did you mean simple_sum"):
        load_dataset("bigbench:simple_summ")


def test_bigbench_unreadable_archive_is_a_clear_error(tmp_path, monkeypatch):
    bad = tmp_path / "bigbench-1.0.0.tar.gz"
    bad.write_bytes(b"not a tarball")
    monkeypatch.setenv("AARLAB_BIGBENCH_SDIST", str(bad))
    monkeypatch.setenv("AARLAB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="not a readable BIG-bench archive"):
        load_dataset("bigbench:strategyqa")


def test_unknown_dataset_is_a_user_error():
    with pytest.raises(UserError, match="unknown dataset 'bigbenc'.*did you mean bigbench"):
        load_dataset("bigbenc:strategyqa")
    assert {"bigbench", "jsonl", "helpsteer2", "candidate-answers", "synthetic"} <= {d.name for d in list_datasets()}


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_local_jsonl_with_label_names(tmp_path):
    path = _write(tmp_path / "r.jsonl", [{"text": "fine", "label": "pos"}, {"text": "meh", "label": "neg"},
                                         {"id": "x", "text": "great", "label": "pos"}])
    examples = load_dataset(f"jsonl:{path}")
    assert [ex.label_name for ex in examples] == ["pos", "neg", "pos"] and examples[2].id == "x"
    _write(path, [{"text": "only"}])
    with pytest.raises(UserError, match="needs both 'text' and 'label'"):
        load_dataset(f"jsonl:{path}")


def test_helpsteer2_pairs_and_ratings_formats(tmp_path):
    pairs = _write(tmp_path / "pref.jsonl", [
        {"prompt": "Say hi", "response_1": "hi", "response_2": "go away", "preference_strength": -2},
        {"prompt": "Add 2+2", "response_1": "5", "response_2": "4", "preference_strength": 3},
        {"prompt": "tie", "response_1": "a", "response_2": "b", "preference_strength": 0}])
    examples = load_dataset(f"helpsteer2:{pairs}")
    assert len(examples) == 2 and examples[0].label_space == ("A", "B")
    for ex, better in zip(examples, ["hi", "4"], strict=True):
        assert ex.fields["response_a" if ex.label == 0 else "response_b"] == better
    ratings = _write(tmp_path / "ratings.jsonl", [
        {"prompt": "p", "response": "good answer", "helpfulness": 4},
        {"prompt": "p", "response": "bad answer", "helpfulness": 1}])
    (ex,) = load_dataset(f"helpsteer2:{ratings}")
    assert ex.fields["response_a" if ex.label == 0 else "response_b"] == "good answer"


def test_candidate_answers_true_false(tmp_path):
    path = _write(tmp_path / "math.jsonl", [
        {"problem": "1+1?", "candidate": "2", "is_correct": True},
        {"problem": "2+2?", "candidate": "5", "is_correct": False}])
    examples = load_dataset(f"candidate-answers:{path}")
    assert [ex.label_name for ex in examples] == ["True", "False"]
    assert "Candidate answer:\n5" in examples[1].text
    bad = _write(tmp_path / "bad.jsonl", [{"problem": "x", "verdict": 1, "candidate": "y"}])
    with pytest.raises(UserError, match="label column"):
        load_dataset(f"candidate-answers:{bad}")


@pytest.mark.slow
def test_real_bigbench_multiemo_from_the_pypi_sdist():
    # Downloads the 358 MB sdist once into the user cache (about 30 s) unless it is cached already.
    examples = load_dataset("bigbench:multiemo/all_sentence_en")
    assert len(examples) > 30000 and examples[0].label_space == ("negative", "positive")
