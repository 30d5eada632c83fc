"""report.html: the report as one self-contained file to share (figures embedded as data URIs,
tables styled, no network), rendered from report.md by markdown-it-py (CommonMark + tables)."""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 72rem; margin: 2rem auto;
       padding: 0 1rem; line-height: 1.45; color: #1b1b1b; }
h1, h2, h3 { line-height: 1.2; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .9rem; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d0d0; padding: .25rem .5rem; vertical-align: top; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
code { background: #f4f4f4; padding: 0 .2rem; border-radius: 3px; }
details { margin: .4rem 0 1rem; } summary { cursor: pointer; color: #0b5394; }
"""


def _embed(match: re.Match, base: Path) -> str:
    src = html.unescape(match.group(2))
    path = (base / src).resolve()
    if not path.is_file() or path.suffix.lower() != ".png":
        raise ValueError(f"report.html: cannot embed {src}")
    data = base64.b64encode(path.read_bytes()).decode()
    return f'{match.group(1)}"data:image/png;base64,{data}"'


def render(markdown_text: str, base: Path, title: str = "sae-repro report") -> str:
    """The HTML document of report.md (whose relative image links resolve against `base`)."""
    from markdown_it import MarkdownIt
    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown_text)
    body = re.sub(r'(<img[^>]*\bsrc=)"([^"]+)"', lambda m: _embed(m, Path(base)), body)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{html.escape(title)}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n")


def write(md_path: Path, out_path: Path) -> None:
    md_path = Path(md_path)
    Path(out_path).write_text(render(md_path.read_text(), md_path.parent))
