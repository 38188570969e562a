"""The dataset formats' vocabulary at the settings level: which fields each format reads, where
the attack counts its prompt from, and what `memlab validate` refuses. No I/O, no torch:
memlab/components/formats.py reads and renders records with it."""

from __future__ import annotations

import re
import string

from memlab.config.schema import DataSection, StudyConfig

FIELDS = {  # the canonical fields of each format (besides `id`), required ones first
    "text": ("text",),
    "papers": ("title", "abstract", "markdown"),
    "instruction": ("instruction", "output", "input"),
    "chat": ("messages",),
}
OPTIONAL = ("input",)  # read as empty when the source has no such column and it is not mapped
RESPONSE_FORMATS = ("instruction", "chat")  # formats whose response is not the whole document
TEMPLATE_FIELDS = ("instruction", "input", "output")

# ------------------------------------------------------------------------------- settings
def needed_fields(d: DataSection) -> tuple[str, ...]:
    """The canonical fields the data section's format reads from a record."""
    if d.format == "papers":
        return ("title", d.paper_body)
    if d.format == "instruction":  # the fields the template names (output always)
        try:
            named = set(template_fields(d.template))
        except ValueError:
            named = set(TEMPLATE_FIELDS)
        return tuple(f for f in FIELDS["instruction"] if f in named or f == "output")
    return FIELDS[d.format]


def column(d: DataSection, name: str) -> tuple[str, str]:
    """(source column, the setting that names it) of canonical field `name`."""
    if name in d.columns:
        return d.columns[name], f"data.columns.{name}"
    if name == "text":
        return d.text_field, "data.text_field"
    if name == "id":
        return d.id_field or "", "data.id_field"
    return name, f"its own name; map another column with data.columns.{name}"


def prompt_from(cfg: StudyConfig) -> str:
    """Where the attack counts prefix_tokens from: 'response' or 'start' (for text and papers
    the two are the same: the response is the whole document)."""
    p = cfg.attack.prompt_from
    if cfg.data.format not in RESPONSE_FORMATS:
        return "start"
    return "response" if p == "auto" else p


_SPLIT_PART = r"\s*[\w.-]+\s*(\[\s*-?\d*\s*%?\s*:\s*-?\d*\s*%?\s*(\(\w+\))?\s*\])?\s*"
HF_SPLIT = re.compile(rf"^{_SPLIT_PART}(\+{_SPLIT_PART})*$")


def template_fields(template: str) -> list[str]:
    """The fields a template names, in order (ValueError on a malformed template, or on a
    field with a conversion or format spec: fields are replaced by their text as it is)."""
    parts = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template)
             if f is not None]
    if any(spec or conv for _, spec, conv in parts):
        raise ValueError("fields take no conversion or format spec (write {output})")
    return [f for f, _, _ in parts]


def problems(cfg: StudyConfig) -> list[tuple[str, str]]:
    """(key, message) for each format setting that cannot work (memlab validate reports
    them)."""
    d, out = cfg.data, []
    allowed = ("id",) + FIELDS[d.format]
    for name, col in d.columns.items():
        if name not in allowed:
            out.append((f"data.columns.{name}", f"not a field of data.format {d.format} "
                        f"(its fields: {', '.join(allowed)})"))
        elif not col:
            out.append((f"data.columns.{name}", "must name a column"))
    for name, old, default in (("text", d.text_field, "text"), ("id", d.id_field, None)):
        if name in d.columns and old != default and old != d.columns[name]:
            out.append((f"data.columns.{name}", f"names {d.columns[name]!r} but data."
                        f"{name}_field names {old!r}: set one of them"))
    if d.format != "text" and d.source == "demo":
        out.append(("data.format", f"{d.format} needs records from data.source local or hf "
                    "(the demo corpus is plain text)"))
    if d.format == "instruction":
        try:
            names = template_fields(d.template)
        except ValueError as e:
            out.append(("data.template", f"not a valid format string: {e}"))
        else:
            unknown = [n for n in names if n not in TEMPLATE_FIELDS]
            if unknown:
                out.append(("data.template", f"unknown field(s) {unknown}: use "
                            "{instruction}, {input}, {output} ({{ }} for literal braces)"))
            if names.count("output") != 1 or d.template.count("{output}") != 1:
                out.append(("data.template", "must hold {output} exactly once (the response "
                            "starts there)"))
    if d.source == "hf" and not HF_SPLIT.match(d.hf_split):
        out.append(("data.hf_split", f"{d.hf_split!r} is not a split of datasets' syntax "
                    "(train, train[:2000], train[10%:20%], train[:500]+test[:500])"))
    return out
