"""Upload a dataset folder to the HuggingFace Hub.

The folder is uploaded as it is on disk (README.md, data/<config>/*.parquet, figures/*.png) in one commit,
after the same integrity check that `build` output must pass. The Hub address comes from
`HF_ENDPOINT`, read by huggingface_hub when it is imported.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import huggingface_hub
from huggingface_hub import HfApi

from builder.dataset import integrity_check
from builder.errors import DatasetError

#: What a push uploads; anything else in the folder stays local.
UPLOADED = ["README.md", "data/*/*.parquet", "figures/*.png"]
#: Remote files a push replaces, so stale shards or figures of an earlier push do not linger.
REPLACED = ["data/*", "figures/*"]

_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_NO_TOKEN = "no token: pass --token, set HF_TOKEN or run `hf auth login`"


def check_repo_id(repo_id: str) -> None:
    """Raise DatasetError unless `repo_id` is a valid 'namespace/name' Hub dataset id."""
    parts = repo_id.split("/")
    why = ""
    if len(parts) != 2:
        why = "it must be 'namespace/name', e.g. 'my-user/kernel-prompts'"
    elif not all(_PART.fullmatch(p) for p in parts):
        why = "each part takes letters, digits, '-', '_' and '.', and starts and ends with a letter or digit"
    elif any("--" in p or ".." in p for p in parts):
        why = "'--' and '..' are not allowed"
    elif len(parts[1]) > 96:
        why = "the name is longer than 96 characters"
    elif parts[1].endswith(".git"):
        why = "the name cannot end with '.git'"
    if why:
        raise DatasetError(f"bad repo id {repo_id!r}: {why}")


def resolve_token(token: str | None) -> str:
    """The token to push with: the argument, else HF_TOKEN, else the stored `hf auth login` token."""
    found = token or os.environ.get("HF_TOKEN") or huggingface_hub.get_token()
    if not found:
        raise DatasetError(_NO_TOKEN)
    return found


def push_dataset(
    dataset_dir: Path | str,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
) -> str:
    """Push the dataset folder `dataset_dir` to the Hub dataset `repo_id`; return the repo URL.

    Creates the repository (and the branch `revision`) when missing. Refuses a folder that fails
    `integrity_check`. Every Hub or network failure becomes a DatasetError naming the step.
    """
    check_repo_id(repo_id)
    key = resolve_token(token)
    folder = Path(dataset_dir)
    integrity_check(folder)
    api = HfApi(token=key)
    step = "create the repository"
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision:
            step = f"create the branch {revision!r}"
            api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
        step = "upload the dataset folder"
        api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=folder,
            revision=revision,
            allow_patterns=UPLOADED,
            delete_patterns=REPLACED,
            commit_message=f"Upload kernel-prompts dataset from {folder.name}",
        )
    except Exception as exc:  # the Hub client's transport, HTTP and response errors vary by version
        cause = _cause(exc)
        hint = " (is the token valid and allowed to write there?)" if re.search(r"\b40[13]\b", cause) else ""
        raise DatasetError(f"push to {repo_id} failed to {step} at {api.endpoint}: {cause}{hint}") from exc
    return str(url) if not revision else f"{url}/tree/{revision}"


def _cause(exc: BaseException) -> str:
    """The exception's message, or its type and the first cause that has one."""
    seen: BaseException | None = exc
    while seen is not None:
        text = str(seen).strip()
        if text:
            return f"{type(seen).__name__}: {text.splitlines()[0]}"
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__
