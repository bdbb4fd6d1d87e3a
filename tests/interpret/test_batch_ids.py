"""Batch entry ids and the batch ledger: ids the API accepts, stable across starts, distinct per
question; ledger records that survive a restart and say which batch holds each entry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autointerp.errors import UserError
from autointerp.interpret.llm.batch_client import entry_id
from autointerp.interpret.llm.batch_ledger import BatchLedger
from autointerp.interpret.llm.provider import Request

API_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

requests = st.builds(
    Request,
    system=st.text(max_size=50),
    user=st.text(max_size=50),
    schema=st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    max_tokens=st.integers(1, 4096),
    tag=st.text(max_size=120),
)


@settings(max_examples=300, deadline=None)
@given(request=requests, attempt=st.integers(0, 20))
def test_entry_ids_are_accepted_by_the_api_and_stable(request: Request, attempt: int) -> None:
    cid = entry_id("claude-haiku-4-5", request, attempt)
    assert API_ID.match(cid), cid
    assert cid == entry_id("claude-haiku-4-5", request, attempt)  # a restart asks the same id


@settings(max_examples=200, deadline=None)
@given(a=requests, b=requests)
def test_different_questions_get_different_ids(a: Request, b: Request) -> None:
    same_question = (a.system, a.user, a.schema, a.max_tokens) == (
        b.system,
        b.user,
        b.schema,
        b.max_tokens,
    )
    if not same_question:
        assert entry_id("m", a) != entry_id("m", b)


def test_the_id_reads_as_its_tag_and_changes_with_attempt_and_model() -> None:
    r = Request(system="s", user="u", schema={}, tag="label blocks.0.attn.q_proj:17")
    cid = entry_id("m", r)
    assert cid.startswith("label_blocks_0_attn_q_proj_17-")
    assert entry_id("m", r, 1) != cid
    assert entry_id("other", r) != cid


def test_ledger_records_survive_a_restart_and_index_the_latest_batch(tmp_path: Path) -> None:
    ledger = BatchLedger(tmp_path)
    first = ledger.intend(["a", "b"], 100.0)
    first.batch_id, first.status = "msgbatch_1", "ended"
    ledger.save(first)
    second = ledger.intend(["b", "c"], 200.0)  # b resubmitted after it errored in the first
    again = BatchLedger(tmp_path)
    assert again.holding("a").batch_id == "msgbatch_1"  # type: ignore[union-attr]
    assert again.holding("b").local_id == second.local_id  # type: ignore[union-attr]
    assert again.holding("c").status == "submitting"  # type: ignore[union-attr]
    assert [r.local_id for r in again.open_records()] == [second.local_id]
    second.status = "abandoned"
    again.save(second)
    assert again.holding("c") is None
    assert again.holding("b").local_id == first.local_id  # type: ignore[union-attr]
    assert BatchLedger(tmp_path).holding("c") is None


def test_a_corrupt_ledger_record_is_a_clear_error_not_skipped(tmp_path: Path) -> None:
    BatchLedger(tmp_path).intend(["a"], 1.0)
    path = next(tmp_path.glob("*.json"))
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(UserError, match="batch record"):
        BatchLedger(tmp_path)
