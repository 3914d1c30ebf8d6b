"""The built-in corpora: deterministic, disjoint eval split, answers the verifier extracts."""

import json
import re
from collections import Counter

import pytest

from rsrl.cli import main
from rsrl.data import synth, synth_prose
from rsrl.data.config import HeldoutSpec, PromptSourceSpec
from rsrl.data.errors import DataError
from rsrl.data.overlap import heldout_overlap
from rsrl.data.paths import check_data_path
from rsrl.data.prompt_format import format_prompt
from rsrl.data.prompts import read_heldout_texts, read_prompts
from rsrl.data.synth_arith import ANSWER_INSTRUCTION, is_eval_question
from rsrl.verifiers.math_answer import extract_answer, verify_math


def test_corpus_names_come_from_the_registry():
    assert synth.CORPUS_NAMES == tuple(synth.CORPORA)
    assert set(synth.CORPUS_NAMES) == {"pretrain", "midtrain", "rl-arith", "eval-arith", "heldout"}
    assert check_data_path("synth://rl-arith") is None
    assert "did you mean 'rl-arith'" in check_data_path("synth://rl-arth")


@pytest.mark.parametrize("name", synth.CORPUS_NAMES)
def test_corpora_are_deterministic_and_have_their_fields(name):
    records = synth.CORPORA[name].make(synth.SYNTH_SEED)
    assert records == list(synth.generate(name))
    assert records != synth.CORPORA[name].make(1)
    assert all(set(synth.CORPORA[name].fields) <= set(r) for r in records)


def test_eval_arith_is_disjoint_from_every_training_corpus():
    eval_prompts = {r["prompt"] for r in synth.generate("eval-arith")}
    rl_prompts = {r["prompt"] for r in synth.generate("rl-arith")}
    assert len(eval_prompts) == 250 and len(rl_prompts) == 2000  # all distinct
    assert not eval_prompts & rl_prompts
    training_text = "\n".join(
        r["text"] for name in ("pretrain", "midtrain") for r in synth.generate(name)
    )
    assert not [p for p in eval_prompts if format_prompt(p) in training_text]
    assert all(is_eval_question(p.removesuffix(" " + ANSWER_INSTRUCTION)) for p in eval_prompts)


def test_difficulty_is_graded_one_to_five():
    records = synth.generate("rl-arith")
    assert [r["difficulty"] for r in records] == sorted(r["difficulty"] for r in records)
    assert {r["difficulty"] for r in records} == {1, 2, 3, 4, 5}
    assert {r["task"] for r in records} == {"add-sub", "count", "two-step", "linear", "word"}


EQUATION = re.compile(r"(-?\d+) ([+*-]) (-?\d+) = (-?\d+)\.")
COUNT = re.compile(r"How many times does (\w+) appear in: ([^?]+)\?")
LINEAR = re.compile(r"Solve for x: (\d+)x ([+-]) (\d+) = (-?\d+)\.")


@pytest.mark.parametrize("name", ["rl-arith", "eval-arith"])
def test_solutions_are_correct_and_verifiable(name):
    for record in synth.generate(name):
        assert ANSWER_INSTRUCTION in record["prompt"]
        equations = EQUATION.findall(record["solution"])
        for a, op, b, c in equations:
            assert eval(f"{a} {op} {b}") == int(c), record
        if record["task"] in ("add-sub", "two-step", "word"):
            assert equations[-1][-1] == record["answer"]
        count = COUNT.search(record["prompt"])
        if count:
            assert count[2].split(", ").count(count[1]) == int(record["answer"])
        linear = LINEAR.search(record["prompt"])
        if linear:
            a, op, b, c = linear.groups()
            assert eval(f"{a} * {record['answer']} {op} {b}") == int(c), record
        assert extract_answer(record["solution"]) == record["answer"]
        assert verify_math(record["prompt"], record["solution"], record["answer"]).score == 1.0


def test_worked_solutions_in_training_text_use_the_prompt_format():
    worked = [r["text"] for r in synth.generate("midtrain") if r["text"].startswith("Question:")]
    assert len(worked) > 0.6 * len(synth.generate("midtrain"))
    assert all("\nSolution: " in t and "Answer: " in t for t in worked)


def test_cli_synth_writes_the_records_synth_scheme_yields(tmp_path):
    assert main(["data", "synth", "--out", str(tmp_path)]) == 0
    for name in synth.CORPUS_NAMES:
        lines = (tmp_path / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in lines] == list(synth.generate(name))


def test_prompt_and_heldout_readers(tmp_path):
    prompts = read_prompts(PromptSourceSpec(path="synth://eval-arith"))
    assert prompts[0]["prompt"] and prompts[0]["answer"] and prompts[0]["difficulty"] == 1
    path = tmp_path / "qa.jsonl"
    path.write_text('{"q": "What is 1 + 1?", "a": 2}\n')
    assert read_prompts(PromptSourceSpec(str(path), prompt_field="q", answer_field="a")) == [
        {"q": "What is 1 + 1?", "a": 2, "prompt": "What is 1 + 1?", "answer": "2"}
    ]
    texts = read_heldout_texts(HeldoutSpec(path="synth://heldout"))
    assert texts == [r["text"] for r in synth.generate("heldout")]


def test_prompt_reader_keeps_the_items_where_asks_for():
    counting = read_prompts(PromptSourceSpec(path="synth://rl-arith", where={"task": "count"}))
    easy = read_prompts(PromptSourceSpec(path="synth://rl-arith", where={"difficulty": [1, 2]}))
    assert len(counting) == 400 and {p["task"] for p in counting} == {"count"}
    assert len(easy) == 800 and {p["difficulty"] for p in easy} == {1, 2}
    first = read_prompts(
        PromptSourceSpec(path="synth://rl-arith", where={"task": "count"}, limit=3)
    )
    assert first == counting[:3]  # limit counts matching items
    with pytest.raises(DataError, match="no field 'level'"):
        read_prompts(PromptSourceSpec(path="synth://rl-arith", where={"level": 1}))
    with pytest.raises(DataError, match="no prompts matching"):
        read_prompts(PromptSourceSpec(path="synth://rl-arith", where={"task": "poetry"}))


def test_heldout_shares_no_document_with_any_training_corpus():
    heldout = [r["text"] for r in synth.generate("heldout")]
    training = [r["text"] for name in ("pretrain", "midtrain") for r in synth.generate(name)]
    assert len(set(heldout)) == len(heldout) == 600
    assert not set(heldout) & set(training)
    overlap = heldout_overlap(heldout, training)
    assert overlap["verbatim_docs"] == 0 and overlap["heldout_docs"] == 600
    assert 0 < overlap["ngram_share"] < 0.5  # worked solutions share their phrasing, prose not


@pytest.mark.parametrize("name", ["pretrain", "midtrain"])
def test_training_corpora_repeat_no_document(name):
    texts = [r["text"] for r in synth.generate(name)]
    assert len(set(texts)) == len(texts)


def test_prose_draws_a_long_tailed_lexicon():
    """Zipf: the commonest words are frequent, and most distinct words are rare."""
    words = Counter(
        word.strip(".,").lower()
        for record in synth.generate("pretrain")[:5000]
        for word in record["text"].split()
    )
    lexicon = synth_prose.make_lexicon(synth.SYNTH_SEED)
    nouns = Counter({w: words[w] for w in lexicon.nouns.words if words[w]})
    counts = sorted(nouns.values(), reverse=True)
    assert len(nouns) > 1000  # an open vocabulary, not a closed set of templates
    assert counts[0] > 20 * counts[len(counts) // 2]  # a head and a long tail
    assert sum(c == 1 for c in counts) > 0.2 * len(counts)  # many words seen once


def test_overlap_counts_verbatim_documents_and_shared_ngrams():
    a = " ".join(f"w{i}" for i in range(20))  # 8 distinct 13-grams
    b = " ".join(f"v{i}" for i in range(20))
    overlap = heldout_overlap([a, b], [a[: a.index("w13") - 1], b])
    assert overlap["verbatim_docs"] == 1
    assert overlap["ngrams"] == 16
    assert overlap["ngram_share"] == pytest.approx((1 + 8) / 16)  # w0..w12 once, all of b
