"""Which objects probably carry PHI burned into their pixels, as rule tables.

Order of the rules: an explicit ``YES`` flag always quarantines; an explicit
``BurnedInAnnotation = NO`` then clears the object; otherwise modalities and SOP classes
known for burned-in text (screenshots, scanned documents, ultrasound, photographs) are held
for human review.
"""

from __future__ import annotations

from pydicom import Dataset

#: (attribute, value) that quarantine whatever the modality.
FLAG_RULES: tuple[tuple[str, str], ...] = (
    ("BurnedInAnnotation", "YES"),
    ("RecognizableVisualFeatures", "YES"),
)

#: (attribute, value) that clear an object the modality / SOP class rules would hold.
CLEARING_FLAGS: tuple[tuple[str, str], ...] = (("BurnedInAnnotation", "NO"),)

#: Modalities whose images commonly carry burned-in demographics.
RISKY_MODALITIES: dict[str, str] = {
    "US": "ultrasound",
    "SC": "secondary capture",
    "OT": "other / screenshot",
    "DOC": "scanned document",
    "XC": "external-camera photograph",
    "ES": "endoscopy video/photo",
    "GM": "general microscopy photograph",
    "OP": "ophthalmic photograph",
    "SM": "slide microscopy (label image)",
}

#: SOP classes whose instances commonly carry burned-in or embedded identifiers.
RISKY_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.1": "Multi-frame Single Bit Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.2": "Multi-frame Grayscale Byte Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.3": "Multi-frame Grayscale Word Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.104.2": "Encapsulated CDA",
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound Image",
    "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame Image",
    "1.2.840.10008.5.1.4.1.1.6": "Ultrasound Image (Retired)",
    "1.2.840.10008.5.1.4.1.1.3": "Ultrasound Multi-frame Image (Retired)",
    "1.2.840.10008.5.1.4.1.1.77.1.1": "VL Endoscopic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.1.1": "Video Endoscopic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.4": "VL Photographic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.4.1": "Video Photographic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.5.1": "Ophthalmic Photography 8 Bit Image",
    "1.2.840.10008.5.1.4.1.1.77.1.5.2": "Ophthalmic Photography 16 Bit Image",
}


def _value(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip().upper()


def quarantine_reason(ds: Dataset) -> str | None:
    """Why ``ds`` must be held for review before release, or None if it may pass."""
    for keyword, value in FLAG_RULES:
        if _value(ds, keyword) == value:
            return f"{keyword} is {value}"
    if any(_value(ds, keyword) == value for keyword, value in CLEARING_FLAGS):
        return None
    modality = _value(ds, "Modality")
    if modality in RISKY_MODALITIES:
        return f"modality {modality} ({RISKY_MODALITIES[modality]}) often has burned-in text"
    sop_class = str(ds.get("SOPClassUID", "") or "").strip()
    if sop_class in RISKY_SOP_CLASSES:
        return f"SOP class {RISKY_SOP_CLASSES[sop_class]} often has burned-in text"
    return None
