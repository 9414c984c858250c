"""A fake HuggingFace Hub for tests: the dataset endpoints that uploads and downloads use.

It keeps repositories in memory and serves them on 127.0.0.1 at an ephemeral port. Writes need a
bearer token; reads do not. Paths it does not know answer 404 and are recorded in `unknown`, so
a test can show which endpoint a newer client started to use.

    with FakeHub() as hub:
        os.environ["HF_ENDPOINT"] = hub.url  # before huggingface_hub is imported
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

_REPO = r"(?P<repo>[^/]+/[^/]+)"
_REV = r"(?P<rev>[^/]+)"
LFS_SUFFIXES = (".parquet", ".png")


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob with `content`."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Repo:
    """One dataset repository: commits by sha, and each branch's head commit."""

    private: bool
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> {path: content}
    branches: dict[str, str] = field(default_factory=dict)  # branch name -> head commit sha
    lfs: set[str] = field(default_factory=set)  # paths stored through LFS

    def head(self, rev: str) -> tuple[str, dict[str, bytes]] | None:
        """The commit sha and files that `rev` (a branch or a commit sha) names, or None."""
        sha = self.branches.get(rev, rev)
        return (sha, self.commits[sha]) if sha in self.commits else None

    def commit(self, branch: str, sha: str, files: dict[str, bytes]) -> None:
        """Record a new commit with `files` as the head of `branch`."""
        self.commits[sha] = files
        self.branches[branch] = sha


@dataclass
class HubState:
    """Everything the fake Hub holds, shared by the request threads."""

    repos: dict[str, Repo] = field(default_factory=dict)
    lfs_objects: dict[str, bytes] = field(default_factory=dict)
    tokens_seen: set[str] = field(default_factory=set)
    valid_tokens: frozenset[str] | None = None  # None: any non-empty token is accepted
    calls: list[str] = field(default_factory=list)  # endpoint names in the order they were called
    unknown: list[str] = field(default_factory=list)  # requests no route matched
    commits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: HubState  # set on the subclass that FakeHub builds
    body: bytes = b""  # the request body, read before routing

    def log_message(self, format: str, *args: Any) -> None:
        return

    # -- plumbing ---------------------------------------------------------------------------

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(value).encode(), headers)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message}, {"X-Error-Message": message})

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        valid = self.state.valid_tokens
        if not token or (valid is not None and token not in valid):
            self._error(401, "Invalid credentials in Authorization header")
            return False
        self.state.tokens_seen.add(token)
        return True

    def _base(self) -> str:
        return f"http://{self.headers.get('Host')}"

    def _route(self, routes: list[tuple[str, Any]]) -> None:
        path = urlsplit(self.path).path
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        for pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match:
                args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                with self.state.lock:
                    self.state.calls.append(handler.__name__.lstrip("_"))
                    handler(**args)
                return
        self.state.unknown.append(f"{self.command} {self.path}")
        self._error(404, f"fake hub: no route for {self.command} {path}")

    def _branch(self, repo_id: str, rev: str) -> tuple[Repo, str, dict[str, bytes]] | None:
        repo = self.state.repos.get(repo_id)
        if repo is None:
            self._error(404, f"Repository not found: {repo_id}")
            return None
        head = repo.head(rev)
        if head is None:
            self._error(404, f"Revision Not Found: {rev}")
            return None
        return repo, head[0], head[1]

    def _entry(self, repo: Repo, path: str, files: dict[str, bytes]) -> dict[str, Any]:
        if path in files:
            content = files[path]
            entry: dict[str, Any] = {"type": "file", "path": path, "size": len(content), "oid": git_blob_oid(content)}
            if path in repo.lfs:
                entry["lfs"] = {"oid": hashlib.sha256(content).hexdigest(), "size": len(content), "pointerSize": 134}
            return entry
        return {"type": "directory", "path": path, "oid": git_blob_oid(path.encode()), "size": 0}

    # -- verbs ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._route([
            (rf"/api/datasets/{_REPO}(?:/revision/{_REV})?", self._repo_info),
            (rf"/api/datasets/{_REPO}/tree/{_REV}(?:/(?P<path>.*))?", self._tree),
            (rf"/datasets/{_REPO}/resolve/{_REV}/(?P<path>.+)", self._resolve),
        ])

    def do_HEAD(self) -> None:
        self._route([(rf"/datasets/{_REPO}/resolve/{_REV}/(?P<path>.+)", self._resolve)])

    def do_POST(self) -> None:
        self._route([
            (r"/api/repos/create", self._create_repo),
            (r"/api/validate-yaml", self._validate_yaml),
            (rf"/api/datasets/{_REPO}/branch/{_REV}", self._create_branch),
            (rf"/api/datasets/{_REPO}/preupload/{_REV}", self._preupload),
            (rf"/datasets/{_REPO}\.git/info/lfs/objects/batch", self._lfs_batch),
            (rf"/api/datasets/{_REPO}/commit/{_REV}", self._commit),
            (rf"/api/datasets/{_REPO}/paths-info/{_REV}", self._paths_info),
        ])

    def do_PUT(self) -> None:
        self._route([(r"/lfs-upload/(?P<oid>[0-9a-f]{64})", self._lfs_put)])

    # -- endpoints --------------------------------------------------------------------------

    def _create_repo(self) -> None:
        if not self._authorized():
            return
        payload = json.loads(self.body)
        if payload.get("type") != "dataset":
            self._error(400, "fake hub: only dataset repositories")
            return
        repo_id = f"{payload['organization']}/{payload['name']}"
        url = f"{self._base()}/datasets/{repo_id}"
        if repo_id in self.state.repos:
            self._json(409, {"error": "You already created this dataset repo", "url": url})
            return
        repo = Repo(private=payload.get("visibility") == "private")
        repo.commit("main", self._new_sha(repo_id), {".gitattributes": b"*.parquet filter=lfs\n"})
        self.state.repos[repo_id] = repo
        self._json(200, {"url": url, "name": repo_id})

    def _validate_yaml(self) -> None:
        content = json.loads(self.body)["content"]
        match = re.match(r"---\n(.*?)\n---\n", content, re.DOTALL)
        try:
            metadata = yaml.safe_load(match.group(1)) if match else None
        except yaml.YAMLError as exc:
            self._json(400, {"errors": [{"message": f"invalid YAML: {exc}"}]})
            return
        if not isinstance(metadata, dict):
            self._json(400, {"errors": [{"message": "README.md has no YAML metadata block"}]})
            return
        self._json(200, {"errors": [], "warnings": []})

    def _create_branch(self, repo: str, rev: str) -> None:
        if not self._authorized():
            return
        found = self._branch(repo, "main")
        if found is None:
            return
        stored, sha, files = found
        if rev in stored.branches:
            self._error(409, f"Reference already exists: {rev}")
            return
        stored.branches[rev] = sha
        self._json(200, {})

    def _preupload(self, repo: str, rev: str) -> None:
        if not self._authorized():
            return
        payload = json.loads(self.body)
        if self._branch(repo, rev) is None:
            return
        modes = [
            {"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular",
             "shouldIgnore": False}
            for f in payload["files"]
        ]
        self._json(200, {"files": modes})

    def _lfs_batch(self, repo: str) -> None:
        if not self._authorized():
            return
        payload = json.loads(self.body)
        objects = []
        for obj in payload["objects"]:
            answer: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.state.lfs_objects:
                answer["actions"] = {"upload": {"href": f"{self._base()}/lfs-upload/{obj['oid']}"}}
            objects.append(answer)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                   content_type="application/vnd.git-lfs+json")

    def _lfs_put(self, oid: str) -> None:
        content = self.body
        if hashlib.sha256(content).hexdigest() != oid:
            self._error(400, "LFS object does not match its oid")
            return
        self.state.lfs_objects[oid] = content
        self._send(200)

    def _commit(self, repo: str, rev: str) -> None:
        if not self._authorized():
            return
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        found = self._branch(repo, rev)
        if found is None:
            return
        stored, _, old_files = found
        files = dict(old_files)
        for line in lines:
            value = line["value"]
            if line["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
                stored.lfs.discard(value["path"])
            elif line["key"] == "lfsFile":
                if value["oid"] not in self.state.lfs_objects:
                    self._error(422, f"LFS object {value['oid']} was never uploaded")
                    return
                files[value["path"]] = self.state.lfs_objects[value["oid"]]
                stored.lfs.add(value["path"])
            elif line["key"] == "deletedFile":
                files.pop(value["path"], None)
            elif line["key"] == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: c for p, c in files.items() if not p.startswith(prefix)}
        if rev not in stored.branches:
            self._error(400, f"fake hub: commits go to a branch, not to {rev}")
            return
        sha = self._new_sha(repo)
        stored.commit(rev, sha, files)
        self._json(200, {"commitUrl": f"{self._base()}/datasets/{repo}/commit/{sha}", "commitOid": sha,
                         "pullRequestUrl": None, "success": True})

    def _repo_info(self, repo: str, rev: str = "main") -> None:
        found = self._branch(repo, rev)
        if found is None:
            return
        stored, sha, files = found
        self._json(200, {
            "id": repo, "_id": git_blob_oid(repo.encode())[:24], "author": repo.split("/")[0], "sha": sha,
            "private": stored.private, "gated": False, "disabled": False, "downloads": 0, "likes": 0,
            "tags": [], "lastModified": "2026-01-01T00:00:00.000Z", "createdAt": "2026-01-01T00:00:00.000Z",
            "siblings": [{"rfilename": p} for p in sorted(files)],
        })

    def _listing(self, repo: Repo, files: dict[str, bytes], folder: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = f"{folder}/" if folder else ""
        paths: set[str] = set()
        for path in files:
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix):].split("/")
            depth = len(parts) if recursive else 1
            paths.update(prefix + "/".join(parts[:i]) for i in range(1, depth + 1))
        return [self._entry(repo, p, files) for p in sorted(paths)]

    def _tree(self, repo: str, rev: str, path: str = "") -> None:
        found = self._branch(repo, rev)
        if found is None:
            return
        stored, _, files = found
        folder = path.strip("/")
        if folder and not any(p.startswith(folder + "/") for p in files):
            self._error(404, f"Entry not found: {folder}")
            return
        recursive = parse_qs(urlsplit(self.path).query).get("recursive", ["false"])[0].lower() in ("1", "true")
        self._json(200, self._listing(stored, files, folder, recursive))

    def _paths_info(self, repo: str, rev: str) -> None:
        body = self.body
        if "json" in self.headers.get("Content-Type", ""):
            paths = json.loads(body)["paths"]
        else:
            paths = parse_qs(body.decode())["paths"]
        found = self._branch(repo, rev)
        if found is None:
            return
        stored, _, files = found
        folders = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
        wanted = [p.strip("/") for p in paths]
        self._json(200, [self._entry(stored, p, files) for p in wanted if p in files or p in folders])

    def _resolve(self, repo: str, rev: str, path: str) -> None:
        found = self._branch(repo, rev)
        if found is None:
            return
        stored, sha, files = found
        if path not in files:
            self._json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
            return
        content = files[path]
        etag = hashlib.sha256(content).hexdigest() if path in stored.lfs else git_blob_oid(content)
        headers = {"ETag": f'"{etag}"', "X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if path in stored.lfs:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(content))})
        ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if ranged:
            start = int(ranged.group(1))
            end = min(int(ranged.group(2)) if ranged.group(2) else len(content) - 1, len(content) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            self._send(206, content[start:end + 1], headers, "application/octet-stream")
            return
        self._send(200, content, headers, "application/octet-stream")

    def _new_sha(self, repo_id: str) -> str:
        self.state.commits += 1
        return hashlib.sha1(f"{repo_id}:{self.state.commits}".encode()).hexdigest()


class FakeHub:
    """A running fake Hub; use as a context manager, read `url` and `state`."""

    def __init__(self, valid_tokens: set[str] | None = None) -> None:
        self.state = HubState(valid_tokens=frozenset(valid_tokens) if valid_tokens is not None else None)
        handler = type("BoundHandler", (_Handler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def seed(self, repo_id: str, files: dict[str, bytes]) -> None:
        """Create `repo_id` with one commit on main holding `files`, as if pushed earlier."""
        with self.state.lock:
            repo = Repo(private=False)
            repo.commit("main", hashlib.sha1(f"seed:{repo_id}".encode()).hexdigest(), dict(files))
            self.state.repos[repo_id] = repo

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of `repo_id` at the head of `revision`."""
        with self.state.lock:
            head = self.state.repos[repo_id].head(revision)
            if head is None:
                raise KeyError(f"{repo_id} has no revision {revision!r}")
            return dict(head[1])
