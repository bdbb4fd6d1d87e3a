"""The frame every page shares: head, Content-Security-Policy, navigation."""

from __future__ import annotations

from autointerp.report.escape import text

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'"
)
"""Only the site's own script and stylesheet may load: markup that slipped through escaping
could run nothing and fetch nothing (defence in depth; escaping is the guarantee)."""


def document(
    title: str, body: str, *, run_id: str, root: str = "", scripts: tuple[str, ...] = ()
) -> str:
    """A whole page; `root` is the way back to the site's top ("" or "../"), `scripts` are
    site-relative paths loaded at the end of the body, in order."""
    tags = "".join(f'<script src="{root}{src}"></script>\n' for src in scripts)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{text(title)}</title>\n"
        f'<link rel="icon" href="{root}assets/favicon.svg" type="image/svg+xml">\n'
        f'<link rel="stylesheet" href="{root}assets/report.css">\n'
        "</head><body>\n"
        f'<header class="top"><a class="brand" href="{root}index.html">autointerp</a>'
        f'<span class="run">{text(run_id)}</span>'
        f'<nav><a href="{root}index.html">Components</a>'
        f'<a href="{root}overview.html">Overview</a></nav></header>\n'
        f"<main>\n{body}\n</main>\n{tags}</body></html>\n"
    )


def who(name: str, model: str) -> str:
    """`claude claude-haiku-4-5`, but `offline` once (its model is called offline too)."""
    return name if model in ("", name) else f"{name} {model}"
