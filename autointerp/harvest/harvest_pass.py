"""One harvest of a run: resume → accumulate → checkpoint → finalize, with callbacks.

`HarvestPass.run(emit)` is blocking (the daemon calls it in a worker thread; torch kernels release
the GIL). Recovery rests on the files alone:
- the checkpoint holds the accumulator and the data position, so a restart continues the pass
  from `batches_done` and ends with the same statistics as an uninterrupted pass;
- `components.jsonl` holds every finalized component, so a restart finalizes only the rest
  (`finalize(start=n)`) and emits the written ones again when `emit_written(key)` says so;
- `state.json` says which phases are complete.
Callbacks: `emit(component) -> bool` for each finalized alive-or-dead component (False: stop),
`on_progress(HarvestProgress)` whenever the position moves, and the `stop` event, checked between
batches and between components. It knows nothing of labelling.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext

import torch

from autointerp.errors import UserError
from autointerp.files import JsonlAppender, write_json_atomic
from autointerp.harvest.checkpoint import Commit, load_checkpoint
from autointerp.harvest.finalize import finalize, finalize_heldout
from autointerp.harvest.harvester import Harvester
from autointerp.harvest.summary import summarize
from autointerp.harvest.threads import CpuThreadPolicy
from autointerp.harvest.writer import CheckpointWriter
from autointerp.schemas import ComponentData, HarvestConfig, HeldOutData
from autointerp.sources.base import Source
from autointerp.store import RunDir, RunReader, StateFile

log = logging.getLogger(__name__)

Emit = Callable[[ComponentData], bool]
"""Hands one finalized component on (False: the caller is stopping)."""


@dataclasses.dataclass(frozen=True)
class HarvestProgress:
    """Where the pass is, reported through `on_progress` (field names match the dashboard's)."""

    phase: str = "starting"
    """`harvest`, `finalize`, then `label` once every component is written."""
    n_batches: int = 0
    batches_done: int = 0
    resumed_from_batch: int = 0
    batches_this_session: int = 0
    harvest_seconds: float = 0.0
    """Wall time of this session's batches (for tokens/s and the ETA)."""
    tokens_per_batch: int = 0
    n_tokens: int = 0
    last_checkpoint_at: float | None = None
    device_memory: str = ""
    n_components: int = 0
    components_written: int = 0
    alive_written: int = 0
    alive_total: int | None = None
    """Known once finalize is complete."""
    cpu_threads: int = 0
    """torch's threads in the harvest thread (0: not a CPU harvest)."""


class Stopped(Exception):
    """The caller asked to stop; the work done so far is on disk."""


def _is_alive(component: ComponentData) -> bool:
    return component.firing_count > 0


class HarvestPass:
    """Everything the harvest thread does, from resume to the last finalized component."""

    def __init__(
        self,
        source: Source,
        config: HarvestConfig,
        run: RunDir,
        state: StateFile,
        *,
        checkpoint_every_s: float,
        stop: threading.Event,
        on_progress: Callable[[HarvestProgress], None] = lambda progress: None,
        emit_written: Callable[[str], bool] = lambda key: True,
        cpu_threads: CpuThreadPolicy | None = None,
    ) -> None:
        self.source = source
        self.config = config
        self.run_dir = run
        self.state = state
        self.checkpoint_every_s = checkpoint_every_s
        self.stop = stop
        self.on_progress = on_progress
        self.emit_written = emit_written
        """Whether an already written alive component is emitted again on resume (e.g. still
        unlabelled)."""
        self.cpu_threads = cpu_threads
        """For a CPU harvest: applied in the thread that runs the pass (torch's setting is per
        thread), re-decided between batches."""
        self.progress = HarvestProgress(
            n_batches=config.n_batches,
            tokens_per_batch=config.batch_size * config.context_length,
            n_components=sum(c for _, c in config.layout),
        )
        self._writer: CheckpointWriter | None = None
        """Writes the pass's checkpoints, in the background where it can (`writer.py`)."""

    def _report(self, **changes: object) -> None:
        self.progress = dataclasses.replace(self.progress, **changes)  # type: ignore[arg-type]
        self.on_progress(self.progress)

    # ---------------------------------------------------------------- the whole job

    def run(self, emit: Emit | None = None) -> None:
        """Run the remaining phases; return normally when done or stopped (state on disk).

        `emit` None: finalize without handing components on (nothing is emitted again either).
        """
        try:
            if self.cpu_threads is not None:
                self._report(cpu_threads=self.cpu_threads.start())
                log.info("harvest: %s", self.cpu_threads.describe())
            self._run(emit)
        except Stopped:
            self._join_checkpoint_write()
            log.info("harvest stopped; progress is on disk")
        except BaseException:
            self._join_checkpoint_write(quiet=True)
            raise
        else:
            self._join_checkpoint_write()

    def _run(self, emit: Emit | None) -> None:
        state = self.state.get()
        counts = RunReader(self.run_dir).component_counts()
        self._report(components_written=counts.written, alive_written=counts.alive)
        if state.finalize_complete:
            self._report(
                phase="label",
                alive_total=counts.alive,
                batches_done=state.batches_done,
                resumed_from_batch=state.batches_done,
                n_tokens=state.n_tokens,
            )
            self.state.record_start(state.batches_done, counts.written)
            self._emit_written(emit)
            return
        harvester = self._harvest(counts.written)
        self._finalize(harvester, emit)

    # ---------------------------------------------------------------- harvest

    def _harvest(self, written: int) -> Harvester:
        cfg = self.config
        loaded = load_checkpoint(self.run_dir.checkpoint_dir, self.source.device)
        if loaded is None:
            harvester = self._new_harvester()
            batches_done = 0
        else:
            harvester, extra = loaded
            batches_done = int(extra["batches_done"])
            _restore_rng(extra, self.source.device)
        self.state.record_start(batches_done, written)
        self._report(
            batches_done=batches_done,
            resumed_from_batch=batches_done,
            n_tokens=harvester.n_tokens,
            last_checkpoint_at=self.state.get().last_checkpoint_at,
        )
        if self.state.get().harvest_complete:
            if loaded is None:
                raise RuntimeError(
                    f"{self.run_dir.state_path} says the harvest is complete but there is no "
                    f"checkpoint in {self.run_dir.checkpoint_dir}; start over with "
                    "--force-new-harvest"
                )
            return harvester
        log.info("harvest: starting at batch %d of %d", batches_done, cfg.n_batches)
        self._writer = CheckpointWriter.for_harvest(self.run_dir.checkpoint_dir, harvester)
        self._report(phase="harvest")
        batches = self.source.batches(cfg.batch_size, cfg.context_length, start=batches_done)
        try:
            batches_done = self._accumulate(harvester, batches, batches_done)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # stops a prefetching thread at once
        self.state.update(last_batch_at=time.time())
        log.info("harvest: all %d batches done (%d tokens)", batches_done, harvester.n_tokens)
        self._start_final_checkpoint(harvester, batches_done)
        return harvester

    def _accumulate(
        self, harvester: Harvester, batches: Iterator[torch.Tensor], batches_done: int
    ) -> int:
        """Feed batches until `n_batches`; checkpoint periodically and when asked to stop."""
        cfg = self.config
        started = last_checkpoint = time.monotonic()
        saved_at = resumed_from = batches_done
        while batches_done < cfg.n_batches:
            tokens = None if self.stop.is_set() else next(batches, None)
            if tokens is None:
                if batches_done > saved_at:
                    self._checkpoint(harvester, batches_done, live=True)
                self._join_checkpoint_write()  # the last write lands before the pass ends
                if self.stop.is_set():
                    raise Stopped
                raise UserError(
                    f"the source ran out of data after {batches_done} batches of "
                    f"{cfg.batch_size}×{cfg.context_length} tokens; ask for at most "
                    f"--n-batches {batches_done} (progress is saved, but the configuration "
                    "changes, so that needs --force-new-harvest)"
                )
            ci, output_probs = self.source.step(tokens)
            harvester.update(tokens, ci, output_probs)
            batches_done += 1
            self._checkpoints_committed()
            self._retune_threads()
            self._report(
                batches_done=batches_done,
                n_tokens=harvester.n_tokens,
                batches_this_session=batches_done - resumed_from,
                harvest_seconds=time.monotonic() - started,
                device_memory=device_memory(self.source.device),
            )
            if time.monotonic() - last_checkpoint >= self.checkpoint_every_s:
                self._checkpoint(harvester, batches_done)
                saved_at = batches_done
                last_checkpoint = time.monotonic()
        return batches_done

    def _retune_threads(self) -> None:
        if self.cpu_threads is None:
            return
        before = self.cpu_threads.threads
        if self.cpu_threads.tick() != before:
            log.info("harvest: now %s", self.cpu_threads.describe())
            self._report(cpu_threads=self.cpu_threads.threads)

    def _new_harvester(self) -> Harvester:
        cfg = self.config
        return Harvester(
            cfg.layout,
            cfg.vocab_size,
            ci_threshold=cfg.ci_threshold,
            examples_per_component=cfg.sampled_per_component,
            context_tokens_per_side=cfg.context_tokens_per_side,
            device=self.source.device,
            seed=cfg.seed,
            negatives_per_component=cfg.negatives_per_component,
            hard_negatives_per_component=cfg.hard_negatives_per_component,
        )

    def _checkpoint(
        self,
        harvester: Harvester,
        batches_done: int,
        *,
        live: bool = False,
        then: Callable[[], None] = lambda: None,
    ) -> None:
        """Checkpoint the state after `batches_done` batches: a snapshot now, written in the
        background (or synchronously where no snapshot fits). `live`: the last one; it writes the
        live tables in the background, which must not change until it is joined. `state.json`
        names a checkpoint only once it is committed (in the writing thread, then `then`)."""
        assert self._writer is not None
        self.state.guard.check()
        extra = {"batches_done": batches_done, **_rng_state(self.source.device)}
        n_tokens = harvester.n_tokens

        def committed(commit: Commit) -> None:
            self.state.update(
                batches_done=batches_done,
                n_tokens=n_tokens,
                last_checkpoint_at=commit.manifest.saved_at,
            )
            log.info(
                "checkpoint at batch %d committed: %.1f MiB written in %.2fs",
                batches_done,
                commit.manifest.bytes / 2**20,
                commit.write_s,
            )
            then()

        held = self._writer.save(harvester, extra, committed, live=live)
        how = "being written" if self._writer.in_flight else "written"
        log.info("checkpoint at batch %d (%.2fs) %s", batches_done, held, how)
        self._checkpoints_committed()

    def _checkpoints_committed(self) -> None:
        """Report checkpoints the writer committed; raise here if a background write failed."""
        if self._writer is not None:
            for commit in self._writer.poll():
                self._report(last_checkpoint_at=commit.manifest.saved_at)

    def _start_final_checkpoint(self, harvester: Harvester, batches_done: int) -> None:
        """Save the complete accumulator while finalize already streams components out.

        Both only read the accumulator. Until this checkpoint lands, `state.json` does not say
        the harvest is complete, so a crash meanwhile resumes from the previous checkpoint and
        replays the last batches, which gives the same statistics.
        """

        def complete() -> None:
            now = time.time()
            self.state.update(
                harvest_complete=True, n_batches=batches_done, harvest_completed_at=now
            )

        self._checkpoint(harvester, batches_done, live=True, then=complete)

    def _join_checkpoint_write(self, *, quiet: bool = False) -> None:
        """Wait for the checkpoint being written, periodic or final (raising its error; `quiet`:
        log it instead, as another error is already on its way up)."""
        if self._writer is None:
            return
        try:
            self._writer.wait()
        except Exception:
            if not quiet:
                raise
            log.exception("the checkpoint being written when the pass failed failed as well")
        self._checkpoints_committed()

    # ---------------------------------------------------------------- finalize

    def _emit_written(self, emit: Emit | None) -> None:
        """Emit again the alive components already in `components.jsonl` that `emit_written`
        asks for (decoded only then)."""
        if emit is None:
            return
        for component in RunReader(self.run_dir).pending_components(self.emit_written):
            if self.stop.is_set() or not emit(component):
                raise Stopped

    def _finalize(self, harvester: Harvester, emit: Emit | None) -> None:
        self.state.guard.check()
        self._report(phase="finalize")
        cfg = self.config
        scoring = (
            cfg.heldout_per_component > 0
            or cfg.negatives_per_component > 0
            or cfg.hard_negatives_per_component > 0
        )
        with (
            JsonlAppender(self.run_dir.components_path) as out,
            JsonlAppender(self.run_dir.heldout_path) if scoring else nullcontext() as held,
        ):
            self._emit_written(emit)
            start = self.progress.components_written
            log.info("finalize: starting at component %d", start)
            shown = cfg.examples_per_component
            components = finalize(
                harvester, self.source.decode, top_k=cfg.top_k, start=start, shown=shown
            )
            heldout: Iterator[HeldOutData | None] = (
                finalize_heldout(harvester, self.source.decode, shown, start=start)
                if scoring
                else itertools.repeat(None, harvester.n_components - start)
            )
            held_keys = RunReader(self.run_dir).heldout_keys() if scoring else set()
            written, alive = start, self.progress.alive_written
            for component, withheld in zip(components, heldout, strict=True):
                # The held-out line first: a crash between the two redoes this component, and
                # its held-out line, already written, is not written twice.
                key = component.component_key
                if held is not None and _is_alive(component) and key not in held_keys:
                    held.append(withheld)
                out.append(component)
                written += 1
                alive += _is_alive(component)
                self._report(components_written=written, alive_written=alive)
                if self.stop.is_set() or (emit is not None and not emit(component)):
                    raise Stopped
        self._join_checkpoint_write()
        write_json_atomic(self.run_dir.summary_path, summarize(harvester))
        counts = RunReader(self.run_dir).component_counts()
        self.state.update(
            finalize_complete=True, n_components=counts.written, finalize_completed_at=time.time()
        )
        self._report(phase="label", alive_total=counts.alive, components_written=counts.written)
        log.info("finalize: %d components written (%d alive)", counts.written, counts.alive)


def device_memory(device: torch.device) -> str:
    if device.type != "cuda":
        return ""
    used = torch.cuda.memory_allocated(device) / 2**30
    peak = torch.cuda.max_memory_allocated(device) / 2**30
    total = torch.cuda.get_device_properties(device).total_memory / 2**30
    return f"GPU {used:.1f}/{total:.0f} GiB (peak {peak:.1f})"


def _rng_state(device: torch.device) -> dict[str, list[int]]:
    """Global torch RNG state, in case the source samples (the harvester's own sampling
    generator is part of its checkpoint)."""
    state = {"torch_rng": torch.random.get_rng_state().tolist()}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device).tolist()
    return state


def _restore_rng(extra: dict[str, list[int]], device: torch.device) -> None:
    if "torch_rng" in extra:
        torch.random.set_rng_state(torch.tensor(extra["torch_rng"], dtype=torch.uint8))
    if "cuda_rng" in extra and device.type == "cuda":
        torch.cuda.set_rng_state(torch.tensor(extra["cuda_rng"], dtype=torch.uint8), device)
