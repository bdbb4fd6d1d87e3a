"""The package's shape: lower layers never import higher ones, and every third-party module the
code imports is declared in pyproject.toml (or is an optional piece the README names)."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "autointerp"

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "sources": ("autointerp.harvest", "autointerp.interpret", "autointerp.daemon",
                "autointerp.commands", "autointerp.cli"),
    "harvest": ("autointerp.interpret", "autointerp.daemon", "autointerp.commands",
                "autointerp.cli"),
    "interpret": ("torch", "autointerp.harvest", "autointerp.sources", "autointerp.daemon",
                  "autointerp.commands", "autointerp.cli"),
    "daemon": ("autointerp.commands", "autointerp.cli"),
    "report": ("torch", "autointerp.harvest", "autointerp.sources", "autointerp.daemon",
               "autointerp.commands", "autointerp.cli"),
}  # fmt: skip
"""Folder of the package -> imports its modules may not make (data flows sources -> harvest ->
interpret -> daemon -> commands/cli; report/ reads a run's files beside them and needs no torch)."""

OPTIONAL = {
    "spd": "SPD's own package, installed by the user beside autointerp",
    "transformers": "brought by SPD; needed only for a HuggingFace tokenizer",
    "datasets": "brought by SPD; needed only for a HuggingFace dataset",
    "pyarrow": "needed only for --dataset *.parquet",
}


def _imports(path: Path) -> set[str]:
    """Absolute module names imported anywhere in `path` (also inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_lower_layers_never_import_higher_ones(folder: str) -> None:
    offences = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in _modules(folder)
        for name in sorted(_imports(path))
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[folder])
    ]
    assert not offences, "\n".join(offences)


def test_the_run_records_and_the_store_import_no_layer() -> None:
    for name in ("schemas.py", "store.py", "files.py", "errors.py"):
        layered = {
            m for m in _imports(PACKAGE / name) if m.startswith("autointerp.") and "." in m[11:]
        }
        assert not layered, f"{name} imports {layered}"


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    names = set()
    for requirement in requirements:
        name = requirement.split(";")[0]
        for stop in "<>=!~[ ":
            name = name.split(stop)[0]
        names.add(name.strip().lower().replace("_", "-"))
    return names


def test_every_imported_distribution_is_declared() -> None:
    distributions = packages_distributions()
    declared = _declared()
    missing = []
    for path in PACKAGE.rglob("*.py"):
        for name in _imports(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top == "autointerp" or top in OPTIONAL:
                continue
            dists = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
            if not dists & declared:
                missing.append(f"{path.relative_to(REPO)}: {name} ({', '.join(sorted(dists))})")
    assert not missing, "\n".join(sorted(set(missing)))


def test_optional_pieces_are_imported_only_where_needed() -> None:
    """They may be absent: a module-level import would break `import autointerp...` for all."""
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not [n for n in names if n.split(".")[0] in OPTIONAL], path


def test_the_readme_installs_the_cpu_build_of_torch_for_laptops() -> None:
    """A plain `torch` requirement pulls GBs of CUDA wheels onto a CPU-only laptop."""
    from packaging.requirements import Requirement

    install = (REPO / "README.md").read_text().split("## Install", 1)[1].split("\n## ", 1)[0]
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in install
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (torch,) = [Requirement(r) for r in project["dependencies"] if r.startswith("torch")]
    assert torch.specifier.contains("2.13.0")  # CI's CPU build satisfies it: nothing more
