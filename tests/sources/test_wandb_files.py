"""wandb run files: download once (final checkpoint, temp name + rename), then offline reuse.

`wandb.Api` is replaced by a loopback-free stand-in that serves real files from a run directory
(no network in tests); in the offline tests it raises, proving it is never constructed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import wandb
import wandb.errors

from autointerp.errors import UserError
from autointerp.sources.open import open_source
from autointerp.sources.paths import WandbRunRef, parse_source
from autointerp.sources.wandb_files import (
    MANIFEST_FILENAME,
    PARTIAL_DIRNAME,
    fetch_run_files,
    run_cache_dir,
)
from tests.sources.spd_double import make_spd_run
from tests.sources.test_spd_source import write_stories
from tests.sources.word_tokenizer import WordTokenizer

REF = WandbRunRef("goodfire", "spd", "abcd1234")


class ServedFile:
    def __init__(self, server: FakeWandb, name: str, data: bytes) -> None:
        self.server, self.name, self.data, self.size = server, name, data, len(data)

    def download(self, root: str = ".", replace: bool = False, **_: Any) -> Any:
        path = Path(root) / self.name
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.name in self.server.fail_names:
            path.write_bytes(self.data[: len(self.data) // 2])
            raise wandb.errors.CommError("connection reset by peer")
        path.write_bytes(self.data)
        self.server.downloads.append(self.name)
        handle = open(path)  # noqa: SIM115 (returned open, as wandb does; the caller closes it)
        self.server.handles.append(handle)
        return handle


class FakeWandb:
    """Stands in for `wandb.Api`: serves the files of a directory as one wandb run."""

    def __init__(self, files: dict[str, bytes], run_path: str = REF.path) -> None:
        self.files = files
        self.run_path = run_path
        self.fail_names: set[str] = set()
        self.downloads: list[str] = []
        self.handles: list[Any] = []
        self.overrides: list[dict[str, Any]] = []

    def api(self, overrides: dict[str, Any] | None = None, **_: Any) -> Any:
        self.overrides.append(dict(overrides or {}))
        server = self

        class Run:
            def files(self) -> list[ServedFile]:
                return [ServedFile(server, n, d) for n, d in server.files.items()]

            def file(self, name: str) -> ServedFile:
                return ServedFile(server, name, server.files[name])

        class Api:
            def run(self, path: str) -> Run:
                if path != server.run_path:
                    raise ValueError(f"Could not find run {path}")
                return Run()

        return Api()


def run_files(tmp_path: Path) -> dict[str, bytes]:
    stories = write_stories(tmp_path / "stories.txt")
    run = make_spd_run(tmp_path / "remote_run", "dec", dataset=str(stories), steps=(6, 10, 9))
    files = {p.name: p.read_bytes() for p in run.iterdir()}
    files["output.log"] = b"log"
    return files


def no_network(*_: Any, **__: Any) -> Any:
    raise AssertionError("wandb.Api() must not be constructed when the files are cached")


def test_downloads_final_checkpoint_then_works_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_spd: Any
) -> None:
    server = FakeWandb(run_files(tmp_path))
    monkeypatch.setattr(wandb, "Api", server.api)
    cache = tmp_path / "cache"
    files = fetch_run_files(REF, cache)
    assert files.checkpoint_path == run_cache_dir(cache, REF) / "model_10.pth"
    assert sorted(server.downloads) == ["final_config.yaml", "model_10.pth"]
    assert all(h.closed for h in server.handles)
    assert files.checkpoint_path.read_bytes() == server.files["model_10.pth"]
    assert not (run_cache_dir(cache, REF) / PARTIAL_DIRNAME).exists()

    monkeypatch.setattr(wandb, "Api", no_network)
    assert fetch_run_files(REF, cache) == files
    fake_spd("dec")
    source = open_source(
        "https://wandb.ai/goodfire/spd/runs/abcd1234/overview?nw=1",
        device="cpu",
        cache_dir=cache,
        tokenizer=WordTokenizer(),
    )
    assert source.run_id == "abcd1234"
    assert source.description == "wandb:goodfire/spd/abcd1234"
    assert source.model.loaded_from.name == "model_10.pth"  # type: ignore[attr-defined]


def test_killed_download_is_redone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeWandb(run_files(tmp_path))
    server.fail_names = {"model_10.pth"}
    monkeypatch.setattr(wandb, "Api", server.api)
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match="unreachable"):
        fetch_run_files(REF, cache)
    run_dir = run_cache_dir(cache, REF)
    assert not (run_dir / "model_10.pth").exists()  # the partial file never got the real name
    assert not (run_dir / MANIFEST_FILENAME).exists()
    monkeypatch.setattr(wandb, "Api", no_network)
    with pytest.raises(UserError, match="must not be constructed"):
        fetch_run_files(REF, cache)  # incomplete cache: it must go online again
    server.fail_names = set()
    monkeypatch.setattr(wandb, "Api", server.api)
    files = fetch_run_files(REF, cache)
    assert files.checkpoint_path.read_bytes() == server.files["model_10.pth"]


def test_truncated_cached_file_is_downloaded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeWandb(run_files(tmp_path))
    monkeypatch.setattr(wandb, "Api", server.api)
    cache = tmp_path / "cache"
    files = fetch_run_files(REF, cache)
    with open(files.checkpoint_path, "r+b") as f:
        f.truncate(10)
    server.downloads.clear()
    again = fetch_run_files(REF, cache)
    assert "model_10.pth" in server.downloads
    assert again.checkpoint_path.read_bytes() == server.files["model_10.pth"]


def test_other_host_uses_the_login_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeWandb(run_files(tmp_path), run_path="goodfire/spd/other999")
    monkeypatch.setattr(wandb, "Api", server.api)
    ref = parse_source("https://goodfire.wandb.io/goodfire/spd/runs/abcd1234/files/x")
    assert isinstance(ref, WandbRunRef)
    with pytest.raises(UserError, match="run was not found") as e:
        fetch_run_files(ref, tmp_path / "cache")
    assert "wandb login --host https://goodfire.wandb.io" in str(e.value)
    assert server.overrides == [{}]  # the API host is the login's, never guessed from the URL


def raising(error: Exception) -> Any:
    def api(*_: Any, **__: Any) -> Any:
        raise error

    return api


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (wandb.errors.AuthenticationError("bad key"), "no valid API key"),
        (wandb.errors.UsageError("api_key not configured (no-tty)"), "wandb login"),
        (wandb.errors.CommError("Max retries exceeded"), "wandb is unreachable"),
        (
            wandb.errors.AuthenticationError(
                "Failed to verify credentials with https://api.example: the service process is "
                "busy and did not respond in time."
            ),
            "wandb is unreachable",
        ),
    ],
)
def test_connection_errors_are_user_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, message: str
) -> None:
    monkeypatch.setattr(wandb, "Api", raising(error))
    with pytest.raises(UserError, match=message):
        fetch_run_files(REF, tmp_path / "cache")


def test_run_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeWandb(run_files(tmp_path), run_path="goodfire/spd/other999")
    monkeypatch.setattr(wandb, "Api", server.api)
    with pytest.raises(UserError, match="run was not found"):
        fetch_run_files(REF, tmp_path / "cache")


def test_run_without_checkpoint_or_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = run_files(tmp_path)
    no_ckpt = {n: d for n, d in files.items() if not n.endswith(".pth")}
    monkeypatch.setattr(wandb, "Api", FakeWandb(no_ckpt).api)
    with pytest.raises(UserError, match=r"no model_<step>\.pth checkpoint"):
        fetch_run_files(REF, tmp_path / "c1")
    no_config = {n: d for n, d in files.items() if n != "final_config.yaml"}
    monkeypatch.setattr(wandb, "Api", FakeWandb(no_config).api)
    with pytest.raises(UserError, match="does not look like an SPD run"):
        fetch_run_files(REF, tmp_path / "c2")


def test_api_key_never_appears_in_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "sekrit-key-123")
    monkeypatch.setattr(wandb, "Api", raising(RuntimeError("request failed for sekrit-key-123")))
    with pytest.raises(UserError) as e:
        fetch_run_files(REF, tmp_path / "cache")
    assert "sekrit-key-123" not in str(e.value)
    assert os.environ["WANDB_API_KEY"] == "sekrit-key-123"
