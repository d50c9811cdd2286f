"""The PS3.15 Annex E options applied on top of the Basic Profile, and the DCM codes (PS3.16
CID 7050) that declare them in each object's DeidentificationMethodCodeSequence.

One row of ``OPTIONS`` per option: the ``DeidOptions`` field that turns it on, the Table E.1-1
column it governs (``deid/profile_table.csv``) and its code. The order of ``OPTIONS`` is the
precedence of the columns when several options have a cell for the same attribute (the first
cell that resolves to an action wins, see ``deid.policy.resolve_row``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Private (creator, element byte) pairs kept under "Retain Safe Private"; empty by default.
DEFAULT_SAFE_PRIVATE: frozenset[tuple[str, int]] = frozenset()


@dataclass(frozen=True)
class Option:
    """One Annex E option: its switch, the Table E.1-1 column it governs, its CID 7050 code."""

    name: str            # DeidOptions field
    column: str | None   # Table E.1-1 option column; None: governs no column
    code: str
    meaning: str


OPTIONS: tuple[Option, ...] = (
    Option("retain_patient_characteristics", "rtn_patient_chars", "113108",
           "Retain Patient Characteristics Option"),
    Option("retain_longitudinal_full_dates", "rtn_long_full_dates", "113106",
           "Retain Longitudinal Temporal Information Full Dates Option"),
    Option("retain_longitudinal_modified_dates", "rtn_long_modif_dates", "113107",
           "Retain Longitudinal Temporal Information Modified Dates Option"),
    Option("retain_device_identity", "rtn_device_id", "113109", "Retain Device Identity Option"),
    Option("retain_institution_identity", "rtn_institution_id", "113112",
           "Retain Institution Identity Option"),
    Option("retain_uids", "rtn_uids", "113110", "Retain UIDs Option"),
    Option("clean_descriptors", "clean_desc", "113105", "Clean Descriptors Option"),
    Option("clean_structured_content", "clean_struct_content", "113104",
           "Clean Structured Content Option"),
    Option("clean_graphics", "clean_graphics", "113103", "Clean Graphics Option"),
    Option("safe_private", None, "113111", "Retain Safe Private Option"),
)

#: Every CID 7050 code by name: the profile, the options above, and the pixel options another
#: stage applies per object (``deidentify(..., extra_method_codes=...)``).
METHOD_CODES: dict[str, tuple[str, str]] = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean_pixel_data": ("113101", "Clean Pixel Data Option"),
    "clean_visual_features": ("113102", "Clean Recognizable Visual Features Option"),
    **{o.column or o.name: (o.code, o.meaning) for o in OPTIONS},
}


@dataclass(frozen=True)
class DeidOptions:
    """Which PS3.15 options apply on top of the Basic Profile (defaults: the MDC's profile).

    Frozen and hashable, so the action plan of each options value is computed once and found
    again with one dict probe per object (``deid.policy.plan_for``). The two longitudinal
    options exclude each other; neither on means dates are removed or emptied as the Basic
    Profile says.
    """

    retain_longitudinal_full_dates: bool = False
    retain_longitudinal_modified_dates: bool = True
    retain_patient_characteristics: bool = True
    retain_device_identity: bool = False
    retain_institution_identity: bool = False
    retain_uids: bool = False
    clean_descriptors: bool = True
    clean_structured_content: bool = True
    clean_graphics: bool = False
    safe_private: frozenset[tuple[str, int]] = DEFAULT_SAFE_PRIVATE
    method_text: str = "PACS-MDC PS3.15 E.1 Basic Profile"

    def __post_init__(self) -> None:
        if self.retain_longitudinal_full_dates and self.retain_longitudinal_modified_dates:
            raise ValueError("retain_longitudinal_full_dates and "
                             "retain_longitudinal_modified_dates exclude each other")

    def applied(self) -> tuple[Option, ...]:
        """The options in force, in precedence order."""
        return tuple(o for o in OPTIONS if getattr(self, o.name))

    def option_columns(self) -> tuple[str, ...]:
        """Table E.1-1 option columns in force, in precedence order."""
        return tuple(o.column for o in self.applied() if o.column)

    def method_codes(self) -> list[tuple[str, str]]:
        """(code value, code meaning) of the profile and of each option applied, by code."""
        return [METHOD_CODES["basic"], *sorted((o.code, o.meaning) for o in self.applied())]

    @property
    def temporal_information(self) -> str:
        """LongitudinalTemporalInformationModified (0028,0303) for these options."""
        if self.retain_longitudinal_modified_dates:
            return "MODIFIED"
        return "UNMODIFIED" if self.retain_longitudinal_full_dates else "REMOVED"
