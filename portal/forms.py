"""HTML forms generated from a job kind's pydantic `Params` model, and form data back to params.

A field's JSON schema decides its input: enum -> select, boolean -> checkbox, date -> date
picker, integer/number -> number input with min/max, array -> comma-separated text, anything
else -> text. Empty inputs are left out so the model's defaults apply (and a required field gets
pydantic's own error).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ValidationError


@dataclass
class FormField:
    name: str
    label: str
    input: str                      # text | number | date | checkbox | select
    required: bool
    default: object = None
    help: str = ""
    options: list = field(default_factory=list)
    min: object = None
    max: object = None
    step: str = ""
    is_list: bool = False


def _plain(spec: dict) -> dict:
    """`anyOf: [X, null]` (Optional[X]) -> X."""
    for alt in spec.get("anyOf", []):
        if alt.get("type") != "null":
            return {**spec, **alt}
    return spec


def form_fields(model: type[BaseModel]) -> list[FormField]:
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    out = []
    for name, raw in schema.get("properties", {}).items():
        spec = _plain(raw)
        if "$ref" in spec:
            spec = {**spec, **defs.get(spec["$ref"].split("/")[-1], {})}
        typ = spec.get("type", "string")
        f = FormField(name=name, label=spec.get("title") or name, input="text",
                      required=name in required, default=raw.get("default"),
                      help=spec.get("description", ""))
        if "enum" in spec:
            f.input, f.options = "select", list(spec["enum"])
        elif typ == "boolean":
            f.input = "checkbox"
        elif typ in ("integer", "number"):
            f.input, f.step = "number", "1" if typ == "integer" else "any"
            f.min = spec.get("minimum", spec.get("exclusiveMinimum"))
            f.max = spec.get("maximum", spec.get("exclusiveMaximum"))
        elif spec.get("format") == "date":
            f.input = "date"
        elif typ == "array":
            f.is_list = True
            f.help = (f.help + " " if f.help else "") + "(comma-separated)"
        out.append(f)
    return out


def params_from_form(fields: list[FormField], form) -> dict:
    """Raw parameters for `JobService.submit` from submitted form data."""
    raw: dict = {}
    for f in fields:
        if f.input == "checkbox":
            raw[f.name] = f.name in form
            continue
        value = str(form.get(f.name, "")).strip()
        if value == "":
            continue
        raw[f.name] = [v.strip() for v in value.split(",") if v.strip()] if f.is_list else value
    return raw


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Pydantic errors keyed by field name ("" for errors about the whole form)."""
    out: dict[str, str] = {}
    for err in exc.errors():
        key = str(err["loc"][0]) if err.get("loc") else ""
        out.setdefault(key, err["msg"])
    return out


def display_value(f: FormField, values: dict | None) -> str:
    if values is not None and f.name in values:
        v = values[f.name]
    else:
        v = f.default
    if v is None:
        return ""
    if isinstance(v, list):
        return ", ".join(map(str, v))
    return str(v)
