"""Features from the row schema, row checks, the atomic Hub-layout writer and the integrity check."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import datasets
import pytest

import builder.dataset as dataset_module
from builder.card import CardParams
from builder.configs import CONFIGS
from builder.dataset import (
    PARQUET_PATH,
    check_rows,
    features,
    features_from_schema,
    integrity_check,
    load_rows,
    parquet_path,
    write_dataset,
)
from builder.errors import DatasetError
from builder.schema import load_schema
from tests.rowfactory import make_row, make_rows


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _schema_nodes(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for key, child in node.get("properties", {}).items():
        found += _schema_nodes(child, f"{path}.{key}" if path else key)
    if "items" in node:
        found += _schema_nodes(node["items"], f"{path}[]")
    return found


@pytest.fixture
def built(tmp_path: Path) -> Path:
    return write_dataset(make_rows(), tmp_path / "dataset", card_params=CardParams())


# -- the schema and the Features ------------------------------------------------------------


def test_features_from_schema_maps_every_kind() -> None:
    schema = {
        "type": "object",
        "properties": {
            "s": {"type": "string"},
            "i": {"type": "integer"},
            "n": {"type": "number"},
            "b": {"type": "boolean"},
            "maybe": {"type": ["number", "null"]},
            "nested": {"type": "object", "properties": {"x": {"type": ["null", "string"]}}},
            "pairs": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    assert features_from_schema(schema) == datasets.Features({
        "s": datasets.Value("string"),
        "i": datasets.Value("int64"),
        "n": datasets.Value("float64"),
        "b": datasets.Value("bool"),
        "maybe": datasets.Value("float64"),
        "nested": {"x": datasets.Value("string")},
        "pairs": datasets.List({"k": datasets.Value("string")}),
        "tags": datasets.List(datasets.Value("string")),
    })


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"type": ["number", "string"]}, "exactly one non-null type"),
        ({"type": "array"}, "needs 'items'"),
        ({"type": "object"}, "needs 'properties'"),
        ({"description": "untyped"}, "exactly one non-null type"),
    ],
)
def test_features_from_schema_rejects_what_features_cannot_hold(node: dict[str, Any], message: str) -> None:
    schema = {"type": "object", "properties": {"field": node}}
    with pytest.raises(DatasetError, match=message) as info:
        features_from_schema(schema)
    assert "schema field" in str(info.value)


def test_row_features_follow_the_schema() -> None:
    schema = load_schema("row")
    row_features = features()
    assert list(row_features) == list(schema["properties"])
    assert row_features["messages"] == datasets.List(
        {"role": datasets.Value("string"), "content": datasets.Value("string")}
    )
    assert row_features["current"]["metrics"].feature["value"] == datasets.Value("float64")
    assert row_features["bytes_moved"] == datasets.Value("int64")
    assert row_features["verification"]["passed"] == datasets.Value("bool")


@pytest.mark.parametrize("schema", [c.schema for c in CONFIGS])
def test_every_schema_field_is_typed_described_and_closed(schema: str) -> None:
    for path, node in _schema_nodes(load_schema(schema)):
        assert "type" in node, path
        if path:
            assert node.get("description"), f"{path} has no description"
        if node["type"] == "object":
            assert node["additionalProperties"] is False, path
            assert node["required"] == list(node["properties"]), path


# -- row checks -------------------------------------------------------------------------------


def test_factory_rows_are_valid() -> None:
    check_rows(make_rows())


def test_check_rows_lists_every_problem() -> None:
    missing = make_row()
    del missing["hashes"]
    wrong_type = make_row("avgpool1d", 2)
    wrong_type["current"]["timing"]["runs"] = 20.5
    misnamed = make_row("avgpool1d", 3)
    misnamed["id"] = "avgpool1d/oops/h100"
    chat = make_row("avgpool2d", 1)
    chat["messages"][1]["content"] = "something else"
    rows = [missing, wrong_type, misnamed, chat, make_row("avgpool2d", 1)]
    with pytest.raises(DatasetError) as info:
        check_rows(rows)
    text = str(info.value)
    assert "missing required field 'hashes'" in text
    assert "current.timing.runs: expected integer" in text
    assert "id: expected 'avgpool1d/memory_access/h100'" in text
    assert "messages: must be exactly [user: prompt, assistant: completion]" in text
    assert "id 'avgpool2d/grid_and_parallel/h100' appears 2 times" in text


def test_check_rows_names_a_misspelt_field() -> None:
    row = make_row()
    row["speedup"]["vs_eagre"] = row["speedup"].pop("vs_eager")
    with pytest.raises(DatasetError, match="did you mean 'vs_eager'"):
        check_rows([row])


# -- writing and loading ------------------------------------------------------------------------


@pytest.mark.parametrize("config", [c.name for c in CONFIGS])
def test_config_features_follow_their_schema(config: str) -> None:
    schema = load_schema(next(c.schema for c in CONFIGS if c.name == config))
    assert list(features(config)) == list(schema["properties"])


def test_unknown_config_is_named() -> None:
    with pytest.raises(DatasetError, match="unknown dataset config 'dpo'; known: sft, trajectories"):
        features("dpo")


def test_write_gives_the_hub_layout_and_loads_back(built: Path) -> None:
    assert (built / "README.md").is_file()
    assert PARQUET_PATH == "data/sft/train-00000-of-00001.parquet"
    for config in CONFIGS:
        assert (built / parquet_path(config.name)).is_file(), config.name
        loaded = datasets.load_dataset(str(built), config.name, split="train", cache_dir=str(built.parent / "cache"))
        assert loaded.features == features(config.name) and len(loaded) > 0
    assert sorted(p.name for p in (built / "figures").iterdir()) == [
        "bandwidth_vs_roofline.png", "speedup_per_stage.png",
    ]
    assert load_rows(built) == sorted(make_rows(), key=lambda r: r["id"])
    loaded = datasets.load_dataset(str(built), split="train", cache_dir=str(built.parent / "cache"))
    assert loaded.features == features()
    assert loaded[0]["current"]["metrics"][1] == {
        "kernel": "avg_pool_kernel", "metric": "launch__grid_size", "value": None, "note": "not reported by ncu",
    }
    integrity_check(built)


def test_same_rows_in_any_order_give_the_same_files(tmp_path: Path) -> None:
    rows = make_rows()
    first = write_dataset(rows, tmp_path / "a", card_params=CardParams())
    second = write_dataset(list(reversed(copy.deepcopy(rows))), tmp_path / "b", card_params=CardParams())
    assert _digests(first) == _digests(second)
    assert len(_digests(first)) == 1 + len(CONFIGS) + 2


def test_rewrite_replaces_the_previous_folder(built: Path) -> None:
    write_dataset([make_row("avgpool1d", 4)], built, card_params=CardParams())
    assert [r["id"] for r in load_rows(built)] == ["avgpool1d/advanced_memory/h100"]
    assert [p.name for p in built.parent.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("step", ["write_card", "_swap_in"])
def test_a_crash_mid_build_keeps_the_previous_folder(built: Path, monkeypatch: pytest.MonkeyPatch,
                                                     step: str) -> None:
    before = _digests(built)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"simulated crash in {step}")

    monkeypatch.setattr(dataset_module, step, crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_dataset([make_row("avgpool1d", 4)], built, card_params=CardParams())
    assert _digests(built) == before
    assert [p.name for p in built.parent.iterdir()] == ["dataset"]


def test_invalid_rows_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    row = make_row()
    row["bytes_moved"] = "a lot"
    with pytest.raises(DatasetError, match="bytes_moved: expected integer"):
        write_dataset([row], tmp_path / "out", card_params=CardParams())
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_is_not_a_dataset_is_never_replaced(tmp_path: Path) -> None:
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="refusing to replace"):
        write_dataset(make_rows(), precious, card_params=CardParams())
    assert (precious / "notes.txt").read_text() == "keep me"


# -- integrity check ------------------------------------------------------------------------------


def test_integrity_check_needs_the_card(built: Path) -> None:
    (built / "README.md").unlink()
    with pytest.raises(DatasetError, match="README.md"):
        integrity_check(built)


def test_integrity_check_needs_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such dataset folder"):
        integrity_check(tmp_path / "absent")


def test_integrity_check_catches_rows_that_break_the_schema(built: Path) -> None:
    rows = make_rows()
    rows[0]["messages"][0]["role"] = "tool"  # as long as "user", so the recorded split sizes still hold
    datasets.Dataset.from_list(rows, features=features()).to_parquet(str(built / PARQUET_PATH))
    with pytest.raises(DatasetError, match="'tool' is not one of"):
        integrity_check(built)


def test_integrity_check_catches_other_features(built: Path) -> None:
    table = datasets.Dataset.from_list(make_rows(), features=features()).remove_columns("hashes")
    table.to_parquet(str(built / PARQUET_PATH))
    (built / "README.md").write_text("---\nconfigs:\n- config_name: sft\n  data_files: data/sft/train-*\n---\n")
    with pytest.raises(DatasetError, match="Features differ .*hashes"):
        integrity_check(built)


def test_integrity_check_checks_every_config(built: Path) -> None:
    rows = load_rows(built, "rl")
    rows[0]["current_ms"] = -1.0
    datasets.Dataset.from_list(rows, features=features("rl")).to_parquet(str(built / parquet_path("rl")))
    with pytest.raises(DatasetError, match=r"1 rl row problem\(s\), first: rl row 0 .*current_ms: -1.0 is below"):
        integrity_check(built)


def test_integrity_check_needs_the_default_config(built: Path) -> None:
    (built / PARQUET_PATH).unlink()
    (built / PARQUET_PATH).parent.rmdir()
    with pytest.raises(DatasetError, match="data/sft/ .* is missing"):
        integrity_check(built)


def test_integrity_check_catches_unreadable_data(built: Path) -> None:
    (built / PARQUET_PATH).write_bytes(b"not parquet")
    with pytest.raises(DatasetError, match="rows do not load"):
        integrity_check(built)
