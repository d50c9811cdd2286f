"""Hospital side: the PHI screen every exam text passes before a visit leaves the hospital.

Two layers, one result (``ScreenResult``: the text to send and what was found):

1. the patient's own identifiers, from the HIS record (``patient_findings``): first name and
   surname in every Polish case form ("Anny Kowalskiej" for Anna Kowalska), national id, MRN,
   phone and national id also with any spacing, street with and without "ul.", postal code,
   birth date in four notations; whole-word, case-insensitive;
2. the general screen shared with the MDC gateway (``hl7_gateway.text_phi``): national ids with
   checksum, other id numbers, phones, e-mail, postal codes, dates, addresses, ages of 90+ and
   person names from word lists with context (relatives, staff, other patients).

The policy (``Settings.hl7_phi_policy``) decides what happens to a text with findings:
``redact`` replaces each by a typed placeholder (``[NAME]``, ``[NATIONAL_ID]``, ...), ``refuse``
raises ``PhiRefused`` and the visit is not sent (``sync_plan.record_export`` holds it in the link
table as rejected, with the categories, never the values). Exceptions name categories and
offsets only, as they reach logs and the terminal.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from hl7_gateway.hospital.link_table import HELD_PREFIX
from hl7_gateway.text_phi import Finding, TextScreen, default_screen, inflect, merge, redact

Policy = Literal["redact", "refuse"]

# patient field -> category of a match; the order of the record's PHI fields
TEXT_IDENTIFIER_FIELDS = {
    "first_name": "NAME", "last_name": "NAME", "national_id": "NATIONAL_ID", "mrn": "ID",
    "phone": "PHONE", "street": "ADDRESS", "postal_code": "POSTAL_CODE", "birth_date": "DATE",
}
# field -> how many trailing digits to match with any separators (phone: drop the country code)
_DIGIT_FIELDS = {"phone": 9, "national_id": 11}
_STREET_PREFIX = re.compile(r"^(ul\.|al\.|pl\.|os\.)\s*", re.IGNORECASE)


class PhiRefused(Exception):
    """Policy "refuse": a text of this visit holds PHI, so the visit is not sent."""

    def __init__(self, findings: list[Finding], where: str = "exam text"):
        self.findings = findings
        self.categories = sorted({f.category for f in findings})
        super().__init__(f"{HELD_PREFIX}: {where} holds {', '.join(self.categories)} "
                         f"({len(findings)} finding(s)); not sent (policy refuse)")


@dataclass(frozen=True)
class ScreenResult:
    text: str
    findings: tuple[Finding, ...]


def _birth_date_variants(iso: str) -> list[str]:
    born = date.fromisoformat(iso)
    return [iso, born.strftime("%d.%m.%Y"), born.strftime("%d/%m/%Y"), born.strftime("%d-%m-%Y")]


def _terms(patient: dict) -> list[tuple[str, str]]:
    """(regex, category) for each of the patient's identifiers, longest literal first."""
    terms: list[tuple[str, str]] = []
    for field, category in TEXT_IDENTIFIER_FIELDS.items():
        value = str(patient.get(field) or "").strip()
        if not value:
            continue
        if field == "birth_date":
            values = _birth_date_variants(value)
        elif field in ("first_name", "last_name"):
            values = [value, *inflect(value)]   # 'Kowalska' -> 'kowalskiej', 'kowalską', ...
        elif field == "street":                  # also the bare name, 'Lipowa 12' without 'ul.'
            values = [value, _STREET_PREFIX.sub("", value)]
        else:
            values = [value]
        terms += [(re.escape(v), category) for v in values if v]
    terms.sort(key=lambda t: len(t[0]), reverse=True)
    for field, tail in _DIGIT_FIELDS.items():   # "601-234-567", "601234567", "570304 12345"
        digits = re.sub(r"\D", "", str(patient.get(field) or ""))[-tail:]
        if len(digits) >= 6:
            terms.append((r"[\s\-.]?".join(digits), TEXT_IDENTIFIER_FIELDS[field]))
    return terms


def patient_findings(text: str, patient: dict) -> list[Finding]:
    """Occurrences of the patient's own identifiers in ``text`` (whole word, any case)."""
    found = []
    for regex, category in _terms(patient):
        for m in re.finditer(r"(?<!\w)(?:" + regex + r")(?!\w)", text, re.IGNORECASE):
            found.append(Finding(m.start(), m.end(), category, "patient_own"))
    return found


def scrub_text(text: str, patient: dict) -> str:
    """Only the patient's own identifiers replaced (typed placeholders); the full screen is
    ``PhiScreen.apply``."""
    return redact(text, merge(patient_findings(text, patient))) if text else text


class PhiScreen:
    """The hospital's screen under one policy; ``apply`` per exam text of a record."""

    def __init__(self, policy: Policy = "redact", screen: TextScreen | None = None):
        if policy not in ("redact", "refuse"):
            raise ValueError(f"unknown PHI policy {policy!r}")
        self.policy = policy
        self.screen = screen or default_screen()

    def find(self, text: str, patient: dict) -> list[Finding]:
        """Everything the screen flags in ``text``: patient identifiers and general patterns."""
        if not text:
            return []
        names = {f for k in ("first_name", "last_name") for f in inflect(patient.get(k) or "")}
        screen = self.screen.with_names(names) if names else self.screen
        return screen.find(text, extra=patient_findings(text, patient))

    def apply(self, text: str, patient: dict, where: str = "exam text") -> ScreenResult:
        """The text to send (redacted), or ``PhiRefused`` under the refuse policy."""
        findings = self.find(text, patient)
        if findings and self.policy == "refuse":
            raise PhiRefused(findings, where)
        return ScreenResult(redact(text, findings) if findings else text, tuple(findings))
