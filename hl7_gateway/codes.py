"""OIDs and code tables of the MDC HL7 v3 interaction (see INTERACTION.md).

Everything the builder writes and the parser accepts is listed here as data, so the two sides
cannot drift apart. Private OIDs hang under a UUID-derived arc (``2.25.<uuid>``, ISO/IEC 9834-8),
which needs no registration and cannot collide with anyone else's.
"""
from __future__ import annotations

HL7_NS = "urn:hl7-org:v3"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
NSMAP = {None: HL7_NS, "xsi": XSI_NS}

# --- interactions (HL7 v3 interaction ids, root 2.16.840.1.113883.1.6) ---------------------
INTERACTION_ROOT = "2.16.840.1.113883.1.6"
VISIT_INTERACTION = "PRPA_IN402001UV02"      # Encounter Event (Activate/Complete) notification
BATCH_INTERACTION = "MCCI_IN200100UV01"      # Transmission Infrastructure batch wrapper
ACK_INTERACTION = "MCCI_IN000002UV01"        # accept acknowledgement
TRIGGER_EVENT_ROOT = "2.16.840.1.113883.1.18"
TRIGGER_EVENT = "PRPA_TE402001UV02"

# --- private MDC identifier roots ------------------------------------------------------------
MDC_ARC = "2.25.80033838843278370116617128330067023066"
VISIT_ID_ROOT = f"{MDC_ARC}.1"        # extension = AES-SIV encrypted hospital visit id
PSEUDONYM_ROOT = f"{MDC_ARC}.2"       # extension = keyed patient pseudonym (shared with DICOM)
ACCESSION_ROOT = f"{MDC_ARC}.3"       # extension = DICOM AccessionNumber of the imaging study
MESSAGE_ID_ROOT = f"{MDC_ARC}.4"      # message / batch / acknowledgement ids
EXAM_KIND_SYSTEM = f"{MDC_ARC}.5"     # local code system for exam kinds (table below)
ACK_DETAIL_SYSTEM = f"{MDC_ARC}.6"    # local code system for acknowledgementDetail codes
HAS_DEVICE_ROOT = f"{MDC_ARC}.7"      # sender device (hospital HAS)
GATEWAY_DEVICE_ROOT = f"{MDC_ARC}.8"  # receiver device (MDC HL7 gateway)

# --- HL7 / external code systems -------------------------------------------------------------
ACT_CODE_SYSTEM = "2.16.840.1.113883.5.4"
GENDER_SYSTEM = "2.16.840.1.113883.5.1"
INTERPRETATION_SYSTEM = "2.16.840.1.113883.5.83"
LOINC_SYSTEM = "2.16.840.1.113883.6.1"
AGE_LOINC = "30525-0"

# diagnosis code system OID -> stored ``system`` name (pacs_hdfs/visit_schema.py)
DIAGNOSIS_SYSTEMS = {
    "2.16.840.1.113883.6.3": "ICD10",
    "2.16.840.1.113883.6.103": "ICD9CM",
}
DIAGNOSIS_SYSTEM_OIDS = {name: oid for oid, name in DIAGNOSIS_SYSTEMS.items()}

# code format per diagnosis system (WHO ICD-10 with a dot; ICD-9-CM incl. V and E codes)
DIAGNOSIS_CODE_PATTERNS = {
    "ICD10": r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$",
    "ICD9CM": r"^([0-9]{3}|V[0-9]{2}|E[0-9]{3})(\.[0-9]{1,2})?$",
}

SEX_CODES = frozenset({"M", "F", "UN"})

# HL7 ObservationInterpretation codes accepted on lab results; abnormal = anything but N.
INTERPRETATION_CODES = frozenset({
    "N", "A", "AA", "H", "HH", "HU", "L", "LL", "LU", ">", "<", "POS", "NEG", "IND",
})

# exam kind code -> display name (EXAM_KIND_SYSTEM)
EXAM_KINDS = {
    "RTG": "Radiography (X-ray)",
    "CT": "Computed tomography",
    "MR": "Magnetic resonance",
    "USG": "Ultrasonography",
    "MG": "Mammography",
    "MORPHOLOGY": "Blood morphology",
    "HISTOPATHOLOGY": "Histopathology",
}

ENCOUNTER_CODE = "IMP"  # ActCode inpatient encounter

# --- acknowledgement ----------------------------------------------------------------------------
ACK_CODES = ("AA", "AE", "AR")  # application accept / error / reject
