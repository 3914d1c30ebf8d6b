"""Hugging Face datasets as sources: save_to_disk directories and hf:// names read through the
datasets cache (the hub is offline in tests), in every place a source is accepted."""

import json
import shutil
from pathlib import Path

import datasets
import pytest

from rsrl.cli import main
from rsrl.data.config import HeldoutSpec, PromptSourceSpec
from rsrl.data.errors import DataError
from rsrl.data.packed import PackedDataset
from rsrl.data.paths import check_data_path
from rsrl.data.prompts import read_heldout_texts, read_prompts
from rsrl.data.sources import Source, iter_texts, plan_read_tasks
from rsrl.train.metrics import read_metrics
from tests.data.conftest import make_plan, run_stage

ROWS = {
    "question": [f"{i} + {i} =" for i in range(40)],
    "answer": [str(2 * i) for i in range(40)],
    "text": [f"document {i}: " + "alpha beta gamma " * (i % 5 + 1) for i in range(40)],
}


def write_jsonl(path: Path, rows: dict) -> Path:
    keys = list(rows)
    records = [dict(zip(keys, values)) for values in zip(*rows.values())]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def saved(tmp_path) -> Path:
    """ROWS saved with save_to_disk, in two arrow shards."""
    path = tmp_path / "saved"
    datasets.Dataset.from_dict(ROWS).save_to_disk(str(path), num_shards=2)
    return path


def test_a_saved_dataset_reads_as_the_same_jsonl(saved, tmp_path):
    jsonl = write_jsonl(tmp_path / "same.jsonl", ROWS)
    tasks = plan_read_tasks(Source(str(saved)))
    assert [t.fmt for t in tasks] == ["arrow", "arrow"]  # a read task per shard
    for source in (Source, lambda p: Source(p, template="Q: {question}\nA: {answer}")):
        assert list(iter_texts(source(str(saved)))) == list(iter_texts(source(str(jsonl))))
    prompts = PromptSourceSpec(str(saved), prompt_field="question", where={"answer": ["0", "4"]})
    assert read_prompts(prompts) == read_prompts(
        PromptSourceSpec(**{**vars(prompts), "path": str(jsonl)})
    )
    assert [p["prompt"] for p in read_prompts(prompts)] == ["0 + 0 =", "2 + 2 ="]
    assert read_heldout_texts(HeldoutSpec(str(saved))) == ROWS["text"]
    with pytest.raises(DataError, match="no field 'body'.*fields: question, answer, text"):
        list(iter_texts(Source(str(saved), text_field="body")))


def test_a_saved_dataset_dict_reads_its_train_split_or_the_one_named(tmp_path):
    train = datasets.Dataset.from_dict({"text": ["t1", "t2"]})
    test = datasets.Dataset.from_dict({"text": ["e1"], "n": [7]})
    datasets.DatasetDict(train=train, test=test).save_to_disk(str(tmp_path / "dd"))
    assert check_data_path(str(tmp_path / "dd")) is None
    assert list(iter_texts(Source(str(tmp_path / "dd")))) == ["t1", "t2"]
    assert list(iter_texts(Source(str(tmp_path / "dd" / "test"), template="{text}={n}"))) == [
        "e1=7"
    ]
    datasets.DatasetDict(dev=train, test=test).save_to_disk(str(tmp_path / "no-train"))
    problem = check_data_path(str(tmp_path / "no-train"))
    assert "splits dev, test and no 'train'" in problem and "no-train/dev" in problem


def test_the_stage_key_follows_a_saved_datasets_data(saved, tmp_path):
    def key() -> str:
        return make_plan(tmp_path, [{"path": str(saved)}]).stage("data-pretrain").key

    first = key()
    assert key() == first
    shutil.rmtree(saved)
    datasets.Dataset.from_dict({**ROWS, "text": ROWS["text"][::-1]}).save_to_disk(str(saved))
    assert key() != first
    jsonl = write_jsonl(tmp_path / "same.jsonl", ROWS)
    plain = make_plan(tmp_path, [{"path": str(jsonl)}]).stage("data-pretrain")
    assert "data_fingerprints" not in plain.config  # file sources keep their keys


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """A datasets cache holding 'tester/tiny' (splits train and test) as if it had been
    downloaded from the hub once: a prepared local dataset moved to the hub name's place."""
    cache = tmp_path / "hf-cache"
    builder = datasets.load_dataset_builder(
        "json",
        data_files={
            "train": str(write_jsonl(tmp_path / "d.jsonl", ROWS)),
            "test": str(tmp_path / "d.jsonl"),
        },
        cache_dir=str(cache),
    )
    builder.download_and_prepare()
    hub = cache / "tester___tiny" / "default" / "0.0.0" / "0123abcd"
    shutil.copytree(builder.cache_dir, hub)
    info = json.loads((hub / "dataset_info.json").read_text())
    (hub / "dataset_info.json").write_text(json.dumps({**info, "dataset_name": "tiny"}))
    for arrow in hub.glob("json-*.arrow"):
        arrow.rename(hub / arrow.name.replace("json-", "tiny-"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(cache))
    return cache


def test_a_hub_name_reads_from_the_cache_offline(hub_cache):
    assert datasets.config.HF_HUB_OFFLINE
    assert check_data_path("hf://tester/tiny@test") is None
    assert list(iter_texts(Source("hf://tester/tiny", template="{answer}"))) == ROWS["answer"]
    prompts = read_prompts(PromptSourceSpec("hf://tester/tiny@test", prompt_field="question"))
    assert prompts[3]["prompt"] == "3 + 3 =" and prompts[3]["answer"] == "6"
    assert "has no split 'dev'; its splits: train, test" in check_data_path("hf://tester/tiny@dev")
    assert "(config 'other')" in check_data_path("hf://tester/tiny/other")
    assert "not a hub dataset name" in check_data_path("hf://tester//tiny")


def test_an_uncached_hub_dataset_offline_is_a_clear_validate_error(tmp_path, capsys):
    problem = check_data_path("hf://nobody/missing-set")
    assert "'nobody/missing-set'" in problem and "hub is offline (HF_HUB_OFFLINE=1)" in problem
    with pytest.raises(DataError, match="source 'hf://nobody/missing-set': dataset 'nobody"):
        plan_read_tasks(Source("hf://nobody/missing-set"))
    spec = Path(__file__).parents[2] / "specs" / "quickstart.yaml"
    overrides = [f"workdir={tmp_path}", "rl.prompts.path=hf://nobody/missing-set@train"]
    assert main(["validate", str(spec), *overrides]) == 2
    err = capsys.readouterr().err
    assert "rl.prompts.path" in err and "nobody/missing-set" in err and "Traceback" not in err


def test_a_tiny_stage_trains_from_a_saved_dataset(ray_session, saved, tmp_path):
    plan = make_plan(tmp_path, [{"path": str(saved)}], tokens=512, seq_len=32)
    for name in ("tokenizer", "data-pretrain"):
        run_stage(plan, name)
    data_dir = plan.stage("data-pretrain").out_dir(plan.workdir)
    assert len(PackedDataset(data_dir)) == 512 // 32
    assert json.loads((data_dir / "meta.json").read_text())["sources"][0]["documents"] == 40
    records = read_metrics(run_stage(plan, "pretrain"))
    assert [r["step"] for r in records][-1] == 512 // 32 and records[-1]["nll"] > 0
