"""The tokenizer stage: a loadable HF directory with specials and the prompt template."""

import shutil

import pytest

from rsrl.data.prompt_format import format_prompt
from rsrl.data.synth import generate
from rsrl.errors import SpecError
from rsrl.models.tokenizer import (
    BOS,
    EOS,
    PAD,
    load_tokenizer,
    render_prompt,
    special_token_ids,
    tokenizer_dir,
)
from tests.data.conftest import TEST_VOCAB, make_plan, run_stage


@pytest.fixture(scope="module")
def bpe_stage(tmp_path_factory):
    plan = make_plan(tmp_path_factory.mktemp("bpe"), [{"path": "synth://pretrain"}])
    return run_stage(plan, "tokenizer")


def test_bpe_stage_writes_a_loadable_tokenizer(bpe_stage):
    tokenizer = load_tokenizer(bpe_stage)
    assert (tokenizer_dir(bpe_stage) / "tokenizer.json").is_file()
    assert len(tokenizer) <= TEST_VOCAB
    assert (tokenizer.eos_token, tokenizer.bos_token, tokenizer.pad_token) == (EOS, BOS, PAD)
    assert len(set(special_token_ids(tokenizer).values())) == 3


def test_bpe_round_trips_text_and_splits_digits(bpe_stage):
    tokenizer = load_tokenizer(bpe_stage)
    text = generate("midtrain")[0]["text"] + " ünïcödé 12345"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    digits = tokenizer.convert_ids_to_tokens(
        tokenizer("x = 12345", add_special_tokens=False)["input_ids"]
    )
    assert [t for t in digits if t.isdigit()] == list("12345")


def test_prompt_template_is_the_plain_format(bpe_stage):
    tokenizer = load_tokenizer(bpe_stage)
    prompt = generate("rl-arith")[0]["prompt"]
    assert render_prompt(tokenizer, prompt) == format_prompt(prompt)
    full = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": "Answer: 3"}],
        tokenize=False,
    )
    assert full == format_prompt(prompt) + " Answer: 3" + EOS


def test_pretrained_kind_copies_a_local_directory(bpe_stage, tmp_path):
    src = tmp_path / "my-tokenizer"
    shutil.copytree(tokenizer_dir(bpe_stage), src)
    (src / "NOTICE").write_text("kept")
    plan = make_plan(
        tmp_path, [{"path": "synth://pretrain"}], tokenizer={"kind": "pretrained", "path": str(src)}
    )
    out = run_stage(plan, "tokenizer")
    assert (tokenizer_dir(out) / "NOTICE").read_text() == "kept"
    copied, original = load_tokenizer(out), load_tokenizer(bpe_stage)
    assert copied("What is 2 + 2?")["input_ids"] == original("What is 2 + 2?")["input_ids"]


def test_pretrained_kind_rejects_a_directory_without_a_tokenizer(tmp_path):
    from rsrl.models.tokenizer import copy_pretrained

    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match="not a loadable HF tokenizer"):
        copy_pretrained(tmp_path / "empty", tmp_path / "out")
