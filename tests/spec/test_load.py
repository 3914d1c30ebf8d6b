import time
from pathlib import Path

import pytest

from rsrl.data.config import DataSourceSpec
from rsrl.spec import SpecError, load_spec
from rsrl.spec.load import spec_to_yaml

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "specs" / "quickstart.yaml"


def test_quickstart_loads_typed():
    spec = load_spec(QUICKSTART)
    assert spec.name == "quickstart"
    assert spec.objective.topk.lam_tail == -0.1
    assert isinstance(spec.stages.pretrain.data[0], DataSourceSpec)
    assert spec.tokenizer.vocab_size == spec.model.vocab_size == 2048  # ${model.vocab_size}


def test_dotted_overrides_and_list_items():
    spec = load_spec(
        QUICKSTART,
        [
            "objective.beta=0.5",
            "rl.group_size=16",
            "stages.pretrain.data.0.weight=2.5",
            "model.vocab_size=1024",
        ],
    )
    assert spec.objective.beta == 0.5
    assert spec.rl.group_size == 16
    assert spec.stages.pretrain.data[0].weight == 2.5
    assert spec.tokenizer.vocab_size == 1024  # interpolation sees the override


def test_an_unset_mapping_takes_dotted_keys_one_at_a_time():
    spec = load_spec(
        QUICKSTART, ["rl.prompts.where.task=count", "rl.prompts.where.difficulty=[1, 2]"]
    )
    assert spec.rl.prompts.where == {"task": "count", "difficulty": [1, 2]}
    with pytest.raises(SpecError, match="did you mean 'where'"):
        load_spec(QUICKSTART, ["rl.prompts.wher.task=count"])


def test_all_problems_are_reported_at_once():
    with pytest.raises(SpecError) as err:
        load_spec(QUICKSTART, ["rl.group_size=1", "objective.topk.k=0"])
    assert len(err.value.problems) == 2


def test_stage_objective_override_merges_onto_top_level():
    spec = load_spec(QUICKSTART, ["stages.midtrain.objective={beta: 0.5}"])
    merged = spec.stages.midtrain.objective_over(spec.objective)
    assert merged.beta == 0.5 and merged.topk.lam_tail == -0.1
    with pytest.raises(SpecError, match="stages.midtrain.objective.beta"):
        load_spec(QUICKSTART, ["stages.midtrain.objective={beta: -2.0}"])


def test_resolved_yaml_round_trips(tmp_path):
    spec = load_spec(QUICKSTART, ["objective.beta=0.5"])
    path = tmp_path / "resolved.yaml"
    path.write_text(spec_to_yaml(spec))
    assert load_spec(path) == spec


def test_an_alias_bomb_fails_within_a_second():
    start = time.monotonic()
    with pytest.raises(SpecError, match="expands to more than 20000 values"):
        load_spec(Path(__file__).parent / "bad" / "alias_bomb.yaml")
    assert time.monotonic() - start < 1.0


def test_a_duplicate_key_names_the_key_and_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(QUICKSTART.read_text() + "seed: 1\nseed: 2\n")
    with pytest.raises(SpecError, match=r"duplicate key 'seed' at line \d+ \(first given at line"):
        load_spec(path)


def test_merge_keys_may_override_what_they_merge(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text(
        QUICKSTART.read_text().replace("rl:", "rl:\n  <<: {steps: 7, adv_norm: none}", 1)
    )
    spec = load_spec(path)
    explicit = load_spec(QUICKSTART).rl.steps
    assert explicit != 7 and spec.rl.steps == explicit  # the explicit key wins
    assert spec.rl.adv_norm == "none"


def test_a_data_directory_without_data_files_is_refused(tmp_path):
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / "notes.csv").write_text("a,b\n")
    with pytest.raises(
        SpecError,
        match=r"stages.pretrain.data\[0\].path: directory '.*' holds "
        r"no .jsonl.gz, .jsonl, .txt.gz, .txt, .parquet files",
    ):
        load_spec(QUICKSTART, [f"stages.pretrain.data=[{{path: '{tmp_path}'}}]"])
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "part-0.jsonl").write_text('{"text": "hello"}\n')
    load_spec(QUICKSTART, [f"stages.pretrain.data=[{{path: '{tmp_path}'}}]"])  # now valid
