"""Direct identifiers that must never reach the MDC, as a table of XPath rules.

A message matching any rule is refused (AE for that visit), never silently stripped: stripping is
the hospital's job (``deidentify_visit``), and a sender that leaks PHI must hear about it.
Each rule names the PHI kind (the acknowledgement code) and why it is refused.
"""
from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from hl7_gateway.codes import AGE_LOINC, HL7_NS, LOINC_SYSTEM, PSEUDONYM_ROOT
from hl7_gateway.models import AGE_TOP
from hl7_gateway.xml_location import location


@dataclass(frozen=True)
class PhiRule:
    code: str
    xpath: str
    reason: str


# Scope: the clinical payload (controlActProcess); transmission wrappers carry device ids only.
_P = ".//v3:controlActProcess"
PHI_RULES: tuple[PhiRule, ...] = (
    PhiRule("PHI_NAME", f"{_P}//v3:name",
            "person or organisation name (PN/ON) is a direct identifier"),
    PhiRule("PHI_ADDRESS", f"{_P}//v3:addr/*[not(self::v3:city or self::v3:country)]",
            "address part other than city/country (street, house number, postal code, ...)"),
    PhiRule("PHI_ADDRESS", f"{_P}//v3:addr[normalize-space(text())]",
            "unstructured address text"),
    PhiRule("PHI_TELECOM", f"{_P}//v3:telecom",
            "telecom address (phone, e-mail, fax) is a direct identifier"),
    PhiRule("PHI_IDENTIFIER", f"{_P}//v3:patient/v3:id[not(@root='{PSEUDONYM_ROOT}')]",
            f"patient id in clear: only the MDC pseudonym root {PSEUDONYM_ROOT} is allowed"),
    PhiRule("PHI_IDENTIFIER", f"{_P}//v3:patientPerson/v3:id",
            "person identifier (national id, passport, ...) in clear"),
    PhiRule("PHI_IDENTIFIER", f"{_P}//v3:asOtherIDs",
            "other identifiers (asOtherIDs: MRN, national id) in clear"),
    PhiRule("PHI_BIRTH_DATE", f"{_P}//v3:birthTime",
            "birthTime (even a year) is not accepted: send the age at admission, top-coded at "
            f"{AGE_TOP}"),
    PhiRule("PHI_AGE", f"{_P}//v3:observation[v3:code/@code='{AGE_LOINC}' and "
            f"v3:code/@codeSystem='{LOINC_SYSTEM}']/v3:value[number(@value) > {AGE_TOP}]",
            f"an age above {AGE_TOP} identifies: send {AGE_TOP}, which means "
            f"\"{AGE_TOP} or more\""),
    PhiRule("PHI_DEATH_DATE", f"{_P}//v3:deceasedTime",
            "date of death is an identifying date"),
)

_COMPILED = tuple((rule, etree.XPath(rule.xpath, namespaces={"v3": HL7_NS}))
                  for rule in PHI_RULES)


@dataclass(frozen=True)
class PhiHit:
    code: str
    reason: str
    location: str


def find_phi(message: etree._Element) -> list[PhiHit]:
    """Every rule hit in one message, with the location of the offending element."""
    return [PhiHit(rule.code, rule.reason, location(node))
            for rule, xpath in _COMPILED for node in xpath(message)]
