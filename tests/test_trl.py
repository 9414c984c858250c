"""Each config trains with its TRL trainer, under the settings the card states, on a tiny model.

The dataset is built from the committed records (rows whose records are stale are left out). The model is a 2-layer Qwen2 of hidden size 16
made from a config (one attention head: a 14k-token conversation stays cheap on a CPU); its tokenizer is a byte-level BPE trained here on the dataset's own text,
with builder.tokens' chat template. Nothing is downloaded. The settings come from
builder.tokens.train_settings, the function the card's snippets are rendered from, applied to
this tokenizer's counts: if that function would let TRL truncate a row, drop it or leave an
answer out of the loss, these tests fail.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

trl = pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")

import datasets  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

from builder.build import build  # noqa: E402
from builder.judge.score import reward_fn  # noqa: E402
from builder.seeds import load_problems  # noqa: E402
from builder.tokens import TrainSettings, config_stats, hf_tokenizer, train_settings  # noqa: E402

pytestmark = pytest.mark.trl
datasets.disable_progress_bars()

#: The tiny tokenizer's vocabulary (the dataset's text gives fewer merges than this).
VOCAB = 4096


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out, _, _ = build(load_problems(), tmp_path_factory.mktemp("trl") / "dataset", skip_verify=True,
                      measure_missing=False, allow_missing=True)
    return out


@pytest.fixture(scope="module")
def tables(folder: Path) -> dict[str, list[dict[str, Any]]]:
    return {name: load(folder, name).to_list() for name in ("sft", "trajectories", "preference", "rl")}


def load(folder: Path, name: str) -> datasets.Dataset:
    return datasets.load_dataset(str(folder), name, split="train", cache_dir=str(folder.parent / "cache"))


@pytest.fixture(scope="module")
def tokenizer(tables: dict[str, list[dict[str, Any]]]) -> Any:
    texts = [row[k] for row in tables["sft"] for k in ("prompt", "completion")]
    texts += sorted({row["rejected"] for row in tables["preference"]})
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    return hf_tokenizer(backend)


@pytest.fixture(scope="module")
def settings(tables: dict[str, list[dict[str, Any]]], tokenizer: Any) -> TrainSettings:
    return train_settings(config_stats(tables, tokenizer))


def tiny_model(tokenizer: Any) -> Any:
    transformers.set_seed(0)
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=32768, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
    )
    return transformers.Qwen2ForCausalLM(config)


def common(tmp_path: Path) -> dict[str, Any]:
    return {"output_dir": str(tmp_path), "max_steps": 1, "per_device_train_batch_size": 1, "report_to": [],
            "use_cpu": True, "save_strategy": "no", "logging_steps": 1, "dataloader_num_workers": 0, "seed": 0,
            "learning_rate": 1e-3}


def trained_loss(trainer: Any) -> float:
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses and all(math.isfinite(x) for x in losses)
    return losses[0]


def in_loss(tokenizer: Any, example: dict[str, Any]) -> str:
    """The text of the tokens that count in the loss of one prepared SFT example."""
    return tokenizer.decode([t for t, label in zip(example["input_ids"], example["labels"]) if label != -100])


def test_sft_keeps_every_row_and_learns_every_completion(folder: Path, tables: dict[str, list[dict[str, Any]]],
                                                         tokenizer: Any, settings: TrainSettings,
                                                         tmp_path: Path) -> None:
    pairs = load(folder, "sft").select_columns(["prompt", "completion"])
    trainer = trl.SFTTrainer(model=tiny_model(tokenizer), processing_class=tokenizer, train_dataset=pairs,
                             args=trl.SFTConfig(max_length=settings.sft_max_length, **common(tmp_path)))
    prepared = trainer.train_dataset
    assert len(prepared) == len(tables["sft"])
    for example, row in zip(prepared, pairs):
        assert len(example["input_ids"]) <= settings.sft_max_length
        assert row["completion"] in in_loss(tokenizer, example)
        assert row["prompt"][:200] not in in_loss(tokenizer, example)
    trained_loss(trainer)


def test_trajectories_put_every_answer_and_no_prompt_in_the_loss(folder: Path, tokenizer: Any,
                                                                 settings: TrainSettings, tmp_path: Path) -> None:
    conversations = load(folder, "trajectories").select_columns(["messages"])
    config = trl.SFTConfig(max_length=settings.trajectories_max_length, assistant_only_loss=True, **common(tmp_path))
    trainer = trl.SFTTrainer(model=tiny_model(tokenizer), processing_class=tokenizer,
                             train_dataset=conversations, args=config)
    prepared = trainer.train_dataset
    assert len(prepared) == len(conversations)
    for example, row in zip(prepared, conversations):
        learned = in_loss(tokenizer, example)
        answers = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
        assert learned == "".join(answer + "<|im_end|>" for answer in answers)
        assert len(example["input_ids"]) <= settings.trajectories_max_length
    # Every conversation was prepared and checked above; the optimizer step takes the shortest.
    shortest = min(range(len(prepared)), key=lambda i: len(prepared[i]["input_ids"]))
    trainer.train_dataset = prepared.select([shortest])
    trained_loss(trainer)


def test_trl_defaults_would_drop_every_sft_row(folder: Path, tokenizer: Any, tmp_path: Path) -> None:
    pairs = load(folder, "sft").select_columns(["prompt", "completion"])
    trainer = trl.SFTTrainer(model=tiny_model(tokenizer), processing_class=tokenizer, train_dataset=pairs,
                             args=trl.SFTConfig(**common(tmp_path)))
    assert len(trainer.train_dataset) == 0


def test_dpo_trains_on_whole_pairs(folder: Path, tables: dict[str, list[dict[str, Any]]], tokenizer: Any,
                                   settings: TrainSettings, tmp_path: Path) -> None:
    pairs = load(folder, "preference").select_columns(["prompt", "chosen", "rejected"])
    trainer = trl.DPOTrainer(model=tiny_model(tokenizer), ref_model=tiny_model(tokenizer), processing_class=tokenizer,
                             train_dataset=pairs,
                             args=trl.DPOConfig(max_length=settings.dpo_max_length, **common(tmp_path)))
    prepared = trainer.train_dataset
    assert len(prepared) == len(tables["preference"])
    for example in prepared:
        longest = len(example["prompt_ids"]) + max(len(example["chosen_ids"]), len(example["rejected_ids"]))
        assert longest <= settings.dpo_max_length
    trained_loss(trainer)


def test_grpo_scores_generations_with_the_judge(folder: Path, tokenizer: Any, settings: TrainSettings,
                                                tmp_path: Path) -> None:
    prompts = load(folder, "rl")
    seen: list[dict[str, Any]] = []

    def judged(completions: list[Any], **kwargs: Any) -> list[float]:
        seen.append(kwargs)
        return reward_fn(completions, **kwargs)

    config = trl.GRPOConfig(max_completion_length=8, num_generations=2, per_device_train_batch_size=2,
                            **{k: v for k, v in common(tmp_path).items() if k != "per_device_train_batch_size"})
    trainer = trl.GRPOTrainer(model=tiny_model(tokenizer), processing_class=tokenizer, reward_funcs=judged,
                              train_dataset=prompts, args=config)
    trainer.train()
    assert seen and {"problem", "stage", "gpu", "current_code", "current_ms", "id"} <= set(seen[0])
    assert set(seen[0]["problem"]) <= set(prompts["problem"])
    rewards = [entry for entry in trainer.state.log_history if "reward" in entry]
    assert rewards and rewards[0]["reward"] == 0.0
    longest = max(len(tokenizer(row["completion"])["input_ids"]) for row in load(folder, "sft"))
    assert settings.grpo_max_completion_length >= longest


@pytest.fixture(scope="module")
def card_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model saved with the card's tokenizer, to stand in for the snippets' model id."""
    from builder.tokens import qwen_tokenizer

    folder = tmp_path_factory.mktemp("card-model")
    tokenizer = qwen_tokenizer()
    tiny_model(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def snippets(card: str) -> list[str]:
    """The card's Python blocks that build a trainer."""
    blocks = card.split("```python\n")[1:]
    return [block.split("```")[0] for block in blocks if "Trainer(" in block]


@pytest.mark.parametrize("index", range(4))
def test_the_cards_snippets_keep_every_row_whole(folder: Path, tables: dict[str, list[dict[str, Any]]],
                                                 card_model: Path, index: int, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    card = (folder / "README.md").read_text()
    code = snippets(card)[index]
    assert code.count("trainer.train()") == 1
    code = code.replace("trainer.train()", "").replace('"Qwen/Qwen2.5-Coder-1.5B-Instruct"', repr(str(card_model)))
    code = code.replace('"<namespace>/kernel-prompts"', repr(str(folder)))
    assert code.count("(output_dir=") == 1
    code = code.replace("(output_dir=", "(use_cpu=True, output_dir=")  # the defaults ask for a bf16 GPU
    monkeypatch.chdir(tmp_path)
    scope: dict[str, Any] = {}
    exec(compile(code, f"card snippet {index}", "exec"), scope)  # the card's code, with local stand-ins
    trainer = scope["trainer"]
    prepared = trainer.train_dataset
    tokenizer = trainer.processing_class
    if isinstance(trainer, trl.SFTTrainer):
        name = "trajectories" if trainer.args.assistant_only_loss else "sft"
        assert len(prepared) == len(tables[name])
        for example, row in zip(prepared, tables[name]):
            learned = in_loss(tokenizer, example)
            answers = [row["completion"]] if name == "sft" else [
                m["content"] for m in row["messages"] if m["role"] == "assistant"]
            assert all(answer in learned for answer in answers), row["id"]
    elif isinstance(trainer, trl.DPOTrainer):
        assert len(prepared) == len(tables["preference"])
        longest = max(len(e["prompt_ids"]) + max(len(e["chosen_ids"]), len(e["rejected_ids"])) for e in prepared)
        assert longest <= trainer.args.max_length
    else:
        assert isinstance(trainer, trl.GRPOTrainer)
        longest = max(len(tokenizer(row["completion"])["input_ids"]) for row in tables["sft"])
        assert longest < trainer.args.max_completion_length
