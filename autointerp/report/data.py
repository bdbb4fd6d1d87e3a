"""The run as the report sees it, read from the run directory's files through `store`/`schemas`.

`RunView.refresh()` reads only what was appended since the last call (results, scores and
components are append-only JSONL), so `autointerp serve` stays current beside a labelling daemon
without re-reading 40k labels on every request. Component and held-out records are large, so the
view keeps only where each line is and decodes one when its page is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import msgspec

from autointerp.errors import UserError
from autointerp.files import read_json
from autointerp.schemas import (
    ComponentData,
    HarvestConfig,
    HarvestSummary,
    HeldOutData,
    InterpretationResult,
    LabelFailure,
    RunState,
    ScoreRecord,
)
from autointerp.store import RunDir, RunReader

KNOWN_SCORERS = ("detection", "fuzzing", "intruder", "simulation")
"""Shown first, in this order; any other `scores/<name>.jsonl` follows alphabetically."""

_CHUNK = 8 << 20
T = TypeVar("T")


class _Head(msgspec.Struct):
    """The light fields of a `components.jsonl` line (the statistics stay undecoded)."""

    component_key: str
    layer: str = ""
    component_idx: int = -1
    firing_count: int = 0
    firing_density: float = 0.0
    mean_ci: float = 0.0
    activation_examples: list[msgspec.Raw] = []


class _KeyOnly(msgspec.Struct):
    component_key: str


@dataclass(frozen=True, slots=True)
class Component:
    """One `components.jsonl` line: what the index and plots need, and where the rest is."""

    key: str
    module: str
    index: int
    firing_count: int
    density: float
    mean_ci: float
    alive: bool
    offset: int
    length: int


def split_key(key: str) -> tuple[str, int]:
    """`blocks.0.mlp:12` -> (`blocks.0.mlp`, 12); a key without a numeric tail keeps index -1."""
    module, _, tail = key.rpartition(":")
    return (module, int(tail)) if module and tail.isdigit() else (key, -1)


class JsonlTail:
    """Reads an append-only JSONL file from where the last read stopped.

    Yields `(offset, line)` for each complete line; a last line still being written (no newline
    yet) is left for the next read. `poll()` says whether the file was replaced or truncated,
    after which reading starts again from the top and the caller drops what it had.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pos = 0
        self._identity: tuple[int, int] | None = None

    def poll(self) -> bool:
        """True when what was read before no longer holds (the file is another one, or shorter)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            reset = self._pos > 0
            self._pos, self._identity = 0, None
            return reset
        identity = (st.st_dev, st.st_ino)
        reset = self._identity is not None and (
            identity != self._identity or st.st_size < self._pos
        )
        if reset:
            self._pos = 0
        self._identity = identity
        return reset

    def lines(self) -> Iterator[tuple[int, bytes]]:
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed below; absent is not an error
        except FileNotFoundError:
            return
        with f:
            f.seek(self._pos)
            base, carry = self._pos, b""
            while chunk := f.read(_CHUNK):
                data = carry + chunk
                *complete, carry = data.split(b"\n")
                for line in complete:
                    if line.strip():
                        yield base, line
                    base += len(line) + 1
                self._pos = base


def _decode(decoder: msgspec.json.Decoder, line: bytes) -> object | None:
    try:
        return decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None  # a line of another version, or damaged: the report shows the rest


def _tolerant(read: Callable[[], T], default: T) -> T:
    """A JSON file another version wrote, or that is missing: the pages show the rest."""
    try:
        return read()
    except (UserError, OSError):
        return default


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


@dataclass
class RunView:
    """Everything the pages show about one run, kept current by `refresh()`."""

    run: RunDir
    state: RunState = field(default_factory=RunState)
    config: HarvestConfig | None = None
    summary: HarvestSummary | None = None
    components: dict[str, Component] = field(default_factory=dict)
    labels: dict[str, InterpretationResult] = field(default_factory=dict)
    """First result of each key, in the order `results.jsonl` has them (append order)."""
    scores: dict[str, dict[str, ScoreRecord]] = field(default_factory=dict)
    failures: dict[str, LabelFailure] = field(default_factory=dict)
    version: int = 0
    """Goes up whenever anything shown changed (pages and the index's live poll use it)."""
    _heldout_at: dict[str, tuple[int, int]] = field(default_factory=dict)
    _tails: dict[str, JsonlTail] = field(default_factory=dict)
    _seen: dict[str, object] = field(default_factory=dict)
    _order: list[str] | None = None
    _position: dict[str, int] = field(default_factory=dict)

    @property
    def reader(self) -> RunReader:
        return RunReader(self.run)

    # ------------------------------------------------------------ reading

    def refresh(self) -> bool:
        """Read whatever changed since the last call; True when something did."""
        files = self._watched()
        signature = {name: _signature(path) for name, path in files.items()}
        if signature == self._seen:
            return False
        changed = {name for name in files if signature[name] != self._seen.get(name)}
        self._seen = signature
        reader = self.reader
        if "state" in changed:
            self.state = _tolerant(reader.state, RunState())
        if "config" in changed:
            self.config = _tolerant(reader.config, None)
        if "summary" in changed:
            path = self.run.summary_path
            self.summary = _tolerant(lambda: read_json(path, HarvestSummary), None)
        if "failures" in changed:
            self.failures = reader.failures()[0]
        if "components" in changed:
            self._read_components()
        if "heldout" in changed:
            self._read_heldout()
        if "results" in changed:
            self._read_labels()
        for name in changed:
            if name.startswith("scores/"):
                self._read_scores(name.removeprefix("scores/"))
        for name in set(self.scores) - {n.removeprefix("scores/") for n in files}:
            del self.scores[name]  # its file was removed
        self._order = None
        self.version += 1
        return True

    def _watched(self) -> dict[str, Path]:
        run = self.run
        files = {
            "state": run.state_path,
            "config": run.config_path,
            "summary": run.summary_path,
            "failures": run.failures_path,
            "components": run.components_path,
            "heldout": run.heldout_path,
            "results": run.results_path,
        }
        if run.scores_dir.is_dir():
            for path in sorted(run.scores_dir.glob("*.jsonl")):
                files[f"scores/{path.stem}"] = path
        return files

    def _tail(self, name: str, path: Path) -> tuple[JsonlTail, bool]:
        tail = self._tails.get(name)
        if tail is None:
            tail = self._tails[name] = JsonlTail(path)
        return tail, tail.poll()

    def _read_components(self) -> None:
        tail, reset = self._tail("components", self.run.components_path)
        if reset:
            self.components = {}
        decoder = msgspec.json.Decoder(_Head)
        for offset, line in tail.lines():
            head = _decode(decoder, line)
            if not isinstance(head, _Head) or head.component_key in self.components:
                continue
            module, index = split_key(head.component_key)
            self.components[head.component_key] = Component(
                key=head.component_key,
                module=head.layer or module,
                index=head.component_idx if head.component_idx >= 0 else index,
                firing_count=head.firing_count,
                density=head.firing_density,
                mean_ci=head.mean_ci,
                alive=head.firing_count > 0 or bool(head.activation_examples),
                offset=offset,
                length=len(line),
            )

    def _read_heldout(self) -> None:
        tail, reset = self._tail("heldout", self.run.heldout_path)
        if reset:
            self._heldout_at = {}
        decoder = msgspec.json.Decoder(_KeyOnly)
        for offset, line in tail.lines():
            head = _decode(decoder, line)
            if isinstance(head, _KeyOnly):
                self._heldout_at.setdefault(head.component_key, (offset, len(line)))

    def _read_labels(self) -> None:
        tail, reset = self._tail("results", self.run.results_path)
        if reset:
            self.labels = {}
        decoder = msgspec.json.Decoder(InterpretationResult)
        for _, line in tail.lines():
            result = _decode(decoder, line)
            if isinstance(result, InterpretationResult):
                self.labels.setdefault(result.component_key, result)

    def _read_scores(self, scorer: str) -> None:
        tail, reset = self._tail(f"scores/{scorer}", self.run.score_path(scorer))
        records = self.scores.setdefault(scorer, {})
        if reset:
            records.clear()
        decoder = msgspec.json.Decoder(ScoreRecord)
        for _, line in tail.lines():
            record = _decode(decoder, line)
            if isinstance(record, ScoreRecord):
                records.setdefault(record.component_key, record)

    def _read_line(self, path: Path, where: tuple[int, int]) -> bytes | None:
        try:
            with open(path, "rb") as f:
                f.seek(where[0])
                return f.read(where[1])
        except OSError:
            return None

    def component(self, key: str) -> ComponentData | None:
        """The full record of one component (decoded now, from where its line is)."""
        c = self.components.get(key)
        line = c and self._read_line(self.run.components_path, (c.offset, c.length))
        record = line and _decode(msgspec.json.Decoder(ComponentData), line)
        return record if isinstance(record, ComponentData) else None

    def heldout(self, key: str) -> HeldOutData | None:
        where = self._heldout_at.get(key)
        line = where and self._read_line(self.run.heldout_path, where)
        record = line and _decode(msgspec.json.Decoder(HeldOutData), line)
        return record if isinstance(record, HeldOutData) else None

    # ------------------------------------------------------------ derived

    @property
    def run_id(self) -> str:
        return self.config.run_id if self.config else self.run.root.name

    @property
    def modules(self) -> list[str]:
        """Module paths in layout order (the harvest config's), then any others seen."""
        known = [m for m, _ in self.config.layout] if self.config else []
        seen = set(known)
        for c in self.components.values():
            if c.module not in seen:
                seen.add(c.module)
                known.append(c.module)
        return known

    @property
    def scorers(self) -> list[str]:
        names = [s for s in KNOWN_SCORERS if s in self.scores]
        return names + sorted(set(self.scores) - set(KNOWN_SCORERS))

    def ordered_keys(self) -> list[str]:
        """Alive components in layout order (module, then index): pages' previous / next."""
        if self._order is None:
            rank = {m: i for i, m in enumerate(self.modules)}
            alive = [c for c in self.components.values() if c.alive]
            alive.sort(key=lambda c: (rank.get(c.module, len(rank)), c.index, c.key))
            self._order = [c.key for c in alive]
            self._position = {k: i for i, k in enumerate(self._order)}
        return self._order

    def neighbours(self, key: str) -> tuple[str | None, str | None]:
        """The alive components before and after `key` in layout order."""
        order = self.ordered_keys()
        at = self._position.get(key)
        if at is None:
            return None, None
        return (order[at - 1] if at > 0 else None), (order[at + 1] if at + 1 < len(order) else None)

    @property
    def n_components(self) -> int:
        if self.config:
            return sum(n for _, n in self.config.layout)
        return len(self.components)

    @property
    def n_alive(self) -> int:
        return sum(c.alive for c in self.components.values())

    @property
    def n_dead(self) -> int:
        """Components that never fired (written by finalize, or, before it ends, the summary's)."""
        written_dead = sum(not c.alive for c in self.components.values())
        if self.summary is not None and self.state.finalize_complete:
            return self.summary.n_dead
        return written_dead

    def page_keys(self) -> list[str]:
        """Components with a page: every alive one, labelled or not (co-occurrence links reach
        it), and any labelled one whose harvest record is missing."""
        keys = self.ordered_keys()
        return keys + [
            k for k in self.labels if k not in self.components or not self.components[k].alive
        ]

    def has_page(self, key: str) -> bool:
        c = self.components.get(key)
        return (c is not None and c.alive) or key in self.labels


def load(run: RunDir) -> RunView:
    view = RunView(run)
    view.refresh()
    return view
