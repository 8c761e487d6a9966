"""A small Hugging Face Hub-compatible server on 127.0.0.1, serving repositories the tests build.

It answers the routes ``huggingface_hub`` uses to resolve and download model files:

- ``GET /api/models/ORG/NAME[/revision/REV]``: the repository's commit (``sha``) and file list;
- ``HEAD|GET /ORG/NAME/resolve/REV/PATH``: a file, with the ``X-Repo-Commit``, ``ETag`` and
  ``Content-Length`` headers the client checks;

with the hub's ``X-Error-Code`` headers (``RepoNotFound``, ``RevisionNotFound``,
``EntryNotFound``) for what does not exist. Every request is recorded, so a test can tell a
download from a cache hit. Nothing leaves the loopback interface.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["LoopbackHub"]


@dataclass
class _Repo:
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> commit
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit -> {path: bytes}


class LoopbackHub:
    """Repositories served over HTTP on 127.0.0.1 (start with :meth:`start`, or use as a context)."""

    def __init__(self) -> None:
        self._repos: dict[str, _Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- content -------------------------------------------------------------------------
    def add_commit(
        self, repo_id: str, files: dict[str, bytes], *, branch: str = "main", tags: tuple[str, ...] = ()
    ) -> str:
        """Add a commit holding ``files`` to ``repo_id``; ``branch`` (and ``tags``) point at it."""
        digest = hashlib.sha1()
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + hashlib.sha1(files[name]).digest())
        repo = self._repos.setdefault(repo_id, _Repo())
        digest.update(str(len(repo.commits)).encode())
        commit = digest.hexdigest()
        repo.commits[commit] = dict(files)
        for ref in (branch, *tags):
            repo.refs[ref] = commit
        return commit

    def add_folder(
        self, repo_id: str, folder: Path, *, branch: str = "main", tags: tuple[str, ...] = ()
    ) -> str:
        """Add a commit with every file under ``folder`` (paths relative to it)."""
        files = {
            str(p.relative_to(folder)).replace("\\", "/"): p.read_bytes()
            for p in sorted(Path(folder).rglob("*"))
            if p.is_file()
        }
        return self.add_commit(repo_id, files, branch=branch, tags=tags)

    def move_branch(self, repo_id: str, branch: str, commit: str) -> None:
        """Point ``branch`` of ``repo_id`` at ``commit``."""
        self._repos[repo_id].refs[branch] = commit

    def _lookup(self, repo_id: str, revision: str) -> tuple[_Repo | None, str | None]:
        repo = self._repos.get(repo_id)
        if repo is None:
            return None, None
        if revision in repo.commits:
            return repo, revision
        return repo, repo.refs.get(revision)

    # -- server --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "start() the hub first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def downloads(self) -> list[str]:
        """The paths of every file GET so far (``ORG/NAME/resolve/REV/PATH``)."""
        return [path for method, path in self.requests if method == "GET" and "/resolve/" in path]

    def start(self) -> LoopbackHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_HEAD(self) -> None:
                hub._handle(self, body=False)

            def do_GET(self) -> None:
                hub._handle(self, body=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LoopbackHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- routes --------------------------------------------------------------------------
    def _handle(self, request: BaseHTTPRequestHandler, *, body: bool) -> None:
        path = unquote(urlsplit(request.path).path)
        with self._lock:
            self.requests.append((request.command, path.lstrip("/")))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo_id = "/".join(parts[2:4])
            revision = parts[5] if len(parts) >= 6 and parts[4] == "revision" else "main"
            self._model_info(request, repo_id, revision, body=body)
        elif len(parts) >= 5 and parts[2] == "resolve":
            repo_id = "/".join(parts[:2])
            self._resolve(request, repo_id, parts[3], "/".join(parts[4:]), body=body)
        else:
            self._send(request, 404, b"not found", {"X-Error-Code": "RepoNotFound"}, body=body)

    def _model_info(
        self, request: BaseHTTPRequestHandler, repo_id: str, revision: str, *, body: bool
    ) -> None:
        repo, commit = self._lookup(repo_id, revision)
        if repo is None:
            self._send(
                request, 404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound"}, body=body
            )
            return
        if commit is None:
            self._send(
                request, 404, b'{"error":"Invalid rev id"}', {"X-Error-Code": "RevisionNotFound"}, body=body
            )
            return
        info = {
            "id": repo_id,
            "modelId": repo_id,
            "sha": commit,
            "private": False,
            "siblings": [{"rfilename": name} for name in sorted(repo.commits[commit])],
        }
        self._send(request, 200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body=body)

    def _resolve(
        self, request: BaseHTTPRequestHandler, repo_id: str, revision: str, filename: str, *, body: bool
    ) -> None:
        repo, commit = self._lookup(repo_id, revision)
        if repo is None:
            self._send(request, 404, b"Repository not found", {"X-Error-Code": "RepoNotFound"}, body=body)
            return
        if commit is None:
            self._send(request, 404, b"Invalid rev id", {"X-Error-Code": "RevisionNotFound"}, body=body)
            return
        data = repo.commits[commit].get(filename)
        if data is None:
            headers = {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}
            self._send(request, 404, b"Entry not found", headers, body=body)
            return
        headers = {
            "X-Repo-Commit": commit,
            "ETag": '"' + hashlib.sha256(data).hexdigest() + '"',
            "Content-Type": "application/octet-stream",
        }
        self._send(request, 200, data, headers, body=body)

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str], *, body: bool
    ) -> None:
        request.send_response(status)
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        if body:
            request.wfile.write(data)
