"""The harvest thread: resume, accumulate, checkpoint, finalize, and hand components to the loop.

Runs in a worker thread (torch kernels release the GIL). Recovery rests on the files alone:
- the checkpoint holds the accumulator and the data position, so a restart continues the pass
  from `batches_done` and ends with the same statistics as an uninterrupted pass;
- `components.jsonl` holds every finalized component, so a restart finalizes only the rest
  (`finalize(start=n)`) and re-queues the written ones for labelling (the pool skips done keys);
- `state.json` says which phases are complete.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import msgspec
import torch

from autointerp.daemon.config import HarvestConfig
from autointerp.daemon.progress import SharedProgress
from autointerp.daemon.run_state import StateFile
from autointerp.errors import UserError
from autointerp.harvest import Harvester, finalize, load_checkpoint, save_checkpoint, summarize
from autointerp.schemas import ComponentData
from autointerp.sources.base import Source
from autointerp.store import JsonlAppender, RunDir, iter_jsonl, write_json_atomic

log = logging.getLogger(__name__)

Emit = Callable[[ComponentData], bool] | None
"""Queues one component for labelling (False: the daemon is stopping); None: no labelling."""


class _Firing(msgspec.Struct):
    component_key: str
    firing_count: int = 0


def is_alive(component: ComponentData | _Firing) -> bool:
    return component.firing_count > 0


def count_components(run: RunDir) -> tuple[int, int]:
    """(complete component lines, alive among them) without decoding the statistics."""
    total = alive = 0
    for record in iter_jsonl(run.components_path, _Firing):
        total += 1
        alive += is_alive(record)
    return total, alive


class Stopped(Exception):
    """The daemon is shutting down; the work done so far is on disk."""


class HarvestProducer:
    """Everything the harvest thread does, from resume to the last finalized component."""

    def __init__(
        self,
        source: Source,
        config: HarvestConfig,
        run: RunDir,
        state: StateFile,
        progress: SharedProgress,
        stop: threading.Event,
        *,
        checkpoint_every: float,
        is_pending: Callable[[str], bool] = lambda key: True,
    ) -> None:
        self.source = source
        self.is_pending = is_pending
        """Whether a component still needs a label (so written ones are re-queued only then)."""
        self.config = config
        self.run = run
        self.state = state
        self.progress = progress
        self.stop = stop
        self.checkpoint_every = checkpoint_every
        self._final_checkpoint: threading.Thread | None = None
        self._final_checkpoint_error: BaseException | None = None

    # ---------------------------------------------------------------- the whole job

    def __call__(self, emit: Emit) -> None:
        """Run the remaining phases; return normally when done or stopped (state on disk)."""
        try:
            self._run(emit)
        except Stopped:
            log.info("harvest thread stopped; progress is on disk")
        finally:
            self._join_final_checkpoint()

    def _run(self, emit: Emit) -> None:
        state = self.state.get()
        written, alive = count_components(self.run)
        self.progress.update(
            n_components=sum(c for _, c in self.config.layout),
            components_written=written,
            alive_written=alive,
            n_batches=self.config.n_batches,
            tokens_per_batch=self.config.batch_size * self.config.context_length,
        )
        if state.finalize_complete:
            self.progress.update(
                phase="label",
                alive_total=alive,
                batches_done=state.batches_done,
                resumed_from_batch=state.batches_done,
                n_tokens=state.n_tokens,
            )
            self.state.record_start(state.batches_done, written)
            self._requeue_written(emit)
            return
        harvester = self._harvest(written)
        self._finalize(harvester, emit)

    # ---------------------------------------------------------------- harvest

    def _harvest(self, written: int) -> Harvester:
        cfg = self.config
        loaded = load_checkpoint(self.run.checkpoint_dir, self.source.device)
        if loaded is None:
            harvester = self._new_harvester()
            batches_done = 0
        else:
            harvester, extra = loaded
            batches_done = int(extra["batches_done"])
            _restore_rng(extra, self.source.device)
        self.state.record_start(batches_done, written)
        self.progress.update(
            batches_done=batches_done,
            resumed_from_batch=batches_done,
            n_tokens=harvester.n_tokens,
            last_checkpoint_at=self.state.get().last_checkpoint_at,
        )
        if self.state.get().harvest_complete:
            if loaded is None:
                raise RuntimeError(
                    f"{self.run.state_path} says the harvest is complete but there is no "
                    f"checkpoint in {self.run.checkpoint_dir}; start over with --force-new-harvest"
                )
            return harvester
        log.info("harvest: starting at batch %d of %d", batches_done, cfg.n_batches)
        self.progress.update(phase="harvest")
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
                    self._checkpoint(harvester, batches_done)
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
            self.progress.update(
                batches_done=batches_done,
                n_tokens=harvester.n_tokens,
                batches_this_session=batches_done - resumed_from,
                harvest_seconds=time.monotonic() - started,
                device_memory=device_memory(self.source.device),
            )
            if time.monotonic() - last_checkpoint >= self.checkpoint_every:
                self._checkpoint(harvester, batches_done)
                saved_at = batches_done
                last_checkpoint = time.monotonic()
        return batches_done

    def _new_harvester(self) -> Harvester:
        cfg = self.config
        return Harvester(
            cfg.layout,
            cfg.vocab_size,
            ci_threshold=cfg.ci_threshold,
            examples_per_component=cfg.examples_per_component,
            context_tokens_per_side=cfg.context_tokens_per_side,
            device=self.source.device,
            seed=cfg.seed,
        )

    def _checkpoint(self, harvester: Harvester, batches_done: int) -> None:
        self.state.guard.check()
        t0 = time.monotonic()
        extra = {"batches_done": batches_done, **_rng_state(self.source.device)}
        save_checkpoint(self.run.checkpoint_dir, harvester, extra)
        at = time.time()
        self.state.update(
            batches_done=batches_done, n_tokens=harvester.n_tokens, last_checkpoint_at=at
        )
        self.progress.update(last_checkpoint_at=at)
        log.info("checkpoint at batch %d (%.2fs)", batches_done, time.monotonic() - t0)

    def _start_final_checkpoint(self, harvester: Harvester, batches_done: int) -> None:
        """Save the complete accumulator while finalize already streams components to labelling.

        Both only read the accumulator. Until this checkpoint lands, `state.json` does not say
        the harvest is complete, so a crash meanwhile resumes from the previous checkpoint and
        replays the last batches, which gives the same statistics.
        """

        def save() -> None:
            try:
                self._checkpoint(harvester, batches_done)
                now = time.time()
                self.state.update(
                    harvest_complete=True, n_batches=batches_done, harvest_completed_at=now
                )
            except BaseException as e:  # re-raised in the harvest thread by the join
                self._final_checkpoint_error = e

        self._final_checkpoint = threading.Thread(target=save, name="final-checkpoint")
        self._final_checkpoint.start()

    def _join_final_checkpoint(self) -> None:
        if self._final_checkpoint is not None:
            self._final_checkpoint.join()
            self._final_checkpoint = None
            if self._final_checkpoint_error is not None:
                raise self._final_checkpoint_error

    # ---------------------------------------------------------------- finalize

    def _requeue_written(self, emit: Emit) -> int:
        """Queue the alive, unlabelled components already in `components.jsonl`; return how many
        lines it has. Labelled ones are recognised from their key alone, never fully decoded."""
        n = 0
        head, full = msgspec.json.Decoder(_Firing), msgspec.json.Decoder(ComponentData)
        for raw in iter_jsonl(self.run.components_path, msgspec.Raw):
            n += 1
            if emit is None:
                continue
            key = head.decode(raw)
            if not is_alive(key) or not self.is_pending(key.component_key):
                continue
            if self.stop.is_set() or not emit(full.decode(raw)):
                raise Stopped
        return n

    def _finalize(self, harvester: Harvester, emit: Emit) -> None:
        self.state.guard.check()
        self.progress.update(phase="finalize")
        with JsonlAppender(self.run.components_path) as out:
            start = self._requeue_written(emit)
            log.info("finalize: starting at component %d", start)
            components = finalize(
                harvester, self.source.decode, top_k=self.config.top_k, start=start
            )
            for component in components:
                out.append(component)
                self.progress.add(components_written=1, alive_written=int(is_alive(component)))
                if self.stop.is_set() or (emit is not None and not emit(component)):
                    raise Stopped
        self._join_final_checkpoint()
        write_json_atomic(self.run.summary_path, summarize(harvester))
        written, alive = count_components(self.run)
        self.state.update(
            finalize_complete=True, n_components=written, finalize_completed_at=time.time()
        )
        self.progress.update(phase="label", alive_total=alive, components_written=written)
        log.info("finalize: %d components written (%d alive)", written, alive)


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
