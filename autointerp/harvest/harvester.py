"""The accumulators of one harvest pass and the per-batch update that fills them.

All tables live on the harvest device. Counts are integers (int32 while the number of tokens seen
stays below 2^31, so that no count can overflow; promoted to int64 beyond), sums of CI and
probability are float64, and the update runs with autocast disabled so a caller's bf16 autocast
block cannot round anything. No one-hot tensors: token statistics cost work proportional to the
firings (times V for the output probabilities), and only components that fire in a block take
part in its co-occurrence product. A batch is processed in blocks of positions to bound the
working memory; each block reads and writes every table once.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from typing import Any

import torch

from autointerp.errors import UserError
from autointerp.harvest.examples import EMPTY_KEY, ExampleSample
from autointerp.harvest.hard_negatives import HardNegativeSample, refresh_due
from autointerp.harvest.kernels import (
    add_sparse_row_sums,
    column_tiles,
    csr_rows,
    mask_product,
    sum_rows_float64,
)
from autointerp.harvest.negatives import NegativeSample
from autointerp.harvest.sizing import CPU_SIZING, Sizing, output_tile_for, sizing_for
from autointerp.harvest.stages import StageTimer

log = logging.getLogger(__name__)

INT32_LIMIT = 2**31 - 1
OUTPUT_TILE = CPU_SIZING.output_tile
"""Vocabulary columns per tile of the output-mass table on a CPU, stored tile by tile as
[tiles, C, 64]: a tile of one block's float64 probabilities stays in a core's cache while the
sparse product gathers its rows, and the sparse BLAS accumulates the sums straight into the
contiguous [C, 64] table (a scatter into a column slice of a [C, V] table was 10x slower)."""
CHUNK_ENTRIES = CPU_SIZING.chunk_entries
"""Entries of one int32 partial co-firing result on a CPU (float64 temporaries take half as
many). Kept small because every fresh allocation page-faults on a CPU, and glibc returns
allocations of 32 MiB or more to the OS when freed: smaller temporaries are reused. Page faults
were a fifth of the update time before this."""

STATE_VERSION = 2
"""2: the output-mass table is stored by vocabulary tile. Version 1 states still load."""


def block_positions(n_components: int) -> int:
    """Positions per block on a CPU: bounds the mask, the index lists and the int8 matmul's inner
    size."""
    return CPU_SIZING.block_positions(n_components)


class Harvester:
    """Exact per-component statistics over a stream of (tokens, CI, output probabilities)."""

    def __init__(
        self,
        layout: list[tuple[str, int]],
        vocab_size: int,
        ci_threshold: float,
        examples_per_component: int,
        context_tokens_per_side: int,
        device: torch.device | str,
        seed: int,
        *,
        output_tile: int | None = None,
        sizing: Sizing | None = None,
        negatives_per_component: int = 0,
        hard_negatives_per_component: int = 0,
    ) -> None:
        """`sizing` (blocks, chunks, tiles; never a result) defaults to the device's
        (`sizing.py`); `output_tile` overrides its tile width (tests, old checkpoints).
        `negatives_per_component`: windows kept per component where it fires nowhere
        (`negatives.py`), for scoring its label; `hard_negatives_per_component`: windows where
        its co-firing partners fire and it does not (`hard_negatives.py`)."""
        if not layout or any(n <= 0 for _, n in layout):
            raise ValueError(
                f"layout needs at least one module, each with >= 1 component: {layout}"
            )
        if vocab_size <= 0 or min(examples_per_component, context_tokens_per_side) < 0:
            raise ValueError("vocab_size must be > 0; examples and context sizes must be >= 0")
        self.layout = [(str(m), int(n)) for m, n in layout]
        self.vocab_size = int(vocab_size)
        self.ci_threshold = float(ci_threshold)
        self.examples_per_component = int(examples_per_component)
        self.context_tokens_per_side = int(context_tokens_per_side)
        self.device = torch.device(device)
        self.seed = int(seed)
        self.n_tokens = 0
        self.n_batches = 0
        c, v, dev = self.n_components, self.vocab_size, self.device
        if output_tile is None:
            output_tile = sizing.output_tile if sizing is not None else output_tile_for(dev)
        self.output_tile = max(1, min(int(output_tile), v))
        self.firing_count = torch.zeros(c, dtype=torch.int64, device=dev)
        self.ci_sum = torch.zeros(c, dtype=torch.float64, device=dev)
        self.token_count = torch.zeros(v, dtype=torch.int64, device=dev)
        self.output_mass = torch.zeros(v, dtype=torch.float64, device=dev)
        self.input_co = torch.zeros((c, v), dtype=torch.int32, device=dev)
        n_tiles = -(-v // self.output_tile)
        self.output_tiles = torch.zeros(
            (n_tiles, c, self.output_tile), dtype=torch.float64, device=dev
        )
        """Output-probability mass per (component, token), token t at [t // tile, :, t % tile];
        read rows with `output_rows`."""
        self.cooc = torch.zeros((c, c), dtype=torch.int32, device=dev)
        """Upper triangle (c <= d) of the co-firing counts; read rows with `cooc_rows`."""
        self.examples = ExampleSample(c, self.examples_per_component, context_tokens_per_side, dev)
        self.generator = torch.Generator(device=dev)
        self.generator.manual_seed(self.seed)
        self.negatives_per_component = max(0, int(negatives_per_component))
        self.negatives = NegativeSample(
            c, self.negatives_per_component, context_tokens_per_side, dev, self.seed
        )
        tables = [self.firing_count, self.ci_sum, self.token_count, self.output_mass, self.input_co]
        tables += [self.output_tiles, self.cooc, *self.examples.tensors().values()]
        self.hard_negatives_per_component = max(0, int(hard_negatives_per_component))
        self.hard_negatives = HardNegativeSample(
            c, self.hard_negatives_per_component, context_tokens_per_side, dev, self.seed
        )
        tables += self.negatives.tensors().values()
        tables += self.hard_negatives.tensors().values()
        self.sizing = sizing or sizing_for(dev, c, v, tables_bytes=sum(t.nbytes for t in tables))
        self.block_positions = self.sizing.block_positions(c)
        """Also decides which firing draws which sampling key: kept across a resume."""
        self.chunk_entries = self.sizing.chunk_entries
        self.timer: StageTimer | None = None
        """Set by a benchmark to learn where the update's time goes (synchronises: slower)."""

    @property
    def n_components(self) -> int:
        return sum(n for _, n in self.layout)

    def update(self, tokens: torch.Tensor, ci: torch.Tensor, output_probs: torch.Tensor) -> None:
        """Accumulate one batch: `tokens` [B,S] ints, `ci` [B,S,C], `output_probs` [B,S,V]."""
        tokens, ci, output_probs = self._check(tokens, ci, output_probs)
        # Inference mode works whether the tables were made inside or outside of it.
        with torch.autocast(self.device.type, enabled=False), torch.inference_mode():
            self._update(tokens, ci, output_probs)

    def _check(
        self, tokens: torch.Tensor, ci: torch.Tensor, probs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [batch, seq], got shape {tuple(tokens.shape)}")
        b, s = tokens.shape
        if tuple(ci.shape) != (b, s, self.n_components):
            raise ValueError(
                f"ci must be [{b}, {s}, {self.n_components}] (modules concatenated in layout "
                f"order), got {tuple(ci.shape)}"
            )
        if tuple(probs.shape) != (b, s, self.vocab_size):
            raise ValueError(
                f"output_probs must be [{b}, {s}, {self.vocab_size}], got {tuple(probs.shape)}"
            )
        tokens = tokens.to(self.device, torch.int64)
        if tokens.numel():
            lo, hi = torch.stack(torch.aminmax(tokens)).tolist()  # one host round trip, not two
            if lo < 0 or hi >= self.vocab_size:
                raise UserError(
                    f"token ids must lie in [0, {self.vocab_size}); got [{lo}, {hi}]: take "
                    "vocab_size from the input embedding's num_embeddings, not from the tokenizer"
                )
        return tokens, ci.to(self.device), probs.to(self.device)

    def _update(self, tokens: torch.Tensor, ci: torch.Tensor, probs: torch.Tensor) -> None:
        b, s = tokens.shape
        n_pos = b * s
        if self.n_tokens + n_pos > INT32_LIMIT:
            self._promote_counts()
        c, v = self.n_components, self.vocab_size
        tok = tokens.reshape(n_pos)
        ci2 = ci.reshape(n_pos, c)
        probs2 = probs.reshape(n_pos, v)
        with self._stage("token counts, CI sums"):
            self.token_count += torch.bincount(tok, minlength=v)
            self.ci_sum += sum_rows_float64(ci2, self.chunk_entries // 2)
        if self.hard_negatives_per_component:
            with self._stage("hard negatives"):
                # Partners from the batches before this one (as of the last refresh).
                if refresh_due(self.n_batches):
                    self.hard_negatives.refresh_partners(
                        self.cooc_rows, self.firing_count, self.chunk_entries
                    )
                self.hard_negatives.begin(n_pos, s, self.device)
        n_blocks = -(-n_pos // self.block_positions)
        block = -(-n_pos // n_blocks)  # balanced: no small last block re-reading the tables
        for p0 in range(0, n_pos, block):
            self._update_block(p0, min(n_pos, p0 + block), tok, ci2, probs2, s)
        if self.negatives_per_component:
            with self._stage("negatives"):
                self.negatives.offer(tok, ci2, s, self.n_tokens, self.ci_threshold)
        if self.hard_negatives_per_component:
            with self._stage("hard negatives"):
                self.hard_negatives.offer(tok, ci2, s, self.n_tokens, self.ci_threshold)
        self.n_tokens += n_pos
        self.n_batches += 1

    def _update_block(
        self,
        p0: int,
        p1: int,
        tok: torch.Tensor,
        ci2: torch.Tensor,
        probs2: torch.Tensor,
        seq_len: int,
    ) -> None:
        c, v = self.n_components, self.vocab_size
        with self._stage("vocabulary tiles"):
            tiles = column_tiles(probs2[p0:p1], self.output_tile, torch.float64)
            self.output_mass += torch.cat([tile.sum(0) for tile in tiles])
        with self._stage("firing lists"):
            firing_pos, firing_comp = torch.nonzero(ci2[p0:p1] > self.ci_threshold).unbind(1)
            if firing_comp.numel() == 0:
                return
            # (component, position) pairs sorted by component, then position (a stable sort of
            # the position-major list is faster than reading the mask column by column).
            order = torch.argsort(firing_comp, stable=True)
            comp, pos = firing_comp[order], firing_pos[order]
            crow = csr_rows(comp, c)
            self.firing_count += crow.diff()
        with self._stage("input token counts"):
            flat = comp * v + tok[pos + p0]
            ones = torch.ones_like(flat, dtype=self.input_co.dtype)
            self.input_co.view(-1).index_add_(0, flat, ones)
        with self._stage("output-probability mass"):
            # Straight into the tables (the last tile of the table may be wider).
            targets = [
                t[:, : tile.shape[1]] for t, tile in zip(self.output_tiles, tiles, strict=True)
            ]
            add_sparse_row_sums(targets, crow, pos, p1 - p0, tiles)
        with self._stage("co-firing counts"):
            self._count_block_cofirings(comp, pos, p1 - p0)
        with self._stage("examples"):
            self._offer_examples(comp, pos, p0, tok, ci2, seq_len)
        if self.hard_negatives_per_component:
            with self._stage("hard negatives"):
                self.hard_negatives.see(comp, pos + p0)

    def _stage(self, name: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext() if self.timer is None else self.timer.stage(name)

    def _offer_examples(
        self,
        comp: torch.Tensor,
        pos: torch.Tensor,
        p0: int,
        tok: torch.Tensor,
        ci2: torch.Tensor,
        seq_len: int,
    ) -> None:
        if self.examples_per_component:
            # Drawn keys lie in [0, EMPTY_KEY): never equal to the empty-slot key.
            keys = torch.randint(
                0, EMPTY_KEY, (comp.numel(),), generator=self.generator, device=self.device
            )
            pos = pos + p0
            self.examples.offer(comp, pos, keys, pos + self.n_tokens, tok, ci2, seq_len)

    def _count_block_cofirings(self, comp: torch.Tensor, pos: torch.Tensor, n_pos: int) -> None:
        """Co-firing counts of one block's firings (`comp` sorted, `pos` within the block): int8
        mask products over the block's alive components, a chunk of component ids at a time."""
        alive = torch.unique_consecutive(comp)
        n_alive = alive.numel()
        # The firing masks of alive components, both ways round, set from the firing list.
        local = torch.searchsorted(alive, comp)
        m8 = torch.zeros((n_pos, n_alive), dtype=torch.int8, device=self.device)
        m8[pos, local] = 1
        m8_t = torch.zeros((n_alive, n_pos), dtype=torch.int8, device=self.device)
        m8_t[local, pos] = 1
        # Chunks are ranges of component ids, so that each chunk's rows land in one contiguous
        # slab of the table.
        step = max(1, self.chunk_entries // n_alive)
        ids = torch.arange(0, self.n_components + step, step, device=self.device)
        cuts = torch.searchsorted(alive, ids).clamp(max=n_alive).tolist()
        for a0, a1 in itertools.pairwise(cuts):
            if a0 < a1:
                both = mask_product(m8_t[a0:a1], m8[:, a0:])
                self._add_cofirings(alive[a0:a1], alive[a0:], both)

    def _add_cofirings(self, rows: torch.Tensor, cols: torch.Tensor, both: torch.Tensor) -> None:
        """Add co-firing counts `both` [rows, cols] (sorted component ids, `cols` starting at
        `rows[0]`) to the upper triangle of the table: pairs (c, d) with c <= d only.

        A 2-D scatter of the counts is slow on CPUs (serial); instead the rows are spread over a
        zeroed slab of consecutive component ids and the slab's columns added with `index_add_`.
        """
        n = rows.numel()
        both[:, :n].triu_()
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        if r1 - r0 == n:
            slab = both
        else:
            slab = both.new_zeros(r1 - r0, cols.numel())
            slab.index_copy_(0, rows - r0, both)
        self.cooc[r0:r1].index_add_(1, cols, slab.to(self.cooc.dtype))

    def _load_table(self, name: str, value: torch.Tensor) -> None:
        """Copy a saved table into the freshly allocated one, or free that one first if the saved
        table differs (promoted counts): a resume never holds two copies of a table on the device,
        which for the largest (the C x C co-occurrence) could exceed what the pass fitted in."""
        if getattr(self, name).shape == value.shape and getattr(self, name).dtype == value.dtype:
            getattr(self, name).copy_(value)
        else:
            setattr(self, name, None)
            setattr(self, name, value.to(self.device, copy=True))

    def output_rows(self, c0: int, c1: int) -> torch.Tensor:
        """Output-probability mass rows [c1-c0, V], assembled from the tiles (read them only: with
        a single tile this is a view of the table)."""
        rows = self.output_tiles[:, c0:c1].permute(1, 0, 2).reshape(c1 - c0, -1)
        return rows[:, : self.vocab_size]

    def cooc_rows(self, c0: int, c1: int) -> torch.Tensor:
        """Full co-occurrence rows [c1-c0, C]; the table itself holds only pairs c <= d."""
        rows = self.cooc[c0:c1].clone()
        # U[d, c] for d < c: a row-major copy of the column slab, then a blocked transpose.
        lower = self.cooc[:c1, c0:c1].contiguous().t().contiguous()
        rows[:, :c1] += lower
        idx = torch.arange(c1 - c0, device=self.device)
        rows[idx, idx + c0] = self.cooc[idx + c0, idx + c0]
        return rows

    def _promote_counts(self) -> None:
        if self.input_co.dtype != torch.int64:
            log.warning("more than 2^31 tokens: promoting count tables to int64 (2x memory)")
            self.input_co = self.input_co.to(torch.int64)
            self.cooc = self.cooc.to(torch.int64)

    def merge(self, other: Harvester) -> None:
        """Add the statistics of `other`, which saw data disjoint from this one's."""
        with torch.inference_mode():
            self._merge(other)

    def _merge(self, other: Harvester) -> None:
        mine = (self.layout, self.vocab_size, self.ci_threshold, self.examples_per_component)
        theirs = (other.layout, other.vocab_size, other.ci_threshold, other.examples_per_component)
        mine += (self.negatives_per_component, self.hard_negatives_per_component)
        theirs += (other.negatives_per_component, other.hard_negatives_per_component)
        if mine != theirs or self.context_tokens_per_side != other.context_tokens_per_side:
            raise UserError("cannot merge harvesters with different layouts or parameters")
        if self.seed == other.seed and self.n_tokens and other.n_tokens:
            raise UserError(
                "cannot merge harvesters that used the same seed: their example keys are not "
                "independent, so the merged sample would not be uniform; give each shard its seed"
            )
        if self.n_tokens + other.n_tokens > INT32_LIMIT:
            self._promote_counts()
        self.firing_count += other.firing_count.to(self.device)
        self.ci_sum += other.ci_sum.to(self.device)
        self.token_count += other.token_count.to(self.device)
        self.output_mass += other.output_mass.to(self.device)
        self.input_co += other.input_co.to(self.device, self.input_co.dtype)
        self.output_tiles += _as_tiles(other.output_tiles, self.output_tile).to(self.device)
        self.cooc += other.cooc.to(self.device, self.cooc.dtype)
        theirs_sample = ExampleSample(
            self.n_components,
            self.examples_per_component,
            self.context_tokens_per_side,
            self.device,
        )
        theirs_sample.load(other.examples.tensors())
        self.examples.merge(theirs_sample)
        self.negatives.merge(other.negatives)
        # Partners stay this harvester's; the next refresh reads the merged table.
        self.hard_negatives.merge(other.hard_negatives)
        self.n_tokens += other.n_tokens
        self.n_batches += other.n_batches

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this harvester stopped (CPU copies)."""
        return self._state(copy=True)

    def _state(self, copy: bool) -> dict[str, Any]:
        """The state; with `copy=False` CPU tensors are shared (for saving right away)."""

        def out(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to("cpu", copy=copy)

        return {
            **self.state_meta(),
            "tables": {k: out(t) for k, t in self.state_tables().items()},
            "examples": {k: out(t) for k, t in self.examples.tensors().items()},
            "negatives": {k: out(t) for k, t in self.negatives.tensors().items()},
            "hard_negatives": {k: out(t) for k, t in self.hard_negatives.tensors().items()},
        }

    def state_meta(self) -> dict[str, Any]:
        """The state without its tables: the scalars and the sampler's generator state (a small
        CPU tensor). With `state_tables` and the example tensors, the whole state."""
        return {
            "version": STATE_VERSION,
            "layout": [list(item) for item in self.layout],
            "vocab_size": self.vocab_size,
            "ci_threshold": self.ci_threshold,
            "examples_per_component": self.examples_per_component,
            "context_tokens_per_side": self.context_tokens_per_side,
            "seed": self.seed,
            "n_tokens": self.n_tokens,
            "n_batches": self.n_batches,
            "block_positions": self.block_positions,
            "output_tile": self.output_tile,
            "generator_device": self.device.type,
            "generator_state": self.generator.get_state().cpu(),
            "negatives_per_component": self.negatives_per_component,
            "negative_generator_state": self.negatives.generator.get_state().cpu(),
            "hard_negatives_per_component": self.hard_negatives_per_component,
            "hard_negative_generator_state": self.hard_negatives.generator.get_state().cpu(),
        }

    def state_tables(self) -> dict[str, torch.Tensor]:
        """The accumulator tables themselves, by state name (on the device, not copies: a
        checkpoint reads or copies them between updates)."""
        return {
            "firing_count": self.firing_count,
            "ci_sum": self.ci_sum,
            "token_count": self.token_count,
            "output_mass": self.output_mass,
            "input_co": self.input_co,
            "output_tiles": self.output_tiles,
            "cooc": self.cooc,
        }

    def table_for_loading(self, name: str, dtype: torch.dtype) -> torch.Tensor:
        """Table `name` ready to be filled in place with values of `dtype`: the zero table itself,
        or (counts saved after promotion to int64) a fresh zero table of that dtype, the old one
        freed first so that the device never holds both."""
        table = self.state_tables()[name]
        if table.dtype == dtype:
            return table
        shape = table.shape
        setattr(self, name, None)
        del table
        setattr(self, name, torch.zeros(shape, dtype=dtype, device=self.device))
        return getattr(self, name)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device: torch.device | str) -> Harvester:
        h = cls.from_state_meta(state, device)
        for name, value in state["tables"].items():
            if name == "output_co":  # version 1: one [C, V] table
                name, value = "output_tiles", _as_tiles(value, h.output_tile)
            h._load_table(name, value)
        h.examples.load(state["examples"])
        h.negatives.load(state.get("negatives", {}))
        h.hard_negatives.load(state.get("hard_negatives", {}))
        return h

    @classmethod
    def from_state_meta(cls, state: dict[str, Any], device: torch.device | str) -> Harvester:
        """A harvester with the scalars and generator state of `state` (`state_meta`'s keys) and
        zero tables, to be filled by the caller."""
        if state.get("version") not in (1, STATE_VERSION):
            raise UserError(f"harvest state version {state.get('version')} is not supported")
        h = cls(
            [(m, int(n)) for m, n in state["layout"]],
            state["vocab_size"],
            state["ci_threshold"],
            state["examples_per_component"],
            state["context_tokens_per_side"],
            device,
            state["seed"],
            output_tile=int(state.get("output_tile", OUTPUT_TILE)),
            negatives_per_component=int(state.get("negatives_per_component", 0)),
            hard_negatives_per_component=int(state.get("hard_negatives_per_component", 0)),
        )
        h.n_tokens = int(state["n_tokens"])
        h.n_batches = int(state["n_batches"])
        h.block_positions = int(state["block_positions"])
        if state["generator_device"] == h.device.type:
            h.generator.set_state(state["generator_state"])
            negative_state = state.get("negative_generator_state")
            if negative_state is not None and len(negative_state):
                h.negatives.generator.set_state(negative_state)
            hard_state = state.get("hard_negative_generator_state")
            if hard_state is not None and len(hard_state):
                h.hard_negatives.generator.set_state(hard_state)
        else:
            # Generator states do not carry across device types: reseed from the position so the
            # sample stays uniform, though not bit-identical to an uninterrupted run.
            log.warning(
                "harvest state came from a %s device; loading on %s reseeds the example sampler",
                state["generator_device"],
                h.device.type,
            )
            h.generator.manual_seed(h.seed * 1_000_003 + h.n_batches)
            h.negatives.generator.manual_seed(h.seed * 1_000_033 + h.n_batches)
            h.hard_negatives.generator.manual_seed(h.seed * 1_000_037 + h.n_batches)
        return h


def _as_tiles(table: torch.Tensor, tile: int) -> torch.Tensor:
    """An output-mass table as [tiles, C, tile]: itself if it is one, else from [C, V]."""
    if table.dim() == 3:
        if table.shape[2] != tile:
            raise ValueError(f"output-mass tiles of {table.shape[2]} columns, expected {tile}")
        return table
    c, v = table.shape
    padded = table.new_zeros(c, -(-v // tile) * tile)
    padded[:, :v] = table
    return padded.view(c, -1, tile).transpose(0, 1).contiguous()
