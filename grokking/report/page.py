"""One HTML page of tabs of plotly figures, opening from the file with no network.

plotly.js is either inlined (a run's report: one self-contained file) or loaded from a relative
path (the reports of a sweep share one ``plotly.min.js`` beside them). Each figure's JSON sits in
its own ``<script type="application/json">`` block and is drawn when its tab is first opened, so
a page with many heat maps opens fast and hidden tabs are not drawn at the wrong size.
"""
from __future__ import annotations

import functools
import html
from contextlib import contextmanager
from pathlib import Path

import plotly.io
from plotly.offline import get_plotlyjs

PLOTLY_FILE = "plotly.min.js"
TEMPLATE = "plotly_white"  # every figure's look, added as its JSON is written (figure_json)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 1.5em 2em; color: #222; }
h1 { font-size: 1.4em; margin: 0.8em 0 0.2em; }
.meta { color: #555; font-size: 0.9em; margin: 0.2em 0; }
nav { position: sticky; top: 0; background: white; padding: 0.5em 0; border-bottom: 1px solid #ccc; z-index: 10; }
nav button { font: inherit; padding: 0.35em 0.9em; margin: 0 0.2em 0.2em 0; border: 1px solid #bbb;
             border-radius: 4px; background: #f5f5f5; cursor: pointer; }
nav button.active { background: #1f77b4; color: white; border-color: #1f77b4; }
nav button.absent { color: #999; border-style: dashed; }
.note { margin: 0.4em 0; }
.absent-why { color: #666; font-style: italic; margin: 1em 0; }
.plot { width: 100%; margin: 0.5em 0 1.2em; }
table.runs { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
table.runs th, table.runs td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
table.runs th { background: #f0f0f0; cursor: pointer; user-select: none; }
table.runs td.text { text-align: left; }
"""

SCRIPT = """
window.reportErrors = [];
window.addEventListener('error', e => window.reportErrors.push(String(e.message)));
function drawTab(section) {
  section.querySelectorAll('.plot:not([data-drawn])').forEach(div => {
    const spec = JSON.parse(document.getElementById(div.dataset.fig).textContent);
    Plotly.newPlot(div, spec.data, spec.layout, {responsive: true, displaylogo: false});
    div.dataset.drawn = 'yes';
  });
}
function showTab(id) {
  document.querySelectorAll('section.tab').forEach(s => { s.hidden = s.id !== id; });
  document.querySelectorAll('nav button').forEach(b => b.classList.toggle('active', b.dataset.tab === id));
  const section = document.getElementById(id);
  if (section) { drawTab(section); history.replaceState(null, '', '#' + id); }
}
document.querySelectorAll('nav button').forEach(b => b.addEventListener('click', () => showTab(b.dataset.tab)));
function sortTable(th) {
  const table = th.closest('table'), body = table.tBodies[0], col = th.cellIndex;
  const up = th.dataset.order !== 'up';
  table.querySelectorAll('th').forEach(h => delete h.dataset.order);
  th.dataset.order = up ? 'up' : 'down';
  const key = td => { const v = td.dataset.sort ?? td.textContent; const n = parseFloat(v);
                      return v === '' ? null : (isNaN(n) ? v : n); };
  const rows = Array.from(body.rows).sort((r1, r2) => {
    const a = key(r1.cells[col]), b = key(r2.cells[col]);
    if (a === null || b === null) return (a === null) - (b === null);
    const c = (typeof a === typeof b) ? (a < b ? -1 : a > b ? 1 : 0) : (typeof a === 'number' ? -1 : 1);
    return up ? c : -c;
  });
  rows.forEach(r => body.appendChild(r));
}
document.querySelectorAll('table.runs th').forEach(th => th.addEventListener('click', () => sortTable(th)));
const first = document.querySelector('section.tab');
showTab(location.hash && document.getElementById(location.hash.slice(1)) ? location.hash.slice(1) : first && first.id);
"""


@contextmanager
def untemplated_figures():
    """Build figures without plotly's default template: plotly copies and validates a whole
    template into every figure it makes and every layout that names one (about 50 ms a figure,
    over a second of a run's report); ``figure_json`` adds ``TEMPLATE`` to the written JSON
    instead, which draws the same page."""
    default = plotly.io.templates.default
    plotly.io.templates.default = None
    try:
        yield
    finally:
        plotly.io.templates.default = default


@functools.cache
def template_json() -> dict:
    return plotly.io.templates[TEMPLATE].to_plotly_json()


def figure_json(fig) -> str:
    """The figure as JSON, with ``TEMPLATE`` unless it has a template of its own, safe inside a
    <script> block."""
    spec = fig.to_plotly_json()
    if not spec["layout"].get("template"):
        spec["layout"]["template"] = template_json()
    return plotly.io.to_json(spec, validate=False).replace("</", "<\\/")


def plotly_tag(plotly_src: str | None) -> str:
    """plotly.js inline (``None``) or from a relative path."""
    if plotly_src is None:
        return f"<script>{get_plotlyjs()}</script>"
    return f'<script src="{html.escape(plotly_src)}"></script>'


def write_plotly(folder: Path) -> Path:
    """``plotly.min.js`` in ``folder``, for the pages that load it from there."""
    path = Path(folder) / PLOTLY_FILE
    if not path.is_file() or path.stat().st_size != len(get_plotlyjs().encode()):
        path.write_text(get_plotlyjs(), encoding="utf-8")
    return path


def render(title: str, meta: list[str], tabs: list, plotly_src: str | None = None, extra_html: str = "") -> str:
    """The page: a title, lines of facts, ``extra_html`` (the sweep's table), then the tabs."""
    buttons, sections, blocks = [], [], []
    for i, tab in enumerate(tabs):
        tab_id = "tab-" + "".join(c if c.isalnum() else "-" for c in tab.title.lower())
        cls = ' class="absent"' if tab.absent else ""
        hint = f' title="{html.escape(tab.absent)}"' if tab.absent else ""
        buttons.append(f'<button data-tab="{tab_id}"{cls}{hint}>{html.escape(tab.title)}</button>')
        body = [f'<p class="note">{html.escape(note)}</p>' for note in tab.notes]
        if tab.absent:
            body.append(f'<p class="absent-why">Not shown for this run: {html.escape(tab.absent)}.</p>')
        for j, fig in enumerate(tab.figures):
            fig_id = f"fig-{i}-{j}"
            body.append(f'<div class="plot" data-fig="{fig_id}"></div>')
            blocks.append(f'<script type="application/json" id="{fig_id}">{figure_json(fig)}</script>')
        sections.append(f'<section class="tab" id="{tab_id}" hidden>{"".join(body)}</section>')
    absent = [f"{t.title}: {t.absent}" for t in tabs if t.absent]
    meta_html = "".join(f'<p class="meta">{html.escape(line)}</p>' for line in meta)
    if absent:
        meta_html += f'<p class="meta">Tabs that do not apply: {html.escape("; ".join(absent))}.</p>'
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style>{plotly_tag(plotly_src)}</head><body>"
            f"<h1>{html.escape(title)}</h1>{meta_html}{extra_html}<nav>{''.join(buttons)}</nav>"
            f"{''.join(sections)}{''.join(blocks)}<script>{SCRIPT}</script></body></html>\n")


def write_page(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
