"""pydicom deid's filter recipes (``deid.dicom*`` files) read into rule data, and a pure matcher.

The burned-in pixel screen (:mod:`deid.burned_in`) uses a maintained rule set instead of our
own: the CTP-derived filters that pydicom's ``deid`` package ships (MIT), pinned and extracted
by the Makefile into ``.cache/pydicom-deid/<version>/``. We do not install that package (its
top-level package is also called ``deid`` and would shadow ours); this module reads its text
files with a parser of our own. Rules stay data: a recipe file becomes a :class:`Recipe` of
frozen :class:`Rule` values, and matching a rule against a dataset is a pure function of the
attribute values it names.

The grammar (as deid's ``deid/config/utils.py`` reads it)::

    FORMAT dicom
    %filter graylist                    # section: whitelist | graylist | blacklist | any name
    LABEL Philips IU22 # (CTP)          # a rule; text after '#' is a comment
      contains Modality US              # first condition line
      + contains Manufacturer Philips   # '+' joins a line with AND, '||' with OR
      + equals Rows 480
      ctpcoordinates 0,0,640,47         # region to blank: x, y, width, height
    %header                             # header actions: not ours, skipped

- Conditions: ``contains F V`` / ``notcontains F V`` (case-insensitive regular-expression
  search in the value, so ``A|B`` means either), ``equals F V`` / ``notequals F V``
  (case-insensitive whole value), ``missing F`` (absent), ``present F``, ``empty F`` (present
  with an empty value). ``F`` is a keyword or a ``0xGGGGEEEE`` tag. One line may chain several
  conditions with ``+`` / ``||`` followed by a condition word (``contains Modality DX +
  contains PatientSex M``); a ``+`` not followed by one is part of the value (``SOMATOM
  Definition AS+``).
- Regions: ``coordinates xmin,ymin,xmax,ymax`` (maximum exclusive), ``ctpcoordinates
  x,y,w,h`` (CTP's form, = ``x,y,x+w,y+h``), ``keepcoordinates`` / ``ctpkeepcoordinates``
  (keep instead of blank), ``coordinates all`` (the whole frame), ``coordinates
  from:Sequence`` / ``keepcoordinates from:Sequence`` (each item's RegionLocationMinX0,
  MinY0, MaxX1, MaxY1, as in ``SequenceOfUltrasoundRegions``).

Where our reading departs from deid 0.4.13's engine (``deid/dicom/pixels/detect.py``,
``deid/dicom/filter.py``), it is to follow what the rule's text says:

- deid ANDs every line of a label and ignores a line's leading ``||``; we combine lines left
  to right with their own operator (``a + b || c`` = ``(a and b) or c``), each line a
  parenthesised group, as the labels' names and their CTP originals mean.
- ``equals Rows 600|768`` never holds in deid (it compares the whole text); we read ``|`` as
  alternatives, as in ``contains``.
- File meta attributes (group 0002, e.g. ``ImplementationVersionName``) are looked up in the
  file meta; deid looks only in the data set, so such rules never match there.
- A multi-valued attribute is matched as its values joined by ``\\`` (deid matches Python's
  ``repr`` of the list); ``from:`` regions read DICOM's RegionLocationMax as inclusive.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.datadict import RepeatersDictionary, dictionary_VR, tag_for_keyword
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

#: Condition words (deid's ``deid/config/standards.py`` ``filters``).
VALUE_ACTIONS = frozenset({"contains", "notcontains", "equals", "notequals"})
PRESENCE_ACTIONS = frozenset({"missing", "present", "empty"})
ACTIONS = VALUE_ACTIONS | PRESENCE_ACTIONS
#: Region keywords -> (keep, CTP x,y,w,h form).
REGION_WORDS: tuple[tuple[str, bool, bool], ...] = (
    ("ctpkeepcoordinates", True, True),
    ("ctpcoordinates", False, True),
    ("keepcoordinates", True, False),
    ("coordinates", False, False),
)
#: Sections whose lines are filters; the others (header, values, fields, labels) are skipped.
FILTER_SECTION = "filter"

_ACTION_WORD = "|".join(sorted(ACTIONS, key=len, reverse=True))
#: An operator that starts a new condition inside one line.
_INNER_SPLIT = re.compile(rf"\s*(\+|\|\|)\s*(?=(?:{_ACTION_WORD})\s)", re.IGNORECASE)
AND, OR = "and", "or"
_OPERATORS = {"+": AND, "||": OR}

Strings = tuple[str, ...] | None  # an attribute's values as text; None when absent


class RuleSyntaxError(ValueError):
    """A recipe line that cannot be read; names the file and line."""


#: Keywords of repeating groups (overlays 60xx, curves 50xx) -> their first group's tag.
_REPEATERS = {entry[4]: int(mask.replace("xx", "00"), 16)
              for mask, entry in RepeatersDictionary.items() if "xx" in mask[:4]}


def resolve_field(name: str) -> int | None:
    """The tag an attribute keyword or ``0xGGGGEEEE`` names, or None if unknown.

    A repeating-group keyword (``OverlayDescription``) names its first group (6000).
    """
    if name.lower().startswith("0x"):
        try:
            return int(name, 16)
        except ValueError:
            return None
    tag = tag_for_keyword(name)
    return tag if tag is not None else _REPEATERS.get(name)


@dataclass(frozen=True, eq=False)
class Condition:
    """One test on one attribute (``contains Modality US``). Unknown attributes never exist.

    Compared and hashed by identity (results are cached per object by condition, and that
    look-up is on every object's path); the parser shares one object per distinct condition.
    """

    action: str
    field: str
    value: str = ""
    tag: int | None = None
    _pattern: re.Pattern | None = field(default=None, init=False, repr=False)
    _alternatives: frozenset[str] = field(default=frozenset(), init=False, repr=False)

    def __post_init__(self) -> None:
        if self.tag is None:
            object.__setattr__(self, "tag", resolve_field(self.field))
        if self.action in ("contains", "notcontains"):
            try:
                pattern = re.compile(self.value, re.IGNORECASE)
            except re.error:  # not a valid expression: the text itself
                pattern = re.compile(re.escape(self.value), re.IGNORECASE)
            object.__setattr__(self, "_pattern", pattern)
        elif self.action in ("equals", "notequals"):
            alternatives = frozenset(v.strip().lower() for v in self.value.split("|"))
            object.__setattr__(self, "_alternatives", alternatives)

    def test(self, values: Strings) -> bool:
        """Whether the condition holds for an attribute whose values are ``values``."""
        action = self.action
        if action == "missing":
            return values is None
        if action == "present":
            return values is not None
        if action == "empty":
            return values is not None and not any(values)
        if values is None:
            return action in ("notcontains", "notequals")
        if action in ("contains", "notcontains"):
            found = self._pattern.search("\\".join(values)) is not None
            return found if action == "contains" else not found
        equal = any(v.lower() in self._alternatives for v in values)
        return equal if action == "equals" else not equal

    def __str__(self) -> str:
        return f"{self.action} {self.field} {self.value}".rstrip()


@dataclass(frozen=True)
class Line:
    """One line of a rule: conditions joined left to right; ``op`` joins it to the lines before."""

    op: str
    terms: tuple[tuple[str, Condition], ...]


@dataclass(frozen=True)
class Region:
    """A rectangle to blank (or keep): ``box`` = (xmin, ymin, xmax, ymax), maximum exclusive;
    ``whole`` for the whole frame; ``source`` for boxes read from a sequence's items."""

    keep: bool
    box: tuple[int, int, int, int] | None = None
    whole: bool = False
    source: str | None = None


@dataclass(frozen=True)
class Rule:
    """One LABEL: when its lines hold, the object belongs to ``section`` (and has ``regions``)."""

    recipe: str
    section: str
    label: str
    lines: tuple[Line, ...]
    regions: tuple[Region, ...]
    line_no: int
    _match: Callable = field(init=False, repr=False, compare=False)
    _conditions: tuple[Condition, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        match, conditions = _compile(self.lines)
        object.__setattr__(self, "_match", match)
        object.__setattr__(self, "_conditions", conditions)

    @property
    def name(self) -> str:
        return f"{self.recipe}:{self.label}"

    def matches(self, values: "Fields") -> bool:
        """Whether the rule holds; ``values.test(condition)`` answers one condition (``Fields``).

        Lines, and conditions within a line, fold left to right without precedence, a term
        evaluated only when it can change the result (``_compile``). A rule without conditions
        always holds (deid: "no filters but coordinates").
        """
        return self._match(values.test, self._conditions)

    def may_match(self, known: dict[int, Strings], results: dict[Condition, bool]) -> bool:
        """False only if the rule cannot hold whatever the attributes not in ``known`` are
        (unknown keywords count as known absent). Adds the conditions it could decide to
        ``results``."""
        def test(c: Condition):
            if c.tag is not None and c.tag not in known:
                return None
            if c not in results:
                results[c] = c.test(known[c.tag] if c.tag is not None else None)
            return results[c]
        return _fold3(self.lines, lambda line: _fold3(line.terms, test)) is not False


@dataclass(frozen=True)
class Recipe:
    """One recipe file: its filter rules in file order, and notes on what did not resolve."""

    name: str
    rules: tuple[Rule, ...]
    warnings: tuple[str, ...] = ()

    def labels(self) -> tuple[str, ...]:
        return tuple(r.label for r in self.rules)


def _compile(lines: tuple[Line, ...]) -> tuple[Callable, tuple[Condition, ...]]:
    """A rule's lines as one Python boolean expression over its conditions, built from the
    parsed structure only (operators and indexes, no rule text): ``a + b || c`` becomes
    ``((t(C[0]) and t(C[1])) or t(C[2]))``. Python's ``and``/``or`` short-circuit exactly as
    the left-to-right fold does, at a fraction of the cost of interpreting the lines per object.
    """
    conditions: list[Condition] = []

    def term(condition: Condition) -> str:
        conditions.append(condition)
        return f"t(C[{len(conditions) - 1}])"

    expression = None
    for line in lines:
        group = None
        for op, condition in line.terms:
            group = term(condition) if group is None else f"({group} {op} {term(condition)})"
        if group is not None:
            expression = group if expression is None else f"({expression} {line.op} {group})"
    source = f"lambda t, C: bool({expression or 'True'})"
    return eval(compile(source, "<pixel rule>", "eval"), {"__builtins__": {"bool": bool}}), \
        tuple(conditions)


def _fold3(items, test):
    """``_fold`` in three-valued (Kleene) logic: None means unknown."""
    result: bool | None = None
    first = True
    for item in items:
        op, x = (item.op, item) if isinstance(item, Line) else item
        if first:
            result, first = test(x), False
        elif op == AND:
            if result is not False:
                v = test(x)
                result = False if v is False else (None if result is None or v is None else True)
        elif result is not True:
            v = test(x)
            result = True if v is True else (None if result is None or v is None else False)
    return True if first else result


# --- attribute values as text --------------------------------------------------------------

def _as_strings(value) -> tuple[str, ...]:
    if value is None:
        return ("",)
    if isinstance(value, Sequence):
        return ("<sequence>",) if len(value) else ("",)
    if isinstance(value, (bytes, bytearray)):
        return ("<bytes>",) if value else ("",)
    if isinstance(value, (list, tuple, MultiValue)):
        return tuple(str(v).strip() for v in value) or ("",)
    return (str(value).strip(),)


#: VRs read straight from the raw bytes: text (multi-valued unless single-text) and integers.
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "PN", "SH", "TM", "UC",
                       "UI"})
_SINGLE_TEXT_VRS = frozenset({"LT", "ST", "UT", "UR"})
_INT_VRS = {"US": "H", "SS": "h", "UL": "I", "SL": "i"}


def _raw_strings(elem: RawDataElement) -> tuple[str, ...] | None:
    """The values of a raw element without pydicom's conversion (the costly part of a look-up),
    or None if its VR is not a plain text or integer one. Text is read as Latin-1: exact for
    ASCII, which is all the rules compare; the strings serve matching only."""
    vr = elem.VR
    if vr is None:
        try:
            vr = dictionary_VR(elem.tag)
        except KeyError:
            return None
    raw = elem.value
    if raw is None or raw == b"":
        return ("",)
    if vr in _TEXT_VRS or vr in _SINGLE_TEXT_VRS:
        text = raw.decode("latin-1")
        values = text.split("\\") if vr in _TEXT_VRS else [text]
        return tuple(v.strip(" \x00") for v in values)
    code = _INT_VRS.get(vr)
    if code is None:
        return None
    size = struct.calcsize(code)
    if len(raw) % size:
        return None
    order = "<" if elem.is_little_endian else ">"
    return tuple(str(v) for v in struct.unpack(f"{order}{len(raw) // size}{code}", raw))


def attribute_strings(ds: Dataset, tag: int) -> Strings:
    """The values of attribute ``tag`` in ``ds`` as stripped text (file meta for group 0002),
    ``None`` when absent, ``("",)`` when present and empty."""
    source = getattr(ds, "file_meta", None) if tag >> 16 == 0x0002 else ds
    if source is None:
        return None
    elem = source._dict.get(tag)  # the stored element, raw or converted, without conversion
    if elem is None:
        return None
    if not isinstance(elem, RawDataElement):
        return _as_strings(elem.value)
    values = _raw_strings(elem)
    return values if values is not None else _as_strings(source[tag].value)


def attribute_key(ds: Dataset, tags: tuple[int, ...]) -> tuple:
    """A hashable stand-in for the values of ``tags`` in ``ds``, cheaper than reading them:
    a raw element gives its undecoded bytes (equal bytes in one byte order read as equal
    values), a converted one its values, an absent one None. Equal keys mean equal
    :func:`attribute_strings`; unequal keys may still hold equal values (a cache miss only)."""
    stored = ds._dict
    meta = getattr(ds, "file_meta", None)
    meta_stored = meta._dict if meta is not None else {}
    parts = []
    for tag in tags:
        elem = (meta_stored if tag >> 16 == 0x0002 else stored).get(tag)
        if elem is None:
            parts.append(None)
        elif type(elem) is RawDataElement:
            parts.append((elem.value, elem.is_little_endian))
        else:
            parts.append(_as_strings(elem.value))
    return tuple(parts)


class Fields:
    """One dataset's attribute values as text, each read once: the matcher's input.

    ``fields(tag)`` is :func:`attribute_strings` cached per tag; ``fields(None)`` (an unknown
    keyword) is None, i.e. absent.
    """

    __slots__ = ("ds", "_cache", "_tests")

    def __init__(self, ds: Dataset):
        self.ds = ds
        self._cache: dict[int, Strings] = {}
        self._tests: dict[Condition, bool] = {}

    def know(self, results: dict[Condition, bool]) -> None:
        """Take results already known for this object (its device's, see ``may_match``)."""
        self._tests.update(results)

    def __call__(self, tag: int | None) -> Strings:
        if tag is None:
            return None
        try:
            return self._cache[tag]
        except KeyError:
            values = self._cache[tag] = attribute_strings(self.ds, tag)
            return values

    def test(self, condition: Condition) -> bool:
        """``condition`` on this dataset, evaluated once (rules share many conditions)."""
        tests = self._tests
        if condition in tests:
            return tests[condition]
        tag = condition.tag
        if tag is None:
            values = None
        elif tag in self._cache:
            values = self._cache[tag]
        else:
            values = self._cache[tag] = attribute_strings(self.ds, tag)
        result = tests[condition] = condition.test(values)
        return result


# --- regions -------------------------------------------------------------------------------

Box = tuple[int, int, int, int]


def region_boxes(region: Region, ds: Dataset, rows: int, columns: int) -> tuple[Box, ...]:
    """The boxes ``region`` names in a ``rows`` x ``columns`` frame, clipped to it.

    Boxes read from a sequence (``from:``) are DICOM region locations (maximum inclusive) and
    must lie in the frame: a region outside it means the metadata does not describe this pixel
    matrix, and ``ValueError`` says so rather than trusting a clipped guess.
    """
    if region.whole:
        return ((0, 0, columns, rows),)
    if region.box is not None:
        boxes = (region.box,)
    else:
        boxes = []
        items = ds.get(region.source)
        for item in items if isinstance(items, Sequence) else ():
            try:
                x0, y0 = int(item.RegionLocationMinX0), int(item.RegionLocationMinY0)
                x1, y1 = int(item.RegionLocationMaxX1), int(item.RegionLocationMaxY1)
            except (AttributeError, TypeError, ValueError):
                continue
            if not (0 <= x0 <= x1 < columns and 0 <= y0 <= y1 < rows):
                raise ValueError(f"{region.source} region ({x0},{y0})-({x1},{y1}) lies outside "
                                 f"the {columns}x{rows} frame")
            boxes.append((x0, y0, x1 + 1, y1 + 1))
    return tuple(
        (max(0, x0), max(0, y0), min(columns, x1), min(rows, y1))
        for x0, y0, x1, y1 in boxes if min(columns, x1) > max(0, x0) and min(rows, y1) > max(0, y0)
    )


# --- parser --------------------------------------------------------------------------------

def _strip_comment(text: str) -> str:
    return text.split("#", 1)[0].strip()


def _parse_region(text: str, keep: bool, ctp: bool, where: str) -> Region:
    text = text.strip()
    if text.lower() == "all":
        return Region(keep, whole=True)
    if text.lower().startswith("from:"):
        if ctp:
            raise RuleSyntaxError(f"{where}: 'from:' is not valid with ctp coordinates")
        return Region(keep, source=text[5:].strip())
    try:
        a, b, c, d = (int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise RuleSyntaxError(f"{where}: coordinates need four integers, got {text!r}") from None
    return Region(keep, box=(a, b, a + c, b + d) if ctp else (a, b, c, d))


def _parse_conditions(text: str, where: str, shared: dict[tuple[str, str, str], Condition]
                      ) -> tuple[tuple[str, Condition], ...]:
    def condition(action: str, name: str, value: str = "") -> Condition:
        key = (action, name, value)
        if key not in shared:
            shared[key] = Condition(action, name, value)
        return shared[key]

    parts = _INNER_SPLIT.split(text)
    terms = []
    for i in range(0, len(parts), 2):
        op = AND if i == 0 else _OPERATORS[parts[i - 1]]
        words = parts[i].strip().split(None, 1)
        action = words[0].lower() if words else ""
        rest = words[1].strip() if len(words) > 1 else ""
        if action in VALUE_ACTIONS:
            name_value = rest.split(None, 1)
            if len(name_value) != 2:
                raise RuleSyntaxError(f"{where}: {action} needs an attribute and a value")
            terms.append((op, condition(action, name_value[0], name_value[1].strip())))
        elif action in PRESENCE_ACTIONS and rest and len(rest.split()) == 1:
            terms.append((op, condition(action, rest)))
        else:
            raise RuleSyntaxError(f"{where}: not a condition: {parts[i].strip()!r}")
    return tuple(terms)


@dataclass
class _Draft:
    section: str
    label: str
    line_no: int
    lines: list[Line] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)


def parse(text: str, name: str) -> Recipe:
    """Read one recipe (its ``%filter`` sections; header actions are skipped) into rule data."""
    rules: list[Rule] = []
    warnings: list[str] = []
    section, subsection = None, None
    draft: _Draft | None = None
    shared: dict[tuple[str, str, str], Condition] = {}

    def close() -> None:
        nonlocal draft
        if draft is not None:
            rules.append(Rule(name, draft.section, draft.label, tuple(draft.lines),
                              tuple(draft.regions), draft.line_no))
            draft = None

    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"{name}:{no}"
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FORMAT"):
            if _strip_comment(line[6:]).lower() != "dicom":
                raise RuleSyntaxError(f"{where}: only FORMAT dicom is supported")
            continue
        if line.startswith("%"):
            close()
            words = _strip_comment(line[1:]).split(None, 1)
            section = words[0].lower() if words else ""
            subsection = words[1].strip() if len(words) > 1 else ""
            if section == FILTER_SECTION and not subsection:
                raise RuleSyntaxError(f"{where}: a %filter section needs a name")
            continue
        if section != FILTER_SECTION:
            continue
        if line.upper().startswith("LABEL"):
            close()
            draft = _Draft(subsection, _strip_comment(line[5:]), no)
            continue
        if draft is None:
            raise RuleSyntaxError(f"{where}: filter line outside a LABEL")
        lowered = line.lower()
        word = next((w for w in REGION_WORDS if lowered.startswith(w[0])), None)
        if word is not None:
            draft.regions.append(_parse_region(line[len(word[0]):], word[1], word[2], where))
            continue
        op = AND
        for token, operator in _OPERATORS.items():
            if line.startswith(token):
                op, line = operator, line[len(token):].strip()
                break
        if line.startswith("#"):
            continue
        terms = _parse_conditions(line, where, shared)
        for _, condition in terms:
            if condition.tag is None:
                warnings.append(f"{where}: unknown attribute {condition.field!r} in LABEL "
                                f"{draft.label!r}: treated as absent")
        draft.lines.append(Line(op, terms))
    close()
    return Recipe(name, tuple(rules), tuple(warnings))


def load(path: Path | str) -> Recipe:
    """Parse the recipe file at ``path``; its name is the file name (``deid.dicom``)."""
    path = Path(path)
    return parse(path.read_text(encoding="utf-8"), path.name)
