"""Per-source de-identification options: the profiles in ``pacs.toml`` -> ``DeidOptions``.

A profile is a table of PS3.15 Annex E options (the ``DeidOptions`` fields named in
``deid.options.OPTIONS``), each ``true`` or ``false``; ``safe_private`` is a list of
``[private creator, element byte]`` pairs. ``deid_profile`` overrides the built-in defaults for
every source; ``deid_profiles_by_ae`` overrides that default for the modalities calling with an
AE title::

    deid_date_policy = "shift"               # one policy for DICOM and visits

    [deid_profile]                           # every source
    clean_structured_content = true

    [deid_profiles_by_ae.CT_ROOM_1]          # calling AE title CT_ROOM_1
    retain_device_identity = true
    safe_private = [["GEMS_ACQU_01", "0x01"]]

The two longitudinal options follow ``deid_date_policy`` ("shift" -> modified dates, "retain"
-> full dates): the HL7 side shifts visits by the same policy, so a source keeping full dates
while visits are shifted (or the reverse) would let a study and its visit reveal the offset.
A profile may only turn its policy's option off (dates then removed as the Basic Profile says).

Profiles are checked and turned into options once, when the edge starts (a mistake stops the
start with the key at fault); per object the edge only looks the calling AE up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from deid.options import OPTIONS, DeidOptions

FULL_DATES = "retain_longitudinal_full_dates"
MODIFIED_DATES = "retain_longitudinal_modified_dates"
#: deid_date_policy -> the longitudinal options it sets.
DATE_POLICIES: dict[str, dict[str, bool]] = {
    "shift": {MODIFIED_DATES: True, FULL_DATES: False},
    "retain": {MODIFIED_DATES: False, FULL_DATES: True},
}
PROFILE_KEYS: frozenset[str] = frozenset(o.name for o in OPTIONS)
_DEFAULTS: dict[str, object] = {name: getattr(DeidOptions(), name) for name in PROFILE_KEYS}


class ProfileError(ValueError):
    """A de-identification profile in the settings that cannot be used (names the key)."""


def _safe_private(where: str, value) -> frozenset[tuple[str, int]]:
    pairs = set()
    for pair in value if isinstance(value, (list, tuple)) else [value]:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ProfileError(f"{where}.safe_private: each entry is [creator, element byte]")
        creator, element = pair
        try:
            byte = element if isinstance(element, int) else int(str(element), 16)
        except ValueError:
            raise ProfileError(f"{where}.safe_private: element byte {element!r} is not hex") from None
        if not 0x10 <= byte <= 0xFF:
            raise ProfileError(f"{where}.safe_private: element byte must be 0x10..0xFF")
        pairs.add((creator.strip(), byte))
    return frozenset(pairs)


def options_from(profile: Mapping, date_policy: str = "shift", where: str = "deid_profile"
                 ) -> DeidOptions:
    """The options of one profile under ``date_policy`` (built-in defaults for keys not set)."""
    if date_policy not in DATE_POLICIES:
        raise ProfileError(f"deid_date_policy must be one of {sorted(DATE_POLICIES)}")
    policy_dates = DATE_POLICIES[date_policy]
    values: dict[str, object] = {**_DEFAULTS, **policy_dates}
    for key, value in profile.items():
        if key not in PROFILE_KEYS:
            raise ProfileError(f"{where}.{key}: unknown option; known: {', '.join(sorted(PROFILE_KEYS))}")
        if key == "safe_private":
            value = _safe_private(where, value)
        elif not isinstance(value, bool):
            raise ProfileError(f"{where}.{key}: true or false")
        elif key in policy_dates and value and not policy_dates[key]:
            raise ProfileError(f"{where}.{key} = true contradicts deid_date_policy = "
                               f"{date_policy!r} (visits follow that policy; a profile may only "
                               "turn dates off)")
        values[key] = value
    return _options(tuple(sorted(values.items())))


@lru_cache(maxsize=256)
def _options(items: tuple) -> DeidOptions:
    """One DeidOptions object per distinct profile, so equal profiles share one action plan."""
    return DeidOptions(**dict(items))


@dataclass(frozen=True)
class DeidProfiles:
    """The options for every calling AE: ``by_ae`` for the configured ones, else ``default``."""

    default: DeidOptions = field(default_factory=DeidOptions)
    by_ae: Mapping[str, DeidOptions] = field(default_factory=dict)

    def for_ae(self, calling_ae: str) -> DeidOptions:
        """The options for objects from ``calling_ae`` (AE titles compare without padding)."""
        if not self.by_ae or not calling_ae:
            return self.default
        return self.by_ae.get(calling_ae.strip(), self.default)

    def describe(self) -> str:
        """'default: 113100,113105,... ; CT1: ...' - the method codes per profile, for the log."""
        def codes(o: DeidOptions) -> str:
            return ",".join(code for code, _ in o.method_codes())
        return "; ".join([f"default: {codes(self.default)}",
                          *(f"{ae}: {codes(o)}" for ae, o in sorted(self.by_ae.items()))])


def build(default: Mapping, by_ae: Mapping[str, Mapping], date_policy: str = "shift"
          ) -> DeidProfiles:
    """Profiles from the settings' values; raises ProfileError naming the key at fault."""
    base = options_from(default, date_policy)
    per_ae = {}
    for ae, overrides in by_ae.items():
        if not isinstance(overrides, Mapping):
            raise ProfileError(f"deid_profiles_by_ae.{ae}: a table of options")
        title = ae.strip()
        if not title or len(title) > 16:
            raise ProfileError(f"deid_profiles_by_ae.{ae}: not an AE title (1-16 characters)")
        per_ae[title] = options_from({**default, **overrides}, date_policy,
                                     f"deid_profiles_by_ae.{title}")
    return DeidProfiles(base, per_ae)


def from_settings(settings) -> DeidProfiles:
    """The profiles of a ``pacs_hdfs.settings.Settings``."""
    return build(settings.deid_profile, settings.deid_profiles_by_ae, settings.deid_date_policy)
