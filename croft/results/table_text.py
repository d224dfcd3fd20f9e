"""The md / csv / latex writers of the results :class:`~croft.results.table.Table`, and its notes as CSV.

md and LaTeX: the blocks, the settings legend, the notes, then incomplete runs, malformed results.json files
and warnings in sections of their own. Markdown prints each part of a block as its own table (compact: the
accuracies, then one table per score and metric, so that a 4-domain, 3-set block fits in :data:`MD_WIDTH`
characters; a block whose lines would still be longer is printed with ``mean±std`` cells), LaTeX one tabular
per block. CSV: one table and nothing else, with the block fields as leading columns, the row's setting (as
text, and one column per distinguishing key) and, per statistic, numeric ``<column> mean``, ``<column> std``
and ``<column> n`` (seeds) columns; its notes are :func:`format_notes`.
"""
import csv
import io
import textwrap

from .settings import BLOCK_FIELDS, format_setting, setting_order
from .table import FEWER_SEEDS_MARK, LOWER_IS_BETTER, METRIC_LABELS, PARTIAL_MARK, build_table, table_notes
from .values import format_value, latex_escape

__all__ = ["FORMATS", "MD_WIDTH", "format_table", "format_stat", "format_notes", "notes_lines", "notes_records"]

FORMATS = ("md", "csv", "latex")
MD_WIDTH = 120
_LEAD_HEADINGS = {"method": "Method", "setting": "setting", "n_seeds": "n_seeds", "n": "n"}
_RIGHT = ("n", "n_seeds")
_NO_RUNS = "No finished runs (no valid results.json) found."


def format_table(rows, fmt="md", scores=None, wide=False, ood_metrics=None):
    """Render rows from :func:`~croft.results.aggregate.collect` as ``md`` (default), ``csv`` or ``latex`` text.

    The compact table by default, the full one with ``wide=True`` (:mod:`croft.results.table`). The best value
    of each compact column is bold in md and ``\\textbf`` in LaTeX; the notes say when cells tie.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    table = build_table(rows, scores=scores, wide=wide, ood_metrics=ood_metrics)
    return {"md": _md, "csv": _csv, "latex": _latex}[fmt](table)


def format_stat(stat, fmt="md", mark=""):
    """``mean ± std`` with 2 decimals (``$\\pm$`` in LaTeX) followed by ``mark``."""
    if stat is None or stat.get("mean") is None:
        text = {"md": "—", "csv": "", "latex": "--"}[fmt]
        return text + (_latex_mark(mark) if fmt == "latex" else mark) if mark else text
    pm = " $\\pm$ " if fmt == "latex" else " ± "
    text = f"{stat['mean']:.2f}{pm}{stat['std']:.2f}"
    return text + (_latex_mark(mark) if fmt == "latex" else mark)


def format_notes(rows, scores=None, wide=False, ood_metrics=None):
    """The notes, incomplete runs, malformed files and warnings of the CSV table, as a CSV of their own
    (``section,path,detail``); :func:`format_table` with ``"csv"`` holds the table only."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["section", "path", "detail"])
    writer.writerows(notes_records(rows, scores, wide, ood_metrics))
    return buf.getvalue()


def notes_lines(rows, scores=None, wide=False, ood_metrics=None):
    """The same as :func:`format_notes`, one plain ``section: [path: ]detail`` line each (for stderr)."""
    return [f"{section}: {path + ': ' if path else ''}{detail}"
            for section, path, detail in notes_records(rows, scores, wide, ood_metrics)]


def notes_records(rows, scores=None, wide=False, ood_metrics=None):
    """``[(section, path, detail)]``: ``note``, ``incomplete``, ``malformed`` and ``warning`` lines."""
    notes = table_notes(build_table(rows, scores=scores, wide=wide, ood_metrics=ood_metrics), "csv") if rows else []
    records = [("note", "", n) for n in notes]
    records += [("incomplete", p, "no results.json") for p in getattr(rows, "incomplete", [])]
    records += [("malformed", p, reason) for p, reason in getattr(rows, "malformed", [])]
    records += [("warning", "", w) for w in getattr(rows, "warnings", [])]
    return records


def _method_label(method, key, latex=False):
    text = latex_escape(method) if latex else str(method)
    return f"{text} [{key}]" if key else text


def _lead_cells(block, i, latex=False):
    row = block.rows[i]
    cells = {"method": lambda: _method_label(row["method"], block.keys[i], latex),
             "setting": lambda: format_setting(row["setting"], latex=latex),
             "n_seeds": lambda: str(row["n_seeds"]), "n": lambda: str(row["n_seeds"])}
    return [cells[k]() for k in block.lead]


# ---------------------------------------------------------------------------------------------
# markdown

def _md_cell(text):
    return str(text).replace("|", "\\|")


def _md_stat(stat, mark, best, pad=False, tight=False):
    """``**mean ± std**`` for the best cell; ``pad`` (a column with a bold cell) appends two spaces to
    the others, so that right-aligned digits line up in plain text; ``tight``: ``mean±std``."""
    text = format_stat(stat, "md")
    if tight:
        text = text.replace(" ± ", "±")
    if best:
        return f"**{text}**{mark}"
    return text + mark + ("  " if pad else "")


def _md_grid(header, body, right, padded):
    """A markdown table; ``padded``: its columns padded to one width each."""
    header = [_md_cell(h) for h in header]
    body = [[_md_cell(c) for c in cells] for cells in body]
    if not padded:
        sep = "|" + "|".join("---:" if r else "---" for r in right) + "|"
        return ["| " + " | ".join(cells) + " |" for cells in [header]] + [sep] \
            + ["| " + " | ".join(cells) + " |" for cells in body]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    widths = [max(w, 3) for w in widths]

    def line(cells):
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if r else (":" + "-" * (w + 1)) for w, r in zip(widths, right)) + "|"
    return [line(header), sep] + [line(cells) for cells in body]


def _wrap(text, first="- ", rest="  ", width=MD_WIDTH):
    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False) or [first.rstrip()]


def _seeds_caption(block):
    if block.show_n:
        return "mean ± std over n seeds"
    n = block.n_seeds[0]
    return f"mean ± std over {n} seed{'s' if n != 1 else ''}"


def _md_caption(block, section):
    if section is None:
        return None
    if section == "acc":
        what = "on the ID test set, each covariate-shifted variant" if block.has_id else "per held-out domain"
        return f"Closed-set accuracy (%) ↑ {what} and Avg; {_seeds_caption(block)}"
    score, metric = section
    arrow = "↓" if metric in LOWER_IS_BETTER else "↑"
    return (f"Open set, {score} score: {METRIC_LABELS[metric]} (%) {arrow} per open-set set, "
            f"mean over held-out domains; {_seeds_caption(block)}")


def _md_block(block, padded, tight=False):
    out = []
    for section, columns in block.parts:
        caption = _md_caption(block, section)
        if caption is not None:
            out.extend([caption, ""])
        header = [_LEAD_HEADINGS[k] for k in block.lead] + [c.set if isinstance(section, tuple) else c.name
                                                            for c in columns]
        body = []
        for i in range(len(block.rows)):
            cells = _lead_cells(block, i)
            for col in columns:
                stat, mark = col.cells[i]
                cells.append(_md_stat(stat, mark, col.best[i], pad=any(col.best), tight=tight))
            body.append(cells)
        right = [k in _RIGHT for k in block.lead] + [True] * len(columns)
        out.extend(_md_grid(header, body, right, padded) + [""])
    return out


def _md(table):
    out = []
    if not table.blocks:
        out.append(_NO_RUNS + "\n")
    for block in table.blocks:
        out.append(f"### {block.title}\n")
        lines = _md_block(block, padded=not table.wide)
        if not table.wide and max(len(line) for line in lines) > MD_WIDTH:  # e.g. Setup-I: mean±std, no spaces
            lines = _md_block(block, padded=True, tight=True)
        out.extend(lines)
    if table.legend:
        out.append("Settings:\n")
        for key, setting in table.legend:
            out.extend(_wrap(f"[{key}] {format_setting(setting)}", first="- ", rest="  "))
        out.append("")
    if table.blocks:
        for note in table_notes(table, "md"):
            out.extend([note] if table.wide else _wrap(note))
        out.append("")
    if table.incomplete:
        out.append("### Incomplete runs (config.yaml / log.txt but no results.json; not averaged)\n")
        out.extend(f"- `{p}`" for p in table.incomplete)
        out.append("")
    if table.malformed:
        out.append("### Skipped: malformed results.json\n")
        out.extend(f"- `{p}`: {reason}" for p, reason in table.malformed)
        out.append("")
    if table.warnings:
        out.append("### Warnings\n")
        out.extend(f"- {w}" for w in table.warnings)
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------
# CSV

CSV_LEAD = ["Dataset", "Backbone", "Pretrained", "Shots", "Protocol", "Method", "setting"]


def _csv_number(value):
    return "" if value is None else repr(float(value))


def _csv_stat(name, stat):
    """``[(column, cell)]`` of one statistic: its mean, population std and number of seeds."""
    if stat is None or stat.get("mean") is None:
        return [(f"{name} mean", ""), (f"{name} std", ""), (f"{name} n", "" if stat is None else str(stat["n"]))]
    return [(f"{name} mean", _csv_number(stat["mean"])), (f"{name} std", _csv_number(stat["std"])),
            (f"{name} n", str(stat["n"]))]


def _csv(table):
    """One CSV table: block fields, method, setting (text and one column per key), n_seeds, then the
    statistics of every block's columns."""
    rows = [row for block in table.blocks for row in block.rows]
    keys = sorted({k for row in rows for k, _ in row["setting"]}, key=setting_order)
    header = []
    for block in table.blocks:
        header.extend(name for c in block.columns for name, _ in _csv_stat(c.name, None) if name not in header)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_LEAD + keys + ["n_seeds"] + header)
    for block in table.blocks:
        for i, row in enumerate(block.rows):
            cells = dict(p for c in block.columns for p in _csv_stat(c.name, c.cells[i][0]))
            setting = dict(row["setting"])
            lead = ["" if row[f] is None else str(row[f]) for f in BLOCK_FIELDS] + [row["method"], row["setting_str"]]
            lead += [format_value(setting[k]) if k in setting else "" for k in keys]
            writer.writerow(lead + [str(row["n_seeds"])] + [cells.get(c, "") for c in header])
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# LaTeX

def _latex_mark(mark):
    if not mark:
        return ""
    return "$^{" + mark.replace(PARTIAL_MARK, "*").replace(FEWER_SEEDS_MARK, r"\dagger") + "}$"


def _latex_stat(stat, mark, best):
    text = format_stat(stat, "latex")
    return (f"\\textbf{{{text}}}" if best and stat is not None and stat.get("mean") is not None else text) \
        + _latex_mark(mark)


def _latex_group_title(title, many_scores):
    if title == "acc":
        return "Accuracy (\\%) $\\uparrow$"
    score, set_name = title
    return latex_escape(f"{set_name} ({score})" if many_scores else set_name)


def _latex_block(block):
    groups = block.groups
    spec = "".join("r" if k in _RIGHT else "l" for k in block.lead)
    for _, rule, cols in groups:
        spec += ("|" if rule else "") + "c" * len(cols)
    n_cols = len(block.lead) + sum(len(cols) for _, _, cols in groups)
    title = block.title.replace("·", "--")
    out = [f"% {title}", f"\\begin{{tabular}}{{{spec}}}", "\\hline",
           f"\\multicolumn{{{n_cols}}}{{l}}{{\\textbf{{{latex_escape(title)}}}}} \\\\", "\\hline"]
    titled = any(t is not None for t, _, _ in groups)
    if titled:  # a row of group titles: the sub-columns of an open-set set are its metrics
        many_scores = len({t[0] for t, _, _ in groups if isinstance(t, tuple)}) > 1
        top = [""] * len(block.lead)
        for k, (t, _, cols) in enumerate(groups):
            bar = "|" if k + 1 < len(groups) else ""
            top.append(f"\\multicolumn{{{len(cols)}}}{{c{bar}}}{{{_latex_group_title(t, many_scores)}}}")
        out.append(" & ".join(top) + " \\\\")
    sub = [latex_escape(_LEAD_HEADINGS[k]) for k in block.lead]
    for _, _, cols in groups:
        for c in cols:
            if titled and c.kind == "open":
                arrow = "$\\downarrow$" if c.metric in LOWER_IS_BETTER else "$\\uparrow$"
                sub.append(f"{METRIC_LABELS[c.metric]}{arrow}")
            else:
                sub.append(latex_escape(c.name))
    out.append(" & ".join(sub) + " \\\\")
    out.append("\\hline")
    all_cols = [c for _, _, cols in groups for c in cols]
    for i in range(len(block.rows)):
        cells = _lead_cells(block, i, latex=True)
        cells += [_latex_stat(*col.cells[i], col.best[i]) for col in all_cols]
        out.append(" & ".join(cells) + " \\\\")
    return out + ["\\hline", "\\end{tabular}", ""]


def _latex_note(note):
    return (latex_escape(note).replace("±", "$\\pm$").replace("—", "--")
            .replace("--wide", r"\texttt{-{}-wide}").replace(FEWER_SEEDS_MARK, "$^{\\dagger}$"))


def _latex(table):
    out = []
    for block in table.blocks:
        out.extend(_latex_block(block))
    if table.blocks:
        parts = [f"[{key}] {format_setting(setting, latex=True)}" for key, setting in table.legend]
        if parts:
            out.append("\\par\\smallskip\\noindent{\\footnotesize Settings: " + "; ".join(parts) + ".}")
        text = " ".join(_latex_note(n) for n in table_notes(table, "latex"))
        out.append("\\par\\smallskip\\noindent{\\footnotesize " + text + "}")
        out.append("")
    else:
        out.append("% " + _NO_RUNS)
    if table.incomplete:
        out.append("% Incomplete runs (config.yaml / log.txt but no results.json; not averaged):")
        out.extend(f"%   {p}" for p in table.incomplete)
    if table.malformed:
        out.append("% Skipped: malformed results.json:")
        out.extend(f"%   {p}: {reason}".replace("\n", " ") for p, reason in table.malformed)
    if table.warnings:
        out.append("% Warnings:")
        out.extend(f"%   {w}".replace("\n", " ") for w in table.warnings)
    return "\n".join(out).rstrip("\n") + "\n"
