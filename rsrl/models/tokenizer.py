"""The tokenizer stage: a byte-level BPE trained on the pre-training mixture, or a local HF
tokenizer directory copied in. Either way the stage leaves an HF tokenizer directory at
`<stage dir>/tokenizer` that `load_tokenizer` (and vLLM) load.

Special tokens: EOS `<|endoftext|>` ends every document (rsrl adds no BOS when packing;
the BOS token exists for tools that want one), PAD `<|pad|>` pads batches.

Prompt template: the directory's chat template renders a user message exactly as
`rsrl.data.prompt_format.format_prompt` does ("Question: <prompt>\\nSolution:"), and an
assistant message as " <content><eos>". rsrl trains its models on corpora written in
that plain format, so a copied pretrained tokenizer gets this template too (replacing
its own). Use `render_prompt` for RL and eval prompts.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from transformers import PreTrainedTokenizerFast

from rsrl.data.prompt_format import QUESTION_PREFIX, SOLUTION_PREFIX
from rsrl.data.sources import Source, iter_texts

if TYPE_CHECKING:  # annotation only: data and models never import the pipeline
    from rsrl.pipeline.registry import StageContext

log = logging.getLogger("rsrl")

TOKENIZER_SUBDIR = "tokenizer"
EOS, BOS, PAD = "<|endoftext|>", "<|startoftext|>", "<|pad|>"
SAMPLE_CHARS = 2_000_000  # text the BPE is trained on: seconds of training, stable merges
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}"
    + QUESTION_PREFIX
    + "{{ m['content'] }}"
    + SOLUTION_PREFIX
    + "{% elif m['role'] == 'assistant' %} {{ m['content'] }}{{ eos_token }}{% endif %}"
    "{% endfor %}"
)


def tokenizer_dir(stage_dir: str | Path) -> Path:
    return Path(stage_dir) / TOKENIZER_SUBDIR


def load_tokenizer(stage_dir: str | Path) -> PreTrainedTokenizerFast:
    """The tokenizer a tokenizer stage wrote under `stage_dir` (never from a hub)."""
    return PreTrainedTokenizerFast.from_pretrained(
        str(tokenizer_dir(stage_dir)), local_files_only=True
    )


def render_prompt(tokenizer: PreTrainedTokenizerFast, prompt: str) -> str:
    """`prompt` as the policy sees it; the completion is generated right after it."""
    return tokenizer.apply_chat_template(  # type: ignore[return-value]  # str when not tokenize
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


def special_token_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int | None]:
    """eos/bos/pad ids as keyword arguments for `rsrl.models.build.build_model`."""
    return {
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def sample_texts(sources: Iterable[Source], max_chars: int = SAMPLE_CHARS) -> list[str]:
    """The first documents of each source, about `max_chars` in all, shared by weight."""
    sources = list(sources)
    total_weight = sum(s.weight for s in sources)
    texts: list[str] = []
    for source in sources:
        budget = max_chars * source.weight / total_weight
        for text in iter_texts(source):
            texts.append(text)
            budget -= len(text)
            if budget <= 0:
                break
    return texts


def train_bpe(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE of at most `vocab_size` tokens (specials included).

    Digits are split one by one before BPE, so numbers tokenise the same way in every
    context, which is what lets a small model learn arithmetic.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, BOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return _with_specials(PreTrainedTokenizerFast(tokenizer_object=tok))


def _with_specials(tokenizer: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    """Our EOS/BOS/PAD where the tokenizer has none, and rsrl's prompt template."""
    missing = {
        name: token
        for name, token in (("eos_token", EOS), ("bos_token", BOS), ("pad_token", PAD))
        if getattr(tokenizer, name) is None
    }
    if missing:
        tokenizer.add_special_tokens(missing)  # type: ignore[arg-type]  # transformers' invariant dict
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def copy_pretrained(src: str | Path, dst: Path) -> PreTrainedTokenizerFast:
    """Copy the local tokenizer directory `src` to `dst`, completing specials and template."""
    from rsrl.data.errors import DataError

    try:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(src), local_files_only=True)
    except (OSError, ValueError) as err:
        raise DataError(
            f"tokenizer.path '{src}': not a loadable HF tokenizer directory "
            f"({str(err).splitlines()[0]})"
        ) from None
    shutil.copytree(src, dst, dirs_exist_ok=True)  # keep any extra files it ships
    return _with_specials(tokenizer)


def tokenizer_stage(ctx: StageContext) -> dict:
    """Stage function (kind "tokenizer"): writes `ctx.out_dir/tokenizer`."""
    cfg = ctx.stage.config["tokenizer"]
    out = tokenizer_dir(ctx.out_dir)
    if cfg["kind"] == "pretrained":
        tokenizer = copy_pretrained(cfg["path"], out)
    else:
        sources = [Source.from_config(s) for s in ctx.stage.config.get("sample_from", [])]
        texts = sample_texts(sources)
        log.info(
            "tokenizer: training a %d-token BPE on %d documents (%d chars)",
            cfg["vocab_size"],
            len(texts),
            sum(map(len, texts)),
        )
        tokenizer = train_bpe(texts, cfg["vocab_size"])
    tokenizer.save_pretrained(str(out))
    return {"kind": cfg["kind"], "vocab_size": len(tokenizer), **special_token_ids(tokenizer)}
