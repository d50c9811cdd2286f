"""A PHI screen for free text (exam results, lab comments, clinical notes), Polish and English.

Finds what identifies a person in text that no structured rule can see, and says what and where
(``Finding``: character span, category, rule); the caller decides to redact or refuse:

- patterns (``phi_data/patterns.tsv``): e-mail, Polish national id (PESEL, checksum and birth
  date checked), NIP, REGON, ID card and passport numbers (checksums), NHS numbers, hospital
  record numbers after a keyword, phone numbers (shape + Google's libphonenumber metadata, PL
  first, then international), postal codes (NN-NNN before a town, UK postcodes), street
  addresses (ul./al./pl./os. + name + number, "12 Baker Street"), dates (numeric, with Polish or
  English month names, and bare years: under the default date policy a true year next to a
  shifted visit date would bound the patient's shift), and ages of 90 or more;
- person names (``NameFinder``): first names and surnames from word lists (Polish and English,
  ``phi_data/*.txt``) with every Polish case form generated (``inflect``: "Anna Kowalska" ->
  "Anny Kowalskiej", "Kowalskiemu", "Nowakowi"), and context words as data (``cues.tsv``): a
  title (pani, dr., Mr) or a relative (córka, wife) makes the next capitalised word a name even
  if it is on no list; clinical eponyms (``eponyms.txt``: choroba Parkinsona, Baker's cyst,
  Hodgkin lymphoma, Hill-Sachs) and names that are ordinary words (``name_stopwords.txt``: May,
  Brown, Wilk) are names only with such context.

Shared by both sides: the hospital runs it, plus the patient's own identifiers, before anything
leaves (``hospital/phi_screen.py``); the MDC gateway runs it again on exam text and refuses a
visit whose text it flags (``find_text_phi``). It holds no PHI and no keys, only word lists.
Placeholders it or the hospital writes (``[NAME]``, ``[DATE]``, ...) are never flagged, so a
redacted text screens clean. Speed: pure ``re`` and set look-ups, tens of microseconds per line
(``benchmarks/phi_screen``).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

from hl7_gateway.codes import HL7_NS
from hl7_gateway.phi_rules import PhiHit
from hl7_gateway.xml_location import location

DATA_DIR = Path(__file__).resolve().parent / "phi_data"
CATEGORIES = ("NAME", "NATIONAL_ID", "ID", "PHONE", "EMAIL", "POSTAL_CODE", "DATE", "ADDRESS",
              "AGE")
UNITS = ("mm", "cm", "m", "ml", "l", "dl", "g", "mg", "µg", "ug", "kg", "ng", "pg", "mmol",
         "umol", "µmol", "mol", "iu", "u", "j", "mj", "kcal", "s", "sek", "min", "h", "godz",
         "mmhg", "kpa", "mgy", "gy", "msv", "hu", "x", "%", "°", "st", "pkt", "tys", "mln",
         "mld", "ms", "hz", "mhz", "bpm", "cfu", "wpw", "kg/m2")


@dataclass(frozen=True)
class Finding:
    """One suspected identifier: ``text[start:end]`` is of ``category``, found by ``rule``."""
    start: int
    end: int
    category: str
    rule: str


def placeholder(category: str) -> str:
    """The text a finding is replaced by: ``[NAME]``, ``[DATE]``, ..."""
    return f"[{category}]"


_PLACEHOLDER = re.compile(r"\[(?:%s|REDACTED)\]" % "|".join(CATEGORIES))


def redact(text: str, findings: Iterable[Finding]) -> str:
    """``text`` with every finding replaced by its typed placeholder."""
    out, pos = [], 0
    for f in sorted(findings, key=lambda f: f.start):
        if f.start < pos:
            continue
        out += [text[pos:f.start], placeholder(f.category)]
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


# --- data files -----------------------------------------------------------------------------

def read_words(name: str) -> list[str]:
    """Non-comment lines of a data file."""
    lines = (DATA_DIR / name).read_text(encoding="utf-8").splitlines()
    return [w.strip() for w in lines if w.strip() and not w.lstrip().startswith("#")]


def _read_table(name: str) -> list[list[str]]:
    return [row.split("\t") for row in read_words(name)]


# --- Polish inflection of names -------------------------------------------------------------

# stem-final consonant -> its locative/dative form before -e (feminine -a nouns, masculine loc.)
_SOFTEN = (("szk", "szc"), ("st", "ści"), ("sł", "śl"), ("zd", "ździ"), ("ch", "sz"),
           ("k", "c"), ("g", "dz"), ("t", "ci"), ("d", "dzi"), ("r", "rz"), ("ł", "l"),
           ("n", "ni"), ("m", "mi"), ("w", "wi"), ("b", "bi"), ("p", "pi"), ("f", "fi"),
           ("s", "si"), ("z", "zi"))
_HARD_GENITIVE_I = ("k", "g", "l", "j")
_SOFT_ENDINGS = ("sz", "cz", "rz", "ż", "c", "dz", "l", "j", "ś", "ć", "ń", "ź")


def _soften(stem: str) -> str:
    for hard, soft in _SOFTEN:
        if stem.endswith(hard):
            return stem[: -len(hard)] + soft
    return stem


def _adjective_forms(stem: str) -> set[str]:
    """-ski/-cki/-dzki (stem 'kowalsk'), both genders, singular and plural."""
    forms = {stem + e for e in ("i", "iego", "iemu", "im", "ich", "imi", "a", "iej", "ą")}
    for hard, plural in (("sk", "sc"), ("ck", "cc"), ("dzk", "dzc")):
        if stem.endswith(hard):
            forms.add(stem[: -len(hard)] + plural + "y")
    return forms


def _hard_adjective_forms(stem: str) -> set[str]:
    """-y adjectives (Biały, Konieczny, Jerzy): stem 'biał'."""
    return {stem + e for e in ("y", "ego", "emu", "ym", "ych", "ymi", "a", "ej", "ą")} | \
           {_soften(stem) + "i"}


def _feminine_noun_forms(name: str) -> set[str]:
    """-a nouns (Anna, Ewa, Sikora, Kuba): singular cases."""
    stem = name[:-1]
    forms = {name, stem + "ę", stem + "ą", stem + "o"}
    if stem.endswith("i"):                      # Maria -> Marii; Kasia -> Kasi, Kasiu
        forms |= {stem + "i", stem, stem + "u"}
    elif stem.endswith("j"):                    # Maja -> Mai, Alicja -> Alicji
        forms |= {stem + "i", stem[:-1] + "i"}
    elif stem.endswith(_SOFT_ENDINGS) or stem.endswith("l"):
        forms |= {stem + "i", stem + "y", stem + "u"}
    else:
        forms.add(stem + ("i" if stem.endswith(_HARD_GENITIVE_I) else "y"))
        soft = _soften(stem)
        forms.add(soft + "e")
    return forms


def _masculine_noun_forms(name: str) -> set[str]:
    """Consonant-final nouns (Nowak, Piotr, Marek, Smith): singular and plural cases, also the
    fleeting -e- (Marek -> Marka, Wróbel -> Wróbla, Paweł -> Pawła)."""
    stems = {name}
    if re.search(r"e[kcłl]$", name) and len(name) > 3:
        stems.add(name[:-2] + name[-1])
    forms = {name}
    for stem in stems:
        forms |= {stem + e for e in ("a", "owi", "owie", "ów", "om", "ami", "ach", "u")}
        forms.add(stem + ("iem" if stem.endswith(("k", "g")) else "em"))
        if stem.endswith(_SOFT_ENDINGS) or stem.endswith(("k", "g", "ch")):
            forms |= {stem + "u", stem + "e"}
        else:
            forms.add(_soften(stem) + "e")
        if stem.endswith("ec"):               # Niemiec -> Niemca
            forms |= {stem[:-2] + "c" + e for e in ("a", "owi", "em", "u")}
    # the traditional wife's and daughter's forms: Nowakowa, Kowalczykowej; Nowakówna
    forms |= {name + e for e in ("owa", "owej", "ową", "ówna", "ówny", "ównie", "ównę",
                                 "ówną")}
    return forms


def inflect(name: str) -> set[str]:
    """Every Polish case form of a first name or surname (its base form included), lower case.

    Over-generation is harmless: the forms are only looked up, never written. Names of other
    languages get the Polish endings too ("Smitha", "Smithowi"), as Polish text inflects them.
    """
    name = name.strip().lower()
    if not name:
        return set()
    forms = {name}
    for masc, fem in (("ski", "ska"), ("cki", "cka"), ("dzki", "dzka")):
        if name.endswith(fem):
            name = name[: -len(fem)] + masc
    if name.endswith(("ski", "cki", "dzki")):
        return forms | _adjective_forms(name[:-1])
    if name.endswith("y") and len(name) > 3:
        return forms | _hard_adjective_forms(name[:-1])
    if name.endswith("i") and len(name) > 3:     # Antoni -> Antoniego
        return forms | {name + e for e in ("ego", "emu", "m")}
    if name.endswith("a"):
        return forms | _feminine_noun_forms(name)
    if name.endswith("o"):                       # Kościuszko, Fredro
        stem = name[:-1]
        return forms | {stem + e for e in ("i", "y", "ę", "ą", "ie", "owi", "a", "em")}
    if name[-1].isalpha() and name[-1] not in "eiuyóąę":
        return forms | _masculine_noun_forms(name)
    return forms


# --- names ----------------------------------------------------------------------------------

_TOKEN = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
_POLISH_SURNAME_SHAPE = re.compile(
    r"(?:[sc]k|dzk)(?:i|a|iego|iemu|im|iej|ą)$|wicz(?:a|owi|em|u)?$|czyk(?:a|owi|iem|u)?$")


@dataclass(frozen=True)
class NameLexicon:
    """Word forms (lower case) by role, built from the data files."""
    first: frozenset[str]
    last: frozenset[str]
    stop: frozenset[str]
    eponym: frozenset[str]
    cues: dict[str, frozenset[str]]

    @classmethod
    def load(cls) -> "NameLexicon":
        def forms(*files: str) -> frozenset[str]:
            return frozenset(f for name in files for w in read_words(name) for f in inflect(w))
        cues = {kind: frozenset(w.strip() for w in words.split(",") if w.strip())
                for kind, words in _read_table("cues.tsv")}
        stop = frozenset(w.lower() for w in read_words("name_stopwords.txt"))
        return cls(first=forms("first_names_pl.txt", "first_names_en.txt"),
                   last=forms("surnames_pl.txt", "surnames_en.txt"),
                   stop=stop, eponym=forms("eponyms.txt"), cues=cues)


class _Token:
    """One word: ``word`` as written without a possessive or Polish apostrophe ending
    (Baker's, Graves', Murphy'ego set ``possessive``), ``key`` lower case, ``gap`` the
    characters between the previous word and this one."""
    __slots__ = ("start", "end", "word", "key", "possessive", "gap", "capitalised", "acronym")

    def __init__(self, start: int, end: int, word: str, possessive: bool, gap: str):
        self.start, self.end, self.word, self.possessive, self.gap = \
            start, end, word, possessive, gap
        self.key = word.lower()
        self.capitalised = word[:1].isupper()
        self.acronym = len(word) > 1 and word.isupper()


def _tokens(text: str) -> list[_Token]:
    out, prev_end = [], 0
    for m in _TOKEN.finditer(text):
        word, possessive = m.group(), False
        head, sep, tail = word.replace("’", "'").partition("'")
        if sep and tail.islower():                 # Baker's, Murphy'ego; not O'Connor
            word, possessive = head, True
        end = m.start() + len(word)
        if m.end() < len(text) and text[m.end()] in "'’" and not sep:
            possessive = True                      # Graves'
        out.append(_Token(m.start(), end, word, possessive, text[prev_end:m.start()]))
        prev_end = m.end()
    return out


class NameFinder:
    """Person names in text, from word lists and context cues (see the module docstring)."""

    MAX_NAME_TOKENS = 3

    def __init__(self, lexicon: NameLexicon, extra: Iterable[str] = ()):
        self.lex = lexicon
        self.extra = frozenset(extra)   # the patient's own name forms (hospital side)
        # words at which a name search starts when they are not capitalised
        self._starters = frozenset().union(*(lexicon.cues.get(k, ()) for k in
                                             ("title", "relative", "patient")))

    def _cue(self, tok: _Token, kind: str) -> bool:
        return tok.key in self.lex.cues.get(kind, ())

    def _listed(self, tok: _Token) -> bool:
        return tok.key in self.lex.first or tok.key in self.lex.last or tok.key in self.extra

    def _namelike(self, tok: _Token) -> bool:
        """Could be part of a name after strong context: capitalised, not an acronym."""
        return tok.capitalised and not (tok.acronym and len(tok.word) <= 4 and
                                        not self._listed(tok))

    def _eponym_context(self, text: str, toks: list[_Token], i: int, j: int) -> bool:
        """Is toks[i:j] an eponym: hyphen-joined to another capitalised word (Hill-Sachs,
        Leśniowskiego-Crohna, non-Hodgkin), after a head word (choroba, torbiel, objaw), or
        before a tail word (disease, cyst, sign) or a grade (Bosniak IIF, Gleason 3+4)?"""
        first, last = toks[i], toks[j - 1]
        if first.gap == "-" and i > 0:
            return True
        if j < len(toks) and toks[j].gap == "-" and toks[j].capitalised:
            return True
        if i > 0 and self._cue(toks[i - 1], "head") and first.gap.strip() in ("", "(") and \
                not self._cue(toks[i - 1], "title"):
            return True
        if i > 1 and toks[i - 1].key == "of" and toks[i - 1].gap.strip() == "":
            return True                            # pouch of Douglas, circle of Willis
        k = j   # a tail word may follow up to two more capitalised words (Sister Mary Joseph nodule)
        while k < len(toks) and k < j + 2 and toks[k].capitalised and \
                toks[k].gap.strip() in ("", "-") and not self._cue(toks[k], "tail"):
            k += 1
        if k < len(toks) and toks[k].gap.strip() in ("", "-") and self._cue(toks[k], "tail"):
            return True
        if j < len(toks):
            nxt = toks[j]
            gap = nxt.gap.strip()
            if last.possessive and gap == "" and not nxt.capitalised:
                return True                        # Parkinson's disease (any noun after 's)
            if gap == "" and (nxt.acronym and len(nxt.word) <= 4 and re.fullmatch(
                    r"[IVX]+[A-F]?|[A-F]", nxt.word)):
                return True                        # Bosniak IIF, Weber B, Garden III
        rest = text[last.end:last.end + 12]
        return bool(re.match(r"['’]?s?\s+[0-9]+(?:[+/][0-9]+)?", rest)) and \
            last.key in self.lex.eponym            # Gleason 3+4, Fazekas 1

    def _extend(self, toks: list[_Token], j: int, listed_only: bool) -> int:
        """End of a name that continues at toks[j] (whitespace-separated capitalised words)."""
        while j < len(toks) and toks[j].gap in (" ", "\u00a0") and \
                len(toks) > j and self._namelike(toks[j]) and \
                (not listed_only or self._listed(toks[j]) or self._surname_shaped(toks[j])):
            j += 1
        return j

    def _surname_shaped(self, tok: _Token) -> bool:
        return tok.capitalised and bool(_POLISH_SURNAME_SHAPE.search(tok.key))

    def _initial_then_name(self, toks: list[_Token], i: int) -> bool:
        """'M. Kowalczyk', 'A. Hughes': an initial then a listed or surname-shaped word."""
        tok = toks[i]
        return (len(tok.word) == 1 and tok.word.isupper() and i + 1 < len(toks)
                and toks[i + 1].gap == ". " and toks[i + 1].capitalised
                and (self._listed(toks[i + 1]) or self._surname_shaped(toks[i + 1])))

    def find(self, text: str) -> list[Finding]:
        toks = _tokens(text)
        spans: list[tuple[int, int, str]] = []
        i = 0
        while i < len(toks):
            found = self._at(text, toks, i)
            if found is None:
                i += 1
                continue
            a, b, rule = found
            spans.append((toks[a].start, toks[b - 1].end, rule))
            i = b
        return [Finding(s, e, "NAME", rule) for s, e, rule in spans]

    def _after_cue(self, toks: list[_Token], i: int) -> int:
        """Index of the first name word after the cue at ``i`` (titles skip fillers such as
        'n. med.' and an initial's dot; relatives allow ',', ':' or '(' before the name)."""
        j = i + 1
        while j < len(toks) and self._cue(toks[j], "filler") and toks[j].gap.strip() in ("", "."):
            j += 1
        return j

    def _at(self, text: str, toks: list[_Token], i: int) -> tuple[int, int, str] | None:
        tok = toks[i]
        if not tok.capitalised and tok.key not in self._starters:
            return None
        for kind, rule in (("title", "name_title"), ("relative", "name_relative"),
                           ("patient", "name_patient")):
            if not self._cue(tok, kind):
                continue
            j = self._after_cue(toks, i)
            if j >= len(toks) or toks[j].gap.strip() not in ("", ".", ",", ":", "(", ",",
                                                             "-", "–", ".,", "),"):
                continue
            if j < len(toks) and self._initial_then_name(toks, j):
                end = self._extend(toks, j + 2, listed_only=False)
                if not self._eponym_context(text, toks, j, end):
                    return j, end, rule
            nxt = toks[j] if j < len(toks) else None
            if nxt is None or not self._namelike(nxt):
                continue
            if kind == "patient" and not (self._listed(nxt) or self._surname_shaped(nxt)):
                continue
            if kind == "relative" and nxt.key in self.lex.stop and not self._listed(nxt):
                continue
            end = self._extend(toks, j + 1, listed_only=kind != "title")
            end = min(end, j + self.MAX_NAME_TOKENS)
            if not self._eponym_context(text, toks, j, end):
                return j, end, rule
        if not tok.capitalised:
            return None
        if self._initial_then_name(toks, i):
            end = self._extend(toks, i + 2, listed_only=True)
            if not self._eponym_context(text, toks, i, end):
                return i, end, "name_initial"
        if not self._listed(tok) and not self._surname_shaped(tok):
            return None
        # a pair: first name + capitalised word, or surname + first name
        if i + 1 < len(toks) and toks[i + 1].gap == " " and toks[i + 1].capitalised and \
                not toks[i + 1].acronym:
            nxt = toks[i + 1]
            first_then_any = tok.key in self.lex.first and tok.key not in self.lex.stop and \
                nxt.key not in self.lex.eponym
            listed_pair = (self._listed(tok) or self._surname_shaped(tok)) and \
                (self._listed(nxt) or self._surname_shaped(nxt))
            if first_then_any or listed_pair:
                end = min(self._extend(toks, i + 2, listed_only=True), i + self.MAX_NAME_TOKENS)
                if not self._eponym_context(text, toks, i, end):
                    return i, end, "name_pair"
        # a single listed word
        if not self._listed(tok) or tok.key in self.lex.stop or tok.key in self.lex.eponym:
            return None
        if tok.acronym and len(tok.word) <= 4:
            return None
        if self._eponym_context(text, toks, i, i + 1):
            return None
        return i, i + 1, "name_listed"


# --- patterns -------------------------------------------------------------------------------

_PESEL_WEIGHTS = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def valid_pesel(value: str) -> bool:
    """PESEL checksum and an existing birth date (python-stdnum)."""
    from stdnum.pl import pesel
    return pesel.is_valid(value)


def valid_nip(value: str) -> bool:
    from stdnum.pl import nip
    return nip.is_valid(value)


def valid_regon(value: str) -> bool:
    from stdnum.pl import regon
    return regon.is_valid(value)


def _letters_digits_checksum(value: str, weights: tuple[int, ...], check_at: int) -> bool:
    value = value.replace(" ", "").upper()
    if len(value) != len(weights):
        return False
    numbers = [ord(c) - 55 if c.isalpha() else int(c) for c in value]
    return sum(n * w for n, w in zip(numbers, weights)) % 10 == 0 and value[check_at].isdigit()


def valid_idcard(value: str) -> bool:
    """Polish ID card number: AAA + check digit + 5 digits, weights 7 3 1 9 7 3 1 7 3."""
    return _letters_digits_checksum(value, (7, 3, 1, 9, 7, 3, 1, 7, 3), 3)


def valid_passport(value: str) -> bool:
    """Polish passport number: AA + check digit + 6 digits, weights 7 3 9 1 7 3 1 7 3."""
    return _letters_digits_checksum(value, (7, 3, 9, 1, 7, 3, 1, 7, 3), 2)


def valid_nhs(value: str) -> bool:
    """NHS number: 10 digits, modulus 11 check digit."""
    d = _digits(value)
    if len(d) != 10:
        return False
    check = 11 - sum(int(x) * (10 - i) for i, x in enumerate(d[:9])) % 11
    return (0 if check == 11 else check) == int(d[9]) and check != 10


def valid_phone(value: str) -> bool:
    """A number per libphonenumber: international as written, else a valid Polish number, else
    a UK national number (trunk prefix 0; "possible" suffices there, as the UK reserves whole
    ranges such as 07700 900xxx for fiction and tests); at least 9 digits."""
    import phonenumbers
    if len(_digits(value)) < 9:
        return False
    text = "+" + value.strip()[2:] if value.strip().startswith("00") else value
    regions = (None,) if text.strip().startswith("+") else ("PL", "GB")
    for region in regions:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
        if region == "GB" and text.lstrip("( ").startswith("0") and \
                phonenumbers.is_possible_number(number):
            return True
    return False


def valid_phone_loose(value: str) -> bool:
    """After a phone keyword: any 6 to 15 digits."""
    return 6 <= len(_digits(value)) <= 15


def _date_ok(day: int, month: int, year: int) -> bool:
    try:
        dt.date(year, month, day)
    except ValueError:
        return False
    return True


def valid_date_dmy(value: str) -> bool:
    """d.m.y or m/d/y (either reading an existing date; two-digit years as 19xx/20xx)."""
    a, b, y = (int(x) for x in re.split(r"[./-]", value))
    y = y + (2000 if y < 50 else 1900) if y < 100 else y
    return 1850 <= y <= 2100 and (_date_ok(a, b, y) or _date_ok(b, a, y))


def valid_date_iso(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


VALIDATORS: dict[str, Callable[[str], bool] | None] = {
    "-": None, "pesel": valid_pesel, "nip": valid_nip, "regon": valid_regon,
    "idcard": valid_idcard, "passport": valid_passport, "nhs": valid_nhs,
    "phone": valid_phone, "phone_loose": valid_phone_loose, "date_dmy": valid_date_dmy,
    "date_iso": valid_date_iso,
}


@lru_cache(maxsize=1)
def month_forms() -> frozenset[str]:
    return frozenset(f for _, forms in _read_table("months.tsv") for f in forms.split(","))


def valid_month(value: str) -> bool:
    """The first word of ``value`` is a month name (any Polish case, English, abbreviated)."""
    m = re.search(r"[^\W\d_]{3,}", value)   # {3,}: skips the 'rd' of '3rd March'
    return bool(m) and m.group().lower() in month_forms()


VALIDATORS["month"] = valid_month
_NEEDS: dict[str, Callable[[str], bool]] = {
    "-": lambda text: True,
    "digit": re.compile(r"\d").search,
    "@": lambda text: "@" in text,
}


@dataclass(frozen=True)
class PatternRule:
    name: str
    category: str
    needs: str
    validator: Callable[[str], bool] | None
    regex: re.Pattern


def _alternation(words: Iterable[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


def load_patterns() -> tuple[PatternRule, ...]:
    rules = []
    for name, category, needs, validator, regex in _read_table("patterns.tsv"):
        if category not in CATEGORIES or needs not in _NEEDS:
            raise ValueError(f"patterns.tsv: {name}: unknown category or needs")
        regex = regex.replace("{UNIT}", _alternation(UNITS))
        rules.append(PatternRule(name, category, needs, VALIDATORS[validator],
                                 re.compile(regex)))
    return tuple(rules)


# --- the screen -----------------------------------------------------------------------------

class TextScreen:
    """Patterns + names over one text; ``find`` returns merged, non-overlapping findings."""

    def __init__(self, patterns: tuple[PatternRule, ...], names: NameFinder):
        self.patterns = patterns
        self.names = names

    def with_names(self, extra_forms: Iterable[str]) -> "TextScreen":
        """The same screen whose name finder also knows ``extra_forms`` (lower case)."""
        return TextScreen(self.patterns, NameFinder(self.names.lex, extra_forms))

    def find(self, text: str, extra: Iterable[Finding] = ()) -> list[Finding]:
        if not text:
            return list(extra)
        found = list(extra)
        present = {need: check(text) for need, check in _NEEDS.items()}
        for rule in self.patterns:
            if not present[rule.needs]:
                continue
            for m in rule.regex.finditer(text):
                start, end = m.span("v") if "v" in rule.regex.groupindex else m.span()
                value = text[start:end]
                if start == end or _inside_placeholder(text, start):
                    continue
                if rule.validator is not None and not rule.validator(value):
                    continue
                found.append(Finding(start, end, rule.category, rule.name))
        found += [f for f in self.names.find(text) if not _inside_placeholder(text, f.start)]
        return merge(found)


def _inside_placeholder(text: str, start: int) -> bool:
    """Is ``start`` within a placeholder such as [NAME] (written by an earlier pass)?"""
    left = text.rfind("[", 0, start + 1)
    if left < 0:
        return False
    m = _PLACEHOLDER.match(text, left)
    return bool(m) and m.end() > start


_CATEGORY_RANK = {c: i for i, c in enumerate(
    ("EMAIL", "NATIONAL_ID", "ID", "ADDRESS", "PHONE", "DATE", "POSTAL_CODE", "AGE", "NAME"))}


def merge(findings: Iterable[Finding]) -> list[Finding]:
    """Overlapping findings become one covering their union, named by the longest member
    (ties: the more specific category), so nothing that any rule flagged is left uncovered."""
    ordered = sorted(findings, key=lambda f: (f.start, -f.end))
    merged: list[list] = []
    for f in ordered:
        if merged and f.start < merged[-1][1]:
            group = merged[-1]
            group[1] = max(group[1], f.end)
            group[2].append(f)
        else:
            merged.append([f.start, f.end, [f]])
    out = []
    for start, end, members in merged:
        best = min(members, key=lambda f: (-(f.end - f.start), _CATEGORY_RANK[f.category]))
        out.append(Finding(start, end, best.category, best.rule))
    return out


@lru_cache(maxsize=1)
def default_screen() -> TextScreen:
    """The screen built from ``phi_data`` (loaded once per process)."""
    return TextScreen(load_patterns(), NameFinder(NameLexicon.load()))


def find_phi_spans(text: str) -> list[Finding]:
    """Findings of the default screen in one text."""
    return default_screen().find(text)


# --- the gateway's defence in depth ---------------------------------------------------------

@lru_cache(maxsize=1)
def _exam_texts():
    from lxml import etree
    return etree.XPath(".//v3:controlActProcess//v3:pertinentInformation/v3:observation/v3:text",
                       namespaces={"v3": HL7_NS})


def find_text_phi(message) -> list[PhiHit]:
    """Exam texts of one visit message in which the screen finds anything: one hit per text and
    category, code ``PHI_TEXT_<CATEGORY>``, giving character offsets, never the text itself."""
    hits = []
    screen = default_screen()
    for node in _exam_texts()(message):
        findings = screen.find(node.text or "")
        by_category: dict[str, list[Finding]] = {}
        for f in findings:
            by_category.setdefault(f.category, []).append(f)
        for category, group in by_category.items():
            where = ", ".join(f"{f.start}-{f.end}" for f in group[:5])
            hits.append(PhiHit(
                f"PHI_TEXT_{category}",
                f"exam text holds what looks like {category.lower().replace('_', ' ')} "
                f"(characters {where}); redact it at the hospital (pacs has sync does)",
                location(node)))
    return hits
