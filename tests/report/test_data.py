"""`RunView` follows the run's append-only files as a daemon writes them."""

from __future__ import annotations

import json
import os

from autointerp.interpret.prompt import render_prompt
from autointerp.report import index_page
from autointerp.report.data import RunView, load
from autointerp.report.escape import js_data
from autointerp.report.sent_prompt import rebuild
from autointerp.schemas import InterpretationResult
from tests.report.runs import Written, result_line


def test_the_view_holds_what_the_files_say(fresh_run: Written) -> None:
    view = load(fresh_run.run)
    assert list(view.labels) == fresh_run.labelled
    assert view.n_alive == len(fresh_run.alive) and view.n_dead == len(fresh_run.dead)
    assert set(view.failures) == set(fresh_run.failed)
    assert view.scorers == ["detection", "fuzzing", "intruder", "simulation"]
    assert view.ordered_keys()[0] == fresh_run.alive[0]
    key = fresh_run.labelled[3]
    component = view.component(key)
    assert component is not None and component.component_key == key
    held = view.heldout(key)
    assert held is not None and held.activating and held.non_activating


def test_appended_lines_are_read_and_nothing_else(fresh_run: Written) -> None:
    view = load(fresh_run.run)
    version = view.version
    assert view.refresh() is False and view.version == version  # nothing changed: a stat each
    waiting = next(k for k in fresh_run.alive if k not in view.labels)
    line = result_line(waiting, "appended later")
    with open(fresh_run.run.results_path, "ab") as f:
        f.write(line[:20])  # a daemon mid-append: the torn line is not read yet
        f.flush()
        assert view.refresh() is True and waiting not in view.labels
        f.write(line[20:])
    assert view.refresh() is True and view.labels[waiting].label == "appended later"
    assert view.version > version
    assert list(view.labels)[-1] == waiting  # append order: it lands in the last shard


def test_a_replaced_file_is_read_again_from_the_top(fresh_run: Written) -> None:
    view = load(fresh_run.run)
    path = fresh_run.run.results_path
    first = path.read_bytes().splitlines(keepends=True)[:2]
    tmp = path.with_name("results.tmp")
    tmp.write_bytes(b"".join(first))
    os.replace(tmp, path)
    view.refresh()
    assert list(view.labels) == fresh_run.labelled[:2]


def test_shards_keep_their_rows_when_labels_are_appended(fresh_run: Written) -> None:
    saved = index_page.SHARD_ROWS
    index_page.SHARD_ROWS = 10
    try:
        view = load(fresh_run.run)
        before = [index_page.shard_js(view, i) for i in range(index_page.shard_count(view))]
        waiting = next(k for k in fresh_run.alive if k not in view.labels)
        with open(fresh_run.run.results_path, "ab") as f:
            f.write(result_line(waiting, "new"))
        view.refresh()
        after = [index_page.shard_js(view, i) for i in range(index_page.shard_count(view))]
    finally:
        index_page.SHARD_ROWS = saved
    full = len(fresh_run.labelled) // 10
    assert after[:full] == before[:full]  # full shards are unchanged
    assert json.dumps(waiting)[1:-1] in (after[-1] or "")


def test_the_rebuilt_prompt_is_the_one_the_labeller_renders(fresh_run: Written) -> None:
    """The labeller renders `render_prompt(component, architecture, version)` and records the
    version in the result; the page renders the same from the same records."""
    view = load(fresh_run.run)
    key = fresh_run.labelled[0]
    component = view.component(key)
    assert component is not None and view.config is not None
    arch = view.config.architecture
    if "prompt" in InterpretationResult.__struct_fields__:  # prompt versions exist
        for version in ("v1", "v2"):
            claude = InterpretationResult(key, "l", "high", "r", "{}", prompt=version)
            rebuilt = rebuild(component, arch, claude)
            sent = render_prompt(component, arch, version)  # type: ignore[call-arg]
            assert (rebuilt.system, rebuilt.user, rebuilt.version) == (
                sent.system,
                sent.user,
                version,
            )
            assert rebuilt.sent
    else:
        claude = InterpretationResult(key, "l", "high", "r", "{}")
        rebuilt, sent = rebuild(component, arch, claude), render_prompt(component, arch)
        assert (rebuilt.system, rebuilt.user) == (sent.system, sent.user)
    offline = InterpretationResult(key, "l", "high", "r", "", labeller="offline")
    assert rebuild(component, arch, offline).sent is False


def test_meta_reports_counts_as_javascript_data(fresh_run: Written) -> None:
    view: RunView = load(fresh_run.run)
    meta = index_page.meta(view, live=True)
    assert meta["labelled"] == len(fresh_run.labelled) and meta["live"] is True
    assert index_page.meta_js(view, live=True) == f"AUTOINTERP_DATA.meta({js_data(meta)});\n"
