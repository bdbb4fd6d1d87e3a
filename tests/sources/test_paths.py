"""The source argument parser: every accepted spelling, and the rejected ones with their message."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autointerp.errors import UserError
from autointerp.sources.paths import (
    DemoRef,
    FactoryRef,
    LocalRunRef,
    WandbRunRef,
    latest_checkpoint_name,
    local_run_id,
    parse_source,
)

TAILS = ["", "/", "/overview", "/files/model_4.pth", "/logs", "?nw=abc", "/overview?nw=1#x"]
WANDB_FORMS = [
    ("goodfire/spd/abcd1234", None),
    ("goodfire/spd/runs/abcd1234", None),
    ("wandb:goodfire/spd/abcd1234", None),
    ("wandb:goodfire/spd/runs/abcd1234", None),
    ("goodfire/spd/runs/abcd1234/", None),
    ("https://wandb.ai/goodfire/spd/runs/abcd1234", None),
    ("https://wandb.ai/goodfire/spd/runs/abcd1234/", None),
    ("https://wandb.ai/goodfire/spd/runs/abcd1234/overview", None),
    ("https://wandb.ai/goodfire/spd/runs/abcd1234/files/model_400.pth", None),
    ("https://wandb.ai/goodfire/spd/runs/abcd1234/logs", None),
    ("https://wandb.ai/goodfire/spd/runs/abcd1234?nw=css034maye", None),
    ("https://wandb.ai/goodfire/spd/runs/abcd1234/overview?nw=x&y=2#section", None),
    ("wandb:https://wandb.ai/goodfire/spd/runs/abcd1234", None),
    ("wandb.ai/goodfire/spd/runs/abcd1234/overview", None),
    ("  goodfire/spd/abcd1234\n", None),
    ("https://goodfire.wandb.io/goodfire/spd/runs/abcd1234/overview", "goodfire.wandb.io"),
    ("https://forge.example.org/goodfire/spd/runs/abcd1234", "forge.example.org"),
]


@pytest.mark.parametrize(("spec", "host"), WANDB_FORMS)
def test_wandb_forms(spec: str, host: str | None) -> None:
    ref = parse_source(spec)
    assert ref == WandbRunRef("goodfire", "spd", "abcd1234", host)
    assert ref.path == "goodfire/spd/abcd1234"


def test_prefixed_run_id_and_description() -> None:
    ref = parse_source("goodfire/spd/s-d2ec3bfe")
    assert isinstance(ref, WandbRunRef) and ref.run_id == "s-d2ec3bfe"
    assert ref.description == "wandb:goodfire/spd/s-d2ec3bfe"
    forge = parse_source("https://x.wandb.io/e/p/runs/r1")
    assert forge.description == "wandb:x.wandb.io:e/p/r1"  # type: ignore[union-attr]


def test_demo_and_factory() -> None:
    assert parse_source("demo") == DemoRef()
    assert parse_source("py:tests.sources.factory:make") == FactoryRef(
        "tests.sources.factory", "make"
    )


def make_run_dir(root: Path, steps: tuple[int, ...] = (6, 10, 2)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "final_config.yaml").write_text("seed: 0\n")
    for step in steps:
        (root / f"model_{step}.pth").write_bytes(b"x")
    return root


def test_local_run_directory_picks_highest_step_numerically(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run")
    ref = parse_source(str(run))
    assert isinstance(ref, LocalRunRef)
    assert ref.checkpoint == run.resolve() / "model_10.pth"
    assert ref.run_dir == run.resolve()


def test_local_checkpoint_file(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run")
    ref = parse_source(str(run / "model_6.pth"))
    assert isinstance(ref, LocalRunRef) and ref.checkpoint.name == "model_6.pth"


def test_local_run_id_stable_and_shared_by_dir_and_final_file(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "my run")
    by_dir = parse_source(str(run)).run_id  # type: ignore[union-attr]
    by_file = parse_source(str(run / "model_10.pth")).run_id  # type: ignore[union-attr]
    earlier = parse_source(str(run / "model_6.pth")).run_id  # type: ignore[union-attr]
    assert by_dir == by_file == local_run_id(run / "model_10.pth")
    assert by_dir.startswith("local-my_run-")
    assert earlier != by_dir
    other = make_run_dir(tmp_path / "b" / "my run")
    assert parse_source(str(other)).run_id != by_dir  # type: ignore[union-attr]


def test_existing_relative_path_shaped_like_wandb_is_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_run_dir(tmp_path / "goodfire" / "spd" / "abcd1234")
    monkeypatch.chdir(tmp_path)
    assert isinstance(parse_source("goodfire/spd/abcd1234"), LocalRunRef)
    assert isinstance(parse_source("goodfire/spd/abcd9999"), WandbRunRef)


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("", "empty"),
        ("goodfire/spd", "neither an existing local path nor a wandb run path"),
        ("a/b/c/d/e", "neither an existing local path nor a wandb run path"),
        ("wandb:goodfire", "neither an existing local path nor a wandb run path"),
        ("https://wandb.ai/goodfire/spd", "entity/project/runs/run_id"),
        ("https://wandb.ai/goodfire/spd/sweeps/abc", "entity/project/runs/run_id"),
        ("ftp://wandb.ai/goodfire/spd/runs/abcd1234", "only http(s) URLs"),
        ("/nonexistent/run/model_4.pth", "does not exist"),
        ("./missing_run_dir", "does not exist"),
        ("py:not a module", "py:package.module:function"),
    ],
)
def test_rejected_forms_explain_and_list_forms(spec: str, why: str) -> None:
    with pytest.raises(UserError) as e:
        parse_source(spec)
    assert why in str(e.value)
    assert "Accepted sources" in str(e.value) and "wandb:entity/project/run_id" in str(e.value)


def test_local_dirs_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"has no final_config\.yaml"):
        parse_source(str(empty))
    no_ckpt = tmp_path / "nockpt"
    no_ckpt.mkdir()
    (no_ckpt / "final_config.yaml").write_text("seed: 0\n")
    with pytest.raises(UserError, match=r"no model_<step>\.pth"):
        parse_source(str(no_ckpt))
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "model_3.pth").write_bytes(b"x")
    with pytest.raises(UserError, match=r"final_config\.yaml is missing"):
        parse_source(str(lonely / "model_3.pth"))
    (lonely / "weights.bin").write_bytes(b"x")
    with pytest.raises(UserError, match="not an SPD checkpoint"):
        parse_source(str(lonely / "weights.bin"))


def test_latest_checkpoint_name_is_numeric() -> None:
    names = ["model_6.pth", "model_10.pth", "model_9.pth", "final_config.yaml", "model_x.pth"]
    assert latest_checkpoint_name(names) == "model_10.pth"
    assert latest_checkpoint_name(["config.yaml"]) is None


names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}", fullmatch=True)


@settings(max_examples=80, deadline=None)
@given(entity=names, project=names, run_id=names, tail=st.sampled_from(TAILS))
def test_every_spelling_of_a_run_is_the_same_run(
    entity: str, project: str, run_id: str, tail: str
) -> None:
    expected = WandbRunRef(entity, project, run_id)
    for spec in (
        f"{entity}/{project}/{run_id}",
        f"{entity}/{project}/runs/{run_id}",
        f"wandb:{entity}/{project}/{run_id}",
        f"https://wandb.ai/{entity}/{project}/runs/{run_id}{tail}",
        f"wandb.ai/{entity}/{project}/runs/{run_id}{tail}",
    ):
        if Path(spec).exists():  # a local path always wins (none exist in the test's cwd)
            continue
        assert parse_source(spec) == expected, spec
