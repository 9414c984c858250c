"""Pushing a dataset folder: argument checks in process, the upload end to end against a fake Hub.

huggingface_hub reads HF_ENDPOINT when it is imported, so every test that talks to a Hub runs
the push (and the load-back) in a child Python with the fake Hub's address in its environment.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import huggingface_hub
import pytest

import builder.push as push_module
from builder import PROJECT_ROOT
from builder.card import CardParams
from builder.configs import CONFIGS, rl_rows
from builder.dataset import PARQUET_PATH, parquet_path, write_dataset
from builder.errors import DatasetError
from builder.push import check_repo_id, push_dataset, resolve_token
from tests.hubserver import FakeHub
from tests.rowfactory import make_rows

CHILD = textwrap.dedent("""
    import json, sys
    import datasets
    from builder.push import push_dataset

    folder, repo_id, cache = sys.argv[1:4]
    urls = [push_dataset(folder, repo_id), push_dataset(folder, repo_id, private=True, revision="v1")]
    rows = datasets.load_dataset(repo_id, split="train", cache_dir=cache).to_list()
    rl = datasets.load_dataset(repo_id, "rl", split="train", cache_dir=cache).to_list()
    print(json.dumps({"urls": urls, "rows": rows, "rl": rl}))
""")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(make_rows(), tmp_path_factory.mktemp("push") / "dataset", card_params=CardParams())


def _child_env(endpoint: str, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HF_ENDPOINT": endpoint,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "HF_TOKEN": "hf_dummy_token",
        "HF_HOME": str(home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def _run(code: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- end to end ---------------------------------------------------------------------------------


def test_push_then_load_back_through_the_hub(folder: Path, tmp_path: Path) -> None:
    stale = "data/train-00000-of-00002.parquet"
    with FakeHub() as hub:
        hub.seed("someone/kernel-prompts", {stale: b"a shard of an earlier push", "notes.txt": b"kept"})
        result = _run(CHILD, [str(folder), "someone/kernel-prompts", str(tmp_path / "cache")],
                      _child_env(hub.url, tmp_path / "home"))
        assert result.returncode == 0, result.stderr[-3000:]
        out = json.loads(result.stdout.splitlines()[-1])
        main_files, branch_files = hub.files("someone/kernel-prompts"), hub.files("someone/kernel-prompts", "v1")
        calls, tokens = set(hub.state.calls), hub.state.tokens_seen

    assert out["rows"] == sorted(make_rows(), key=lambda r: r["id"])
    assert out["rl"] == rl_rows(make_rows())
    base = f"{hub.url}/datasets/someone/kernel-prompts"
    assert out["urls"] == [base, f"{base}/tree/v1"]
    for files in (main_files, branch_files):
        names = ["README.md", "figures/speedup_per_stage.png", *(parquet_path(c.name) for c in CONFIGS)]
        for name in names:
            assert files[name] == (folder / name).read_bytes(), name
    assert stale not in main_files and main_files["notes.txt"] == b"kept"
    assert tokens == {"hf_dummy_token"}
    assert {"create_repo", "validate_yaml", "preupload", "lfs_batch", "lfs_put", "commit", "create_branch",
            "repo_info", "tree", "resolve"} <= calls


def test_unreachable_hub_fails_with_a_clear_error(folder: Path, tmp_path: Path) -> None:
    code = "import sys; from builder.push import push_dataset; push_dataset(sys.argv[1], 'someone/kp')"
    result = _run(code, [str(folder)], _child_env(f"http://127.0.0.1:{_closed_port()}", tmp_path))
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("builder.errors.DatasetError: push to someone/kp failed to create the repository")
    assert "ConnectError" in last or "refused" in last.lower()


def test_a_rejected_token_fails_with_the_hub_answer(folder: Path, tmp_path: Path) -> None:
    code = "import sys; from builder.push import push_dataset; push_dataset(sys.argv[1], 'someone/kp')"
    with FakeHub(valid_tokens={"hf_other"}) as hub:
        result = _run(code, [str(folder)], _child_env(hub.url, tmp_path))
        assert hub.state.repos == {}
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "DatasetError: push to someone/kp failed to create the repository" in last
    assert "401" in last and "is the token valid" in last


# -- checks before any upload -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("repo_id", "why"),
    [
        ("kernel-prompts", "must be 'namespace/name'"),
        ("a/b/c", "must be 'namespace/name'"),
        ("-me/kernel-prompts", "starts and ends with a letter or digit"),
        ("me/kernel prompts", "starts and ends with a letter or digit"),
        ("me/kernel--prompts", "'--' and '..' are not allowed"),
        ("me/kernel-prompts.git", "cannot end with '.git'"),
        ("me/" + "k" * 97, "longer than 96"),
    ],
)
def test_bad_repo_ids_are_refused(repo_id: str, why: str) -> None:
    with pytest.raises(DatasetError, match="bad repo id") as info:
        check_repo_id(repo_id)
    assert repr(repo_id) in str(info.value) and why in str(info.value)


@pytest.mark.parametrize("repo_id", ["me/kernel-prompts", "Org_1/kernel.prompts_v2", "a/b"])
def test_good_repo_ids_pass(repo_id: str) -> None:
    check_repo_id(repo_id)


@pytest.fixture
def no_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No token in the environment, and the stored-login file at an empty temporary path."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    token_file = tmp_path / "token"
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(token_file))
    return token_file


def test_missing_token_is_an_error(no_login: Path, folder: Path) -> None:
    with pytest.raises(DatasetError, match=r"no token: pass --token, set HF_TOKEN or run `hf auth login`"):
        push_dataset(folder, "me/kernel-prompts")


def test_token_order_is_argument_then_environment_then_login(no_login: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    no_login.write_text("hf_stored")
    assert resolve_token(None) == "hf_stored"
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert resolve_token(None) == "hf_env"
    assert resolve_token("hf_arg") == "hf_arg"


def test_a_folder_failing_the_integrity_check_is_not_pushed(folder: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "data" / "sft").mkdir(parents=True)
    (broken / PARQUET_PATH).write_bytes((folder / PARQUET_PATH).read_bytes())

    def no_hub(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the Hub was contacted")

    monkeypatch.setattr(push_module, "HfApi", no_hub)
    with pytest.raises(DatasetError, match="README.md .* is missing"):
        push_dataset(broken, "me/kernel-prompts", token="hf_x")
