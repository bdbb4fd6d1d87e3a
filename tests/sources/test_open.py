"""`open_source` dispatch, device resolution and the CLI options."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from autointerp.commands.arguments import add_source_arguments
from autointerp.errors import UserError
from autointerp.sources.open import describe_source_forms, open_source, resolve_device
from tests.sources import factory


def test_py_factory_is_called_with_the_resolved_device() -> None:
    factory.calls.clear()
    result: Any = open_source("py:tests.sources.factory:make", device="cpu")
    assert result == {"device": torch.device("cpu")}
    assert factory.calls == [torch.device("cpu")]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("py:tests.sources.no_such_module:make", "cannot import 'tests.sources.no_such_module'"),
        ("py:tests.sources.factory:missing", "has no callable 'missing'"),
        ("py:tests.sources.factory:not_callable", "has no callable 'not_callable'"),
    ],
)
def test_py_factory_errors(spec: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        open_source(spec, device="cpu")


def test_demo_is_dispatched_to_the_demo_module(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    demo = types.ModuleType("autointerp.sources.demo")
    seen: list[Any] = []
    demo.open_demo_source = lambda device: seen.append(device) or "demo-source"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "autointerp.sources.demo", demo)
    assert open_source("demo", device="cpu") == "demo-source"
    assert seen == [torch.device("cpu")]


def test_resolve_device() -> None:
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(UserError, match="not one of auto, cpu, cuda, cuda:N, mps"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            resolve_device("cuda:1")


def test_source_arguments() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    add_source_arguments(parser)
    args = parser.parse_args(["demo"])
    assert (args.cache_dir, args.dataset, args.tokenizer, args.text_column, args.device) == (
        None,
        None,
        None,
        None,
        "auto",
    )
    argv = "x --cache-dir c --dataset d.txt --tokenizer t --text-column s --device cpu"
    args = parser.parse_args(argv.split())
    assert (args.cache_dir, args.dataset, args.tokenizer, args.text_column, args.device) == (
        "c",
        "d.txt",
        "t",
        "s",
        "cpu",
    )
    assert "wandb:entity/project/run_id" in describe_source_forms()


def test_cli_options_import_neither_torch_nor_spd() -> None:
    code = (
        "import sys, argparse\n"
        "from autointerp.commands.arguments import add_source_arguments\n"
        "add_source_arguments(argparse.ArgumentParser())\n"
        "from autointerp.sources.paths import parse_source\n"
        "parse_source('goodfire/spd/abcd1234')\n"
        "print(sorted(m for m in ('torch', 'spd', 'wandb') if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "[]"
