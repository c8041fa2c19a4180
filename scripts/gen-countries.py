#!/usr/bin/env python3
"""Writes crates/entitle-server/src/identity/countries.rs from pycountry (ISO 3166-1):
every country's codes, the name people read, and every name people type for it (ISO
short and official names, the common name, comma-inverted and parenthesis-free forms,
and a hand list of everyday names such as "UK" or "Holland").

    python3 -m venv /tmp/pc && /tmp/pc/bin/pip install pycountry==26.2.16
    /tmp/pc/bin/python scripts/gen-countries.py

The output is committed: the build needs no Python.
"""
import re
import sys
import unicodedata

import pycountry

# Everyday names that ISO does not list, by alpha-2 code.
EVERYDAY = {
    "GB": ["UK", "U.K.", "Great Britain", "Britain", "England", "Scotland", "Wales",
           "Northern Ireland", "United Kingdom of Great Britain"],
    "US": ["USA", "U.S.A.", "U.S.", "America", "United States of America", "The States"],
    "NL": ["Holland", "The Netherlands"],
    "KR": ["South Korea", "Korea, South", "Republic of Korea"],
    "KP": ["North Korea", "Korea, North"],
    "CZ": ["Czech Republic"],
    "RU": ["Russia"],
    "IR": ["Iran", "Persia"],
    "SY": ["Syria"],
    "LA": ["Laos"],
    "VN": ["Vietnam"],
    "MD": ["Moldova"],
    "TZ": ["Tanzania"],
    "BO": ["Bolivia"],
    "VE": ["Venezuela"],
    "FM": ["Micronesia"],
    "MK": ["Macedonia", "FYROM"],
    "SZ": ["Swaziland"],
    "MM": ["Burma"],
    "CI": ["Ivory Coast"],
    "CV": ["Cape Verde"],
    "TL": ["East Timor"],
    "VA": ["Vatican", "Vatican City", "Holy See"],
    "TW": ["Taiwan", "Republic of China"],
    "CN": ["China", "People's Republic of China", "PRC", "Mainland China"],
    "CD": ["DR Congo", "DRC", "Congo-Kinshasa", "Democratic Republic of Congo"],
    "CG": ["Congo-Brazzaville", "Republic of Congo"],
    "TR": ["Turkey"],
    "AE": ["UAE", "Emirates"],
    "BN": ["Brunei"],
    "PS": ["Palestine"],
    "FK": ["Falklands", "Falkland Islands"],
    "VG": ["British Virgin Islands"],
    "VI": ["US Virgin Islands", "U.S. Virgin Islands"],
    "BA": ["Bosnia", "Bosnia-Herzegovina"],
    "TT": ["Trinidad"],
    "DO": ["Dominican Rep."],
    "CF": ["CAR"],
    "KN": ["St Kitts and Nevis", "St. Kitts"],
    "LC": ["St Lucia"],
    "VC": ["St Vincent"],
    "SX": ["St Maarten"],
    "MF": ["St Martin"],
    "PM": ["St Pierre and Miquelon"],
    "BL": ["St Barts", "St Barthelemy"],
    "SH": ["St Helena"],
    "GS": ["South Georgia"],
    "HM": ["Heard Island"],
    "AX": ["Aland"],
    "CW": ["Curacao"],
    "RE": ["Reunion"],
    "ST": ["Sao Tome and Principe"],
    "SJ": ["Svalbard"],
    "UM": ["US Minor Outlying Islands"],
}


def key(name):
    """What a typed name is compared on: no accents, no case, no punctuation, no
    leading "the", "&" as "and", "St" as "Saint" (the server does the same)."""
    text = unicodedata.normalize("NFD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower().replace("&", " and ")
    words = [w for w in re.split(r"[^0-9a-z]+", text) if w]
    words = ["saint" if w == "st" else w for w in words]
    if words and words[0] == "the":
        words = words[1:]
    return "".join(words)


def forms(name):
    """A name, its comma-inverted form ("Korea, Republic of" -> "Republic of Korea") and
    its forms with and without a parenthesized part."""
    out = {name}
    m = re.match(r"^(.*?)\s*\((.*)\)\s*$", name)
    if m:
        out |= {m.group(1), m.group(2), f"{m.group(2)} {m.group(1)}"}
    for n in list(out):
        if ", " in n:
            head, tail = n.split(", ", 1)
            out.add(f"{tail} {head}")
            out.add(head)
    return out


def readable(name):
    """ "Congo, The Democratic Republic of the" -> "The Democratic Republic of the Congo"."""
    if ", " not in name:
        return name
    head, tail = name.split(", ", 1)
    text = f"{tail} {head}"
    return text[0].upper() + text[1:]


rows = []
# A key names one country. Names ISO or everyday use give keys first; the forms derived
# from them (a comma-inverted name's head, a parenthesized part) only where no other
# country has the key, so "Congo" stays the Republic of the Congo's.
primary = {}
derived = {}
for c in sorted(pycountry.countries, key=lambda c: c.alpha_2):
    display = readable(getattr(c, "common_name", None) or c.name)
    given = [n for n in [c.name, getattr(c, "official_name", None), getattr(c, "common_name", None)] if n]
    given += EVERYDAY.get(c.alpha_2, [])
    main_keys = {key(n) for n in given} - {""}
    extra_keys = {key(f) for n in given for f in forms(n)} - {""} - main_keys
    for table, keys in [(primary, main_keys), (derived, extra_keys)]:
        for k in keys:
            table[k] = c.alpha_2 if table.get(k, c.alpha_2) == c.alpha_2 else None
    rows.append((c.alpha_2, c.alpha_3, c.numeric, display, sorted(main_keys | extra_keys)))
clashes = [k for k, v in primary.items() if v is None]
if clashes:
    sys.exit(f"names shared by two countries: {clashes}")
owner = dict(derived)
owner.update(primary)

out = [
    "//! ISO 3166-1 countries: codes, the name people read and every name people type.",
    "//! Written by scripts/gen-countries.py from pycountry; do not edit by hand.",
    "",
    "/// (alpha-2, alpha-3, numeric, name, keys of the names people type for it)",
    "pub const COUNTRIES: &[(&str, &str, &str, &str, &[&str])] = &[",
]
for a2, a3, num, display, keys in rows:
    keys = [k for k in keys if owner.get(k) == a2]
    quoted = ", ".join(f'"{k}"' for k in keys)
    display = display.replace('"', '\\"')
    out.append(f'    ("{a2}", "{a3}", "{num}", "{display}", &[{quoted}]),')
out.append("];")
path = "crates/entitle-server/src/identity/countries.rs"
with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(out) + "\n")
print(f"{len(rows)} countries, {sum(1 for v in owner.values() if v)} names -> {path}", file=sys.stderr)
