"""Profile options chosen for the MDC, and the DCM codes that declare them (PS3.16 CID 7050)."""

from __future__ import annotations

from dataclasses import dataclass

#: Descriptors the "Clean Descriptors" option keeps verbatim: the portal searches on them and
#: sites are asked not to type identifiers there. Every other descriptor gets its basic action.
DEFAULT_KEPT_DESCRIPTORS: frozenset[str] = frozenset({"StudyDescription", "SeriesDescription"})

#: Private (creator, element byte) pairs kept under "Retain Safe Private"; empty by default.
DEFAULT_SAFE_PRIVATE: frozenset[tuple[str, int]] = frozenset()


@dataclass(frozen=True)
class DeidOptions:
    """Which PS3.15 options apply on top of the Basic Profile.

    Frozen and hashable so the per-option action plan can be cached.
    """

    retain_longitudinal_modified_dates: bool = True
    retain_patient_characteristics: bool = True
    clean_descriptors: bool = True
    kept_descriptors: frozenset[str] = DEFAULT_KEPT_DESCRIPTORS
    safe_private: frozenset[tuple[str, int]] = DEFAULT_SAFE_PRIVATE
    method_text: str = "PACS-MDC PS3.15 E.1 Basic Profile"

    def option_columns(self) -> tuple[str, ...]:
        """Table E.1-1 option columns in force, in precedence order (first non-empty wins)."""
        chosen = (
            ("rtn_patient_chars", self.retain_patient_characteristics),
            ("rtn_long_modif_dates", self.retain_longitudinal_modified_dates),
            ("clean_desc", self.clean_descriptors),
        )
        return tuple(col for col, on in chosen if on)

    def method_codes(self) -> list[tuple[str, str]]:
        """(code value, code meaning) of the profile and each option applied."""
        flags = {
            "basic": True,
            "rtn_long_modif_dates": self.retain_longitudinal_modified_dates,
            "rtn_patient_chars": self.retain_patient_characteristics,
            "clean_desc": self.clean_descriptors,
            "rtn_safe_private": bool(self.safe_private),
        }
        return [METHOD_CODES[name] for name, on in flags.items() if on]


#: DCM codes of CID 7050 "De-identification Method".
METHOD_CODES: dict[str, tuple[str, str]] = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean_desc": ("113105", "Clean Descriptors Option"),
    "rtn_long_modif_dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "rtn_patient_chars": ("113108", "Retain Patient Characteristics Option"),
    "rtn_safe_private": ("113111", "Retain Safe Private Option"),
}
