"""Which objects may carry PHI in their pixels, by class: the risk tables of the burned-in screen.

:mod:`deid.burned_in` decides per object (blank a known layout, hold for review, or pass); these
tables say which classes are risky when no pixel rule covers them, each with its reason. They
read metadata only, so they cost a few attribute look-ups per object.

- ``RecognizableVisualFeatures = YES`` and encapsulated documents are held whatever the rules
  say: blanking rectangles cannot remove a face or the text of a PDF.
- Risky SOP classes (secondary captures, ultrasound, photographs, XA/RF/CR, RT images) are
  risky whatever their Modality says, so a secondary capture labelled CT is still a capture.
- Otherwise the modality (or, when Modality is missing, the modality of its SOP class) decides;
  a modality the table does not list is risky.
- A low-risk image is still risky when ImageType says it is a screen save, when
  ``BurnedInAnnotation = YES``, or when its IOD requires ``BurnedInAnnotation`` (DX, MG, IO:
  Type 1 in the DX Image module) and it is absent. ``BurnedInAnnotation = NO`` never clears a
  risky class: senders set it by default.

``quarantine_reason(ds)`` is the metadata-only answer kept for callers that cannot clean
pixels: anything the screen would hold or would have to clean is held.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom import Dataset

from deid.pixel_rules import Fields


@dataclass(frozen=True)
class ModalityRisk:
    """How one modality is treated when no pixel rule covers the object."""

    risky: bool
    reason: str
    requires_flag: bool = False  # its IOD makes BurnedInAnnotation Type 1


#: (attribute, value) -> (blanking can clean it, reason). Checked before anything else.
FLAG_RULES: dict[tuple[str, str], tuple[bool, str]] = {
    ("RecognizableVisualFeatures", "YES"): (
        False, "RecognizableVisualFeatures is YES (a face or body surface cannot be blanked by "
               "rectangles)"),
    ("BurnedInAnnotation", "YES"): (True, "BurnedInAnnotation is YES"),
}

#: SOP classes whose content is a document or a surface, never cleanable by blanking regions.
ENCAPSULATED_DOCUMENTS: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.104.2": "Encapsulated CDA",
    "1.2.840.10008.5.1.4.1.1.104.3": "Encapsulated STL (surface, may show a face)",
    "1.2.840.10008.5.1.4.1.1.104.4": "Encapsulated OBJ (surface, may show a face)",
    "1.2.840.10008.5.1.4.1.1.104.5": "Encapsulated MTL (surface texture)",
}

#: SOP classes whose instances commonly carry burned-in text, whatever their Modality.
RISKY_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.1": "Multi-frame Single Bit Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.2": "Multi-frame Grayscale Byte Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.3": "Multi-frame Grayscale Word Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound Image",
    "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame Image",
    "1.2.840.10008.5.1.4.1.1.6": "Ultrasound Image (Retired)",
    "1.2.840.10008.5.1.4.1.1.3": "Ultrasound Multi-frame Image (Retired)",
    "1.2.840.10008.5.1.4.1.1.6.2": "Enhanced US Volume",
    "1.2.840.10008.5.1.4.1.1.12.1": "X-Ray Angiographic Image",
    "1.2.840.10008.5.1.4.1.1.12.1.1": "Enhanced XA Image",
    "1.2.840.10008.5.1.4.1.1.12.2": "X-Ray Radiofluoroscopic Image",
    "1.2.840.10008.5.1.4.1.1.12.2.1": "Enhanced XRF Image",
    "1.2.840.10008.5.1.4.1.1.1": "Computed Radiography Image",
    "1.2.840.10008.5.1.4.1.1.481.1": "RT Image",
    "1.2.840.10008.5.1.4.1.1.77.1.1": "VL Endoscopic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.1.1": "Video Endoscopic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.2": "VL Microscopic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.2.1": "Video Microscopic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.3": "VL Slide-Coordinates Microscopic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.4": "VL Photographic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.4.1": "Video Photographic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.5.1": "Ophthalmic Photography 8 Bit Image",
    "1.2.840.10008.5.1.4.1.1.77.1.5.2": "Ophthalmic Photography 16 Bit Image",
    "1.2.840.10008.5.1.4.1.1.77.1.5.5": "Wide Field Ophthalmic Photography Stereographic Image",
    "1.2.840.10008.5.1.4.1.1.77.1.5.6": "Wide Field Ophthalmic Photography 3D Image",
    "1.2.840.10008.5.1.4.1.1.77.1.6": "VL Whole Slide Microscopy Image",
}

_DX_FLAG = ("the DX Image module requires BurnedInAnnotation (Type 1): only a declared NO passes; "
            "YES or absent is held")

#: Modality -> how it is treated when no pixel rule covers the object. Not listed: risky.
MODALITY_RISK: dict[str, ModalityRisk] = {
    "US": ModalityRisk(True, "ultrasound: the header banner shows name, ID and date"),
    "IVUS": ModalityRisk(True, "intravascular ultrasound: console text is burned in"),
    "XA": ModalityRisk(True, "angiography: reference images, exported runs and dose screens "
                             "carry burned-in text"),
    "RF": ModalityRisk(True, "fluoroscopy: last-image-hold captures and exported runs carry "
                             "burned-in text"),
    "CR": ModalityRisk(True, "computed radiography: the cassette ID flash burns the patient's "
                             "name into the plate"),
    "PX": ModalityRisk(True, "panoramic dental X-ray: units print the patient's name on the "
                             "image"),
    "RTIMAGE": ModalityRisk(True, "RT portal/verification image: console text is burned in"),
    "SC": ModalityRisk(True, "secondary capture"),
    "OT": ModalityRisk(True, "other: screenshots, scanned paper, workstation exports"),
    "DOC": ModalityRisk(True, "scanned document"),
    "XC": ModalityRisk(True, "external-camera photograph (faces, wristbands, labels)"),
    "ES": ModalityRisk(True, "endoscopy: video processors burn in name and date"),
    "GM": ModalityRisk(True, "general microscopy photograph (slide labels)"),
    "SM": ModalityRisk(True, "slide microscopy (the label image shows the slide label)"),
    "OP": ModalityRisk(True, "ophthalmic photograph: fundus cameras burn in name and date"),
    "CT": ModalityRisk(False, "reconstructed slices carry no text; dose screens and screen "
                              "saves are caught by SOP class, ImageType and the device rules"),
    "MR": ModalityRisk(False, "reconstructed images carry no text; captures are caught by SOP "
                              "class, ImageType and the device rules"),
    "PT": ModalityRisk(False, "reconstructed PET frames carry no text; result screens are "
                              "captures or device-rule layouts"),
    "NM": ModalityRisk(False, "acquired and reconstructed NM frames carry no text; processing "
                              "screens are captures or device-rule layouts"),
    "DX": ModalityRisk(False, _DX_FLAG, requires_flag=True),
    "MG": ModalityRisk(False, _DX_FLAG, requires_flag=True),
    "IO": ModalityRisk(False, _DX_FLAG, requires_flag=True),
    "SEG": ModalityRisk(False, "segmentation masks are computed labels, not rendered images"),
    "RTDOSE": ModalityRisk(False, "dose grids are computed values, not rendered images"),
}

#: Low-risk SOP classes -> the modality they imply when Modality is missing.
SOP_CLASS_MODALITY: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.2": "CT",
    "1.2.840.10008.5.1.4.1.1.2.1": "CT",
    "1.2.840.10008.5.1.4.1.1.4": "MR",
    "1.2.840.10008.5.1.4.1.1.4.1": "MR",
    "1.2.840.10008.5.1.4.1.1.128": "PT",
    "1.2.840.10008.5.1.4.1.1.130": "PT",
    "1.2.840.10008.5.1.4.1.1.20": "NM",
    "1.2.840.10008.5.1.4.1.1.1.1": "DX",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "DX",
    "1.2.840.10008.5.1.4.1.1.1.2": "MG",
    "1.2.840.10008.5.1.4.1.1.1.2.1": "MG",
    "1.2.840.10008.5.1.4.1.1.1.3": "IO",
    "1.2.840.10008.5.1.4.1.1.1.3.1": "IO",
    "1.2.840.10008.5.1.4.1.1.66.4": "SEG",
    "1.2.840.10008.5.1.4.1.1.481.2": "RTDOSE",
}

#: ImageType values that make any image risky.
RISKY_IMAGE_TYPES: dict[str, str] = {
    "SCREEN SAVE": "ImageType SCREEN SAVE: a saved screen",
}

_TAGS = {
    "Modality": 0x00080060,
    "SOPClassUID": 0x00080016,
    "ImageType": 0x00080008,
    "BurnedInAnnotation": 0x00280301,
    "RecognizableVisualFeatures": 0x00280302,
}
#: Every attribute the functions below read (the screen remembers verdicts by their values).
RISK_READS: tuple[int, ...] = tuple(_TAGS.values())


def _first(fields: Fields, keyword: str) -> str:
    values = fields(_TAGS[keyword])
    return values[0].upper() if values else ""


def uncleanable_reason(fields: Fields) -> str | None:
    """Why the object must be held even if a pixel rule matched, or None."""
    for (keyword, value), (cleanable, reason) in FLAG_RULES.items():
        if not cleanable and _first(fields, keyword) == value:
            return reason
    sop_class = fields(_TAGS["SOPClassUID"])
    if sop_class and sop_class[0] in ENCAPSULATED_DOCUMENTS:
        return f"{ENCAPSULATED_DOCUMENTS[sop_class[0]]}: the document cannot be screened"
    return None


def class_risk(fields: Fields) -> str | None:
    """Why the object's class is risky when no pixel rule covers it, or None if low-risk."""
    for (keyword, value), (cleanable, reason) in FLAG_RULES.items():
        if cleanable and _first(fields, keyword) == value:
            return reason
    sop_values = fields(_TAGS["SOPClassUID"])
    sop_class = sop_values[0] if sop_values else ""
    if sop_class in RISKY_SOP_CLASSES:
        return f"SOP class {RISKY_SOP_CLASSES[sop_class]} often has burned-in text"
    modality = _first(fields, "Modality") or SOP_CLASS_MODALITY.get(sop_class, "")
    if not modality:
        return "no Modality and no known SOP class: cannot tell the burned-in risk"
    risk = MODALITY_RISK.get(modality)
    if risk is None:
        return f"modality {modality} is not in the burned-in risk table"
    if risk.risky:
        return f"modality {modality} ({risk.reason})"
    for value in fields(_TAGS["ImageType"]) or ():
        if value.upper() in RISKY_IMAGE_TYPES:
            return RISKY_IMAGE_TYPES[value.upper()]
    if risk.requires_flag and not _first(fields, "BurnedInAnnotation"):
        return f"modality {modality} without BurnedInAnnotation ({risk.reason})"
    return None


def quarantine_reason(ds: Dataset) -> str | None:
    """Why ``ds`` must be held before release, or None, judged from metadata only.

    What the pixel screen would hold is held; what it would clean is held too, since this
    caller does not clean pixels (:func:`deid.burned_in.screen` does).
    """
    from deid.burned_in import assess  # burned_in reads the tables above: import when called

    verdict = assess(ds)
    if verdict.held:
        return verdict.reason
    if verdict.cleaned:
        return f"needs pixel cleaning that was not applied ({verdict.reason})"
    return None
