"""The burned-in pixel screen: blank a known layout, hold what no rule covers, pass the rest.

``screen(original, out)`` judges the received object ``original`` and, when a pixel rule gives
its layout, blanks those regions in the de-identified ``out`` in place. The rules are pydicom
deid's CTP-derived recipes (pinned, see :mod:`deid.pixel_rules`) plus our small
``pixel_rules.dicom``; which recipes apply, and which upstream rules we do not apply, are the
tables ``RECIPES`` and ``NOT_APPLIED`` below. The risk of a class no rule covers comes from
:mod:`deid.quarantine`. Order of the decision:

1. RecognizableVisualFeatures YES or an encapsulated document: hold (blanking cannot help).
2. No pixel data: pass.
3. A graylist rule with regions matches: blank them (``clean``), unless the regions of every
   matching recipe cover nothing or the whole frame, or do not fit the frame. Within one
   recipe the regions of its matching rules apply in file order to one mask (a later
   ``keepcoordinates`` keeps what an earlier rule blanked, as in deid: "blank all, keep the
   ultrasound regions"); across recipes the blanked areas add up.
4. A blacklist rule, or a graylist rule without regions, matches: hold, naming the rule.
5. The class is risky (:func:`deid.quarantine.class_risk`): hold. Otherwise pass.

Whitelist sections are not used: their rules clear objects by metadata (``BurnedInAnnotation
NO``, one scanner model), which must not clear a risky class.

Cost: per device (Modality / Manufacturer / ManufacturerModelName) the rules that can hold
are found once; the decision is a pure function of the attributes those rules and the risk
tables read, so it is remembered by their values, and the next image of a series costs those
attribute reads (raw bytes, no pydicom value conversion) and one look-up. Pixels are decoded
only to clean. Pure apart from reading the rule files once.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydicom import Dataset
from pydicom.pixels import get_decoder, pack_bits
from pydicom.uid import ExplicitVRLittleEndian

from deid import pixel_rules
from deid.options import METHOD_CODES
from deid.pixel_rules import Fields, Recipe, Rule, attribute_key
from deid.quarantine import RISK_READS, class_risk, uncleanable_reason

#: The pinned pydicom deid release whose recipe files the Makefile extracts (keep equal to the
#: Makefile's DEID_VERSION).
UPSTREAM_VERSION = "0.4.13"
UPSTREAM = f"pydicom deid {UPSTREAM_VERSION}"
LOCAL = "PACS-MDC"
#: Where the extracted files are; PACS_PIXEL_RULES_DIR overrides (an installed edge).
DEFAULT_RULES_DIR = (Path(__file__).resolve().parents[1] / ".cache" / "pydicom-deid"
                     / UPSTREAM_VERSION)
RULES_DIR_ENV = "PACS_PIXEL_RULES_DIR"
LOCAL_RECIPE = Path(__file__).with_name("pixel_rules.dicom")

PASS, CLEAN, HOLD = "pass", "clean", "hold"
GRAYLIST, BLACKLIST = "graylist", "blacklist"
CLEAN_PIXEL_DATA = METHOD_CODES["clean_pixel_data"]  # ("113101", "Clean Pixel Data Option")


@dataclass(frozen=True)
class RecipeUse:
    """One recipe file the screen applies: where it comes from, to which modalities, why."""

    file: str
    origin: str
    modalities: frozenset[str] | None  # None: every modality
    why: str


RECIPES: tuple[RecipeUse, ...] = (
    RecipeUse("deid.dicom", UPSTREAM, None,
              "CTP-derived device layouts (graylist) and flags (blacklist)"),
    RecipeUse("deid.dicom.ultrasound", UPSTREAM, frozenset({"US"}),
              "blank all but SequenceOfUltrasoundRegions; written for ultrasound only"),
    RecipeUse(LOCAL_RECIPE.name, LOCAL, None, "our additions, each explained in the file"),
)
# deid.dicom.xray.chest is not used: it selects chest radiographs for a research cohort (drops
# every RF/XA and non-chest view) and says nothing about burned-in text.

#: Upstream rules the screen does not apply, (file, LABEL) -> why. Each names exactly one rule.
NOT_APPLIED: dict[tuple[str, str], str] = {
    ("deid.dicom", "Stanford CT GE Medical Systems LightSpeed VCT"):
        "a site's flag on every CT of one scanner model; that model's dose report and "
        "localizer layouts have rules of their own",
    ("deid.dicom", "CT Siemens SOMATOM Catch-all"):
        "a site's flag on every CT of one scanner model; that model's layouts have rules of "
        "their own",
    ("deid.dicom", "Stanford Blacklist Missing ImageType"):
        "holds every object without ImageType, which many IODs do not require (RT Dose, SEG, "
        "documents) and which says nothing about burned-in text; risky classes are held anyway",
    ("deid.dicom", "Stanford Blacklist secondary or derived catchall"):
        "holds every DERIVED or SECONDARY CT/MR (reformats, MIPs, ADC maps), computed from "
        "pixels without text; screen saves and captures are held by the class tables",
}

#: Attributes that identify a device: the rules that can hold for a device are cached by them.
GATE_TAGS = (0x00080060, 0x00080070, 0x00081090)  # Modality, Manufacturer, ManufacturerModelName
FRAME_TAGS = (0x00280010, 0x00280011)  # Rows, Columns
_DEVICE_CACHE_MAX = 4096
_VERDICT_CACHE_MAX = 512
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # PixelData, FloatPixelData, DoubleFloat...


class RuleFilesMissing(FileNotFoundError):
    """The pinned upstream recipe files are not where the screen looks for them."""


@dataclass(frozen=True)
class PixelVerdict:
    """The screen's answer for one object.

    ``action``: ``"pass"``, ``"clean"`` (regions blanked in ``out``) or ``"hold"`` (keep at the
    edge for review). ``reason`` says why in words safe to log (rule labels, modality and SOP
    class names, never attribute values that could identify anyone). ``rules`` names the
    deciding rules as ``file:LABEL``. ``blanked_pixels`` counts blanked pixels per frame.
    ``method_code`` is the CID 7050 code to record when cleaned (113101 Clean Pixel Data).
    """

    action: str
    reason: str
    rules: tuple[str, ...] = ()
    blanked_pixels: int = 0
    method_code: tuple[str, str] | None = None

    @property
    def held(self) -> bool:
        return self.action == HOLD

    @property
    def cleaned(self) -> bool:
        return self.action == CLEAN

    @property
    def hold_reason(self) -> str | None:
        """The reason when held, else None: what ``DeidResult.quarantine_reason`` takes."""
        return self.reason if self.action == HOLD else None


class RuleSet:
    """The rules the screen applies, in recipe order, with a per-device cache (``_Device``)."""

    def __init__(self, recipes: list[tuple[RecipeUse, Recipe]],
                 not_applied: dict[tuple[str, str], str] | None = None):
        not_applied = NOT_APPLIED if not_applied is None else not_applied
        self.recipes = tuple(recipes)
        skipped = {key: 0 for key in not_applied}
        rules: list[tuple[Rule, frozenset[str] | None]] = []
        for use, recipe in self.recipes:
            for rule in recipe.rules:
                key = (use.file, rule.label)
                if key in skipped:
                    skipped[key] += 1
                elif rule.section in (GRAYLIST, BLACKLIST):
                    rules.append((rule, use.modalities))
        wrong = sorted(k for k, n in skipped.items() if n != 1)
        if wrong:
            raise ValueError(f"NOT_APPLIED entries that do not name exactly one rule: {wrong}")
        self.rules = tuple(rules)
        self._devices: dict[tuple, _Device] = {}
        self._lock = threading.Lock()

    def device(self, fields: Fields) -> "_Device":
        """What the screen needs for this object's device (Modality / Manufacturer / model):
        the rules that can hold for it and the results of their conditions on those three
        attributes, computed once per device."""
        key = attribute_key(fields.ds, GATE_TAGS)
        device = self._devices.get(key)
        if device is None:
            known = {tag: fields(tag) for tag in GATE_TAGS}
            modality = known[GATE_TAGS[0]][0].upper() if known[GATE_TAGS[0]] else ""
            results: dict = {}
            found = tuple(rule for rule, scope in self.rules
                          if (scope is None or modality in scope)
                          and rule.may_match(known, results))
            device = _Device(found, results, _reads(found))
            with self._lock:
                if len(self._devices) >= _DEVICE_CACHE_MAX:
                    self._devices.clear()
                self._devices[key] = device
        return device


def _reads(rules: tuple[Rule, ...]) -> tuple[int, ...] | None:
    """Every attribute the decision reads for an object of a device with these candidate
    rules, or None when it also reads sequence items (regions ``from:``), which a key of
    attribute values cannot hold."""
    if any(region.source for rule in rules for region in rule.regions):
        return None
    tags = {*GATE_TAGS, *RISK_READS, *FRAME_TAGS}
    tags.update(c.tag for rule in rules for line in rule.lines for _, c in line.terms
                if c.tag is not None)
    return tuple(sorted(tags))


@dataclass
class _Device:
    """One device's candidate rules, their conditions it decides, and the verdicts seen so far
    by the values of every attribute the decision reads (the decision is a pure function of
    them, so objects of a series cost a few attribute reads and one look-up)."""

    rules: tuple[Rule, ...]
    known: dict
    reads: tuple[int, ...] | None
    verdicts: dict = field(default_factory=dict)

    def remember(self, key: tuple, decision: tuple) -> None:
        if len(self.verdicts) >= _VERDICT_CACHE_MAX:
            self.verdicts.clear()
        self.verdicts[key] = decision


def rules_dir() -> Path:
    return Path(os.environ.get(RULES_DIR_ENV) or DEFAULT_RULES_DIR)


def load_rules(directory: Path | str | None = None) -> RuleSet:
    """Read the recipe files of ``RECIPES`` (upstream ones from ``directory``, default
    :func:`rules_dir`) into a :class:`RuleSet`. Raises :class:`RuleFilesMissing` with the fix."""
    directory = Path(directory) if directory is not None else rules_dir()
    loaded = []
    for use in RECIPES:
        path = LOCAL_RECIPE if use.origin == LOCAL else directory / use.file
        if not path.is_file():
            raise RuleFilesMissing(
                f"{path} is missing: run `make venv` (extracts {UPSTREAM}'s recipe files) or "
                f"set {RULES_DIR_ENV} to the folder that holds them")
        loaded.append((use, pixel_rules.load(path)))
    return RuleSet(loaded)


@lru_cache(maxsize=1)
def default_rules() -> RuleSet:
    """The rule set read once per process (call at startup to fail early if files are missing)."""
    return load_rules()


# --- the decision (metadata only) ------------------------------------------------------------

def _has_pixels(ds: Dataset) -> bool:
    stored = ds._dict  # membership without pydicom's tag conversion
    return any(tag in stored for tag in PIXEL_TAGS)


def _frame_size(fields: Fields) -> tuple[int, int] | None:
    try:
        return int(fields(0x00280010)[0]), int(fields(0x00280011)[0])  # Rows, Columns
    except (TypeError, ValueError, IndexError):
        return None


def _recipe_mask(ds: Dataset, rules: list[Rule], rows: int, columns: int,
                 notes: list[str]) -> tuple[np.ndarray | None, list[Rule]]:
    """One recipe's blank mask from its matching layout rules, or None if it blanks nothing
    or everything (not a layout), with the rules that contributed."""
    blank = np.zeros((rows, columns), dtype=bool)
    used = []
    for rule in rules:
        try:
            ops = [(region.keep, box) for region in rule.regions
                   for box in pixel_rules.region_boxes(region, ds, rows, columns)]
        except ValueError as e:
            notes.append(f"{rule.name} not applied: {e}")
            continue
        for keep, (x0, y0, x1, y1) in ops:
            blank[y0:y1, x0:x1] = not keep
        used.append(rule)
    if not used:
        return None, []
    if blank.all():
        notes.append(f"{' + '.join(r.name for r in used)} would blank the whole frame")
        return None, []
    if not blank.any():
        notes.append(f"{' + '.join(r.name for r in used)} would blank nothing")
        return None, []
    return blank, used


def _layout(ds: Dataset, fields: Fields, layout_rules: list[Rule],
            notes: list[str]) -> tuple[np.ndarray | None, list[Rule]]:
    size = _frame_size(fields)
    if size is None:
        notes.append("no Rows/Columns to place the regions")
        return None, []
    mask, used = None, []
    for recipe in dict.fromkeys(r.recipe for r in layout_rules):
        part, part_used = _recipe_mask(ds, [r for r in layout_rules if r.recipe == recipe],
                                       *size, notes)
        if part is not None:
            mask = part if mask is None else mask | part
            used += part_used
    return mask, used


def _decide(ds: Dataset, rules: RuleSet) -> tuple[PixelVerdict, np.ndarray | None]:
    """The verdict (and the blank mask when cleaning) for ``ds``, remembered per device by the
    values of every attribute it depends on."""
    fields = Fields(ds)
    device = rules.device(fields)
    key = None
    if device.reads is not None:
        stored = ds._dict  # membership without pydicom's tag conversion: this runs per object
        key = (attribute_key(ds, device.reads), tuple(t in stored for t in PIXEL_TAGS))
        decision = device.verdicts.get(key)
        if decision is not None:
            return decision
    fields.know(device.known)
    decision = _evaluate(ds, fields, device.rules)
    if decision[1] is not None:
        decision[1].setflags(write=False)  # shared by every object with the same key
    if key is not None:
        device.remember(key, decision)
    return decision


def _evaluate(ds: Dataset, fields: Fields, candidates: tuple[Rule, ...]
              ) -> tuple[PixelVerdict, np.ndarray | None]:
    reason = uncleanable_reason(fields)
    if reason:
        return PixelVerdict(HOLD, reason), None
    if not _has_pixels(ds):
        return PixelVerdict(PASS, "no pixel data"), None
    hits = [rule for rule in candidates if rule.matches(fields)]
    notes: list[str] = []
    layout_rules = [r for r in hits if r.section == GRAYLIST and r.regions]
    if layout_rules:
        mask, used = _layout(ds, fields, layout_rules, notes)
        if mask is not None:
            names = tuple(r.name for r in used)
            return PixelVerdict(CLEAN, f"known layout: {', '.join(names)}", names,
                                int(mask.sum()), CLEAN_PIXEL_DATA), mask
    flags = ([r for r in hits if r.section == BLACKLIST]
             or [r for r in hits if r.section == GRAYLIST and not r.regions])
    risk = class_risk(fields)
    suffix = f" ({'; '.join(notes)})" if notes else ""
    if flags:
        names = tuple(r.name for r in flags)
        why = f"pixel rule {names[0]} ({flags[0].section})" + (f"; {risk}" if risk else "")
        return PixelVerdict(HOLD, why + suffix, names), None
    if risk:
        return PixelVerdict(HOLD, f"{risk}; no pixel rule covers its layout{suffix}"), None
    return PixelVerdict(PASS, f"low-risk class, no pixel rule applies{suffix}"), None


def assess(ds: Dataset, *, rules: RuleSet | None = None) -> PixelVerdict:
    """The screen's decision for ``ds`` from metadata only; pixels are neither read nor changed
    (``clean`` means a rule would blank regions)."""
    return _decide(ds, rules or default_rules())[0]


# --- cleaning ------------------------------------------------------------------------------

def _blank_pixels(out: Dataset, mask: np.ndarray) -> None:
    """Zero ``mask`` in every frame of ``out``'s pixel data, written back native.

    Compressed data are decoded (colour as RGB) and written as Explicit VR Little Endian; native
    data keep their transfer syntax and byte order. Everything is computed before ``out`` is
    touched, so a failure leaves it as it was.
    """
    meta = getattr(out, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if syntax is None:
        raise ValueError("no transfer syntax in the file meta")
    if 0x7FE00010 not in out:
        raise ValueError("float pixel data is not cleaned")
    arr, info = get_decoder(syntax).as_array(out, as_rgb=True)
    rows, columns = int(info["rows"]), int(info["columns"])
    if (rows, columns) != mask.shape:
        raise ValueError(f"pixel matrix {columns}x{rows} differs from the header's")
    frames, samples = int(info.get("number_of_frames") or 1), int(info["samples_per_pixel"])
    arr = np.array(arr, copy=True, order="C")
    arr.reshape(frames, rows, columns, samples)[:, mask] = 0
    bits = int(info["bits_allocated"])
    if bits == 1:
        data = pack_bits(arr.ravel())
    else:
        order = "<" if syntax.is_encapsulated or syntax.is_little_endian else ">"
        data = arr.astype(arr.dtype.newbyteorder(order), copy=False).tobytes()
    if len(data) % 2:
        data += b"\x00"

    out.add_new(0x7FE00010, "OB" if bits <= 8 else "OW", data)
    for tag in (0x7FE00001, 0x7FE00002, 0x7FE00003):  # offset tables of encapsulated data
        out.pop(tag, None)
    out.PhotometricInterpretation = info["photometric_interpretation"]
    if samples > 1:
        out.PlanarConfiguration = 0
    out.BitsStored = int(info["bits_stored"])
    out.HighBit = int(info["bits_stored"]) - 1
    out.PixelRepresentation = int(info["pixel_representation"])
    if syntax.is_encapsulated:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian


def screen(original: Dataset, out: Dataset, *, rules: RuleSet | None = None) -> PixelVerdict:
    """Screen one object for burned-in PHI; on ``clean``, blank the regions in ``out`` in place.

    ``original`` is the object as received (its metadata decides), ``out`` its de-identified
    copy (its pixels are cleaned: every frame, decoded if compressed, then written native with
    ``BurnedInAnnotation = NO``). A ``clean`` verdict carries ``method_code`` (113101) for the
    caller to record. If the pixels cannot be decoded or rewritten, the object is held and
    ``out`` is left unchanged.
    """
    verdict, mask = _decide(original, rules or default_rules())
    if verdict.action != CLEAN:
        return verdict
    try:
        _blank_pixels(out, mask)
    except Exception as e:  # noqa: BLE001 - any decoder failure means: a person looks at it
        return PixelVerdict(HOLD, f"pixel data could not be cleaned ({type(e).__name__}: {e}); "
                                  f"{verdict.reason}", verdict.rules)
    out.BurnedInAnnotation = "NO"
    return verdict
