"""Built-in synthetic demo corpus of private-looking documents.

memlab measures how much a fine-tuned LLM memorizes its fine-tuning data. To
run fully offline it needs a corpus that no model can already know, so this
module generates fictional documents in a dozen genres (patient records,
memos, incident reports, letters, ...). Every name, place, number, date and
code is invented -- person and place names are assembled from syllables -- so
if a model reproduces the continuation of one of these documents verbatim, it
can only have learned it from the fine-tuning data.

A document is a title line, a header line and paragraphs of sentences. Each
genre has a pool of facts (the diagnosis, the budget overrun, the flight, ...);
a document states a random selection of them in random order, each through one
of several sentence templates, optionally opened or closed by a short clause.
Templates hold ``{slot}`` fields (fresh random values, or per-document values
in upper case such as ``{P}``, the main person), ``[a|b]`` alternatives (which
nest and may hold slots) and ``<macro>`` references; fixed text between two
slots or alternatives is at most four words.

Documents must not share text that a plagiarism metric would read as copied:
the generator remembers every word 7-gram (words: ``[a-z0-9]+`` of the
lowercased text, so punctuation neither splits nor hides a match) of the
documents made so far, and a sentence that would repeat one -- counting the
7-grams that span the previous sentence or the title and header -- from an
earlier document or from its own is drawn again (another template, other
values), and dropped after a few tries. Hence no 7-gram occurs in two documents,
nor twice in one (in a corpus of more than GUARD_DOCS documents: none within
GUARD_DOCS consecutive documents, so memory and time stay linear).

Standard library only; the output depends only on ``(num_docs, seed)`` (a
private ``random.Random``, no ``hash()``), and a shorter corpus is a prefix of
a longer one.
"""

from __future__ import annotations

import random
import re
from collections import deque
from collections.abc import Callable, Sequence
from typing import TypeVar
from zlib import crc32

T = TypeVar("T")

# ---------------------------------------------------------------- name parts
FIRST_A = ["Al", "Bel", "Cor", "Da", "El", "Fen", "Gar", "Hal", "Is", "Jor", "Kel", "Lir", "Mar",
           "Nev", "Or", "Pel", "Quin", "Ros", "Sel", "Tam", "Ul", "Vor", "Wen", "Yar", "Zel",
           "Ber", "Cas", "Dor", "Ev", "Fal", "Gil", "Hes", "Ior", "Lan", "Mir", "Ner", "Od",
           "Per", "Rav", "Sav", "Tor", "Ves"]
FIRST_B = ["a", "ina", "en", "or", "is", "ra", "eth", "ian", "elle", "o", "ynn", "ard", "ia",
           "us", "ette", "aro", "win", "ric", "ova", "ith"]
LAST_A = ["Thorn", "Vask", "Brell", "Mord", "Quill", "Harn", "Dov", "Ketter", "Lom", "Sarr",
          "Fenn", "Grav", "Ost", "Pell", "Rud", "Tamb", "Wex", "Yor", "Zand", "Cald", "Brack",
          "Dun", "Esk", "Garr", "Holl", "Jast", "Kren", "Mabb", "Noll", "Prest", "Rill", "Stov",
          "Tull", "Varr"]
LAST_B = ["wick", "ovar", "enholt", "asco", "mere", "isson", "ault", "berg", "quist", "ani",
          "ersby", "ello", "hardt", "ovic", "enne", "stad", "ington", "ley", "mont", "aker"]
CITY_A = ["Ash", "Brin", "Cal", "Dun", "Esk", "Fal", "Grim", "Hol", "Ivr", "Kest", "Lor", "Mel",
          "Nor", "Ost", "Pem", "Rav", "Sil", "Tor", "Ulm", "Ver", "Wyn", "Yarl", "Bram", "Cor",
          "Dren", "Fen", "Gael", "Harl", "Lin", "Mor"]
CITY_B = ["ford", "holm", "mouth", "vale", "bury", "stead", "wick", "ton", "more", "haven",
          "port", "dale", "combe", "ley", "field", "by"]
STREET_MID = ["brook", "field", "gate", "hill", "wood", "croft", "mill", "stone", "well", "moor"]
STREET_TYPE = ["Lane", "Road", "Street", "Avenue", "Close", "Terrace", "Row", "Crescent",
               "Walk", "Way"]
ORG_KIND = ["Biosystems", "Logistics", "Holdings", "Instruments", "Partners", "Foods",
            "Analytics", "Engineering", "Insurance", "Freight", "Textiles", "Labs", "Metals",
            "Clinics", "Couriers", "Surveys"]
DRUG_A = ["Tri", "Vel", "Oxa", "Lum", "Pra", "Zen", "Dor", "Cel", "Mab", "Quo", "Fel", "Ris"]
DRUG_B = ["vorin", "dazole", "mipril", "toxan", "fenac", "lumab", "quinol", "tarex", "semide",
          "pirone"]
PROD_A = ["Varn", "Quell", "Ostr", "Brix", "Lumo", "Tesk", "Nov", "Kyra", "Zeph", "Halo"]
PROD_B = ["ex", "on", "ia", "is", "ar", "o"]
LETTERS = "ABCDEFGHJKLMNPRSTVWXZ"
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "ninth"]


# ---------------------------------------------------------------- generators
# _ri/_ch are lean stand-ins for Random.randint/choice (one C call each); fast
# enough to build thousands of documents in a fraction of a second.
def _ri(r: random.Random, lo: int, hi: int) -> int:
    return lo + int(r.random() * (hi - lo + 1))


def _ch(r: random.Random, seq: Sequence[T]) -> T:
    return seq[int(r.random() * len(seq))]


FIRSTS = [a + b for a in FIRST_A for b in FIRST_B]
LASTS = [a + b for a in LAST_A for b in LAST_B]
CITIES = [a + b for a in CITY_A for b in CITY_B]
DATES = [f"{d} {m} {y}" for y in range(2004, 2030) for m in MONTHS for d in range(1, 29)]
TIMES = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)]


def _first(r: random.Random) -> str:
    return FIRSTS[int(r.random() * len(FIRSTS))]


def _last(r: random.Random) -> str:
    return LASTS[int(r.random() * len(LASTS))]


def _person(r: random.Random) -> str:
    return f"{FIRSTS[int(r.random() * len(FIRSTS))]} {LASTS[int(r.random() * len(LASTS))]}"


def _city(r: random.Random) -> str:
    return CITIES[int(r.random() * len(CITIES))]


def _street(r: random.Random) -> str:
    return f"{_ri(r, 1, 240)} {_ch(r, LAST_A)}{_ch(r, STREET_MID)} {_ch(r, STREET_TYPE)}"


def _org(r: random.Random) -> str:
    return f"{_last(r) if r.random() < 0.5 else _city(r)} {_ch(r, ORG_KIND)}"


def _code(r: random.Random) -> str:
    prefix = "".join(_ch(r, LETTERS) for _ in range(_ri(r, 2, 3)))
    return f"{prefix}-{_ri(r, 100, 99999)}"


def _amount(r: random.Random) -> str:
    value = _ri(r, 12, 250000)
    return f"${value:,}.{_ri(r, 0, 99):02d}" if r.random() < 0.3 else f"${value:,}"


def _pick(*options: str) -> Callable[[random.Random], str]:
    return lambda r: _ch(r, options)


def _num(lo: int, hi: int) -> Callable[[random.Random], str]:
    return lambda r: str(_ri(r, lo, hi))


def _dec(lo: float, hi: float, digits: int = 1) -> Callable[[random.Random], str]:
    return lambda r: f"{r.uniform(lo, hi):.{digits}f}"


SLOTS: dict[str, Callable[[random.Random], str]] = {
    "person": _person, "first": _first, "last": _last, "city": _city, "street": _street,
    "org2": _org, "code": _code, "amount": _amount,
    "fee": lambda r: f"${_ri(r, 12, 2400):,}.{_ri(r, 0, 99):02d}",
    "nm": _num(230, 900), "rpm": _num(50, 900), "deg": _num(-15, 38), "cold": _num(5, 40),
    "hot": _num(40, 85),
    "date": lambda r: DATES[int(r.random() * len(DATES))],
    "time": lambda r: TIMES[int(r.random() * len(TIMES))],
    "num": _num(2, 96), "big": lambda r: f"{_ri(r, 1000, 99999):,}",
    "year": _num(1952, 2023), "age": _num(4, 88), "pct": lambda r: f"{_ri(r, 2, 97)}%",
    "dec": _dec(0.2, 60.0), "dec3": _dec(0.01, 2.5, 3), "ph": _dec(5.5, 8.9),
    "temp": _dec(35.8, 40.2), "pulse": _num(52, 128), "wcc": _dec(3.0, 19.0),
    "bp": lambda r: f"{_ri(r, 100, 175)}/{_ri(r, 55, 105)}",
    "room": lambda r: f"{_ri(r, 1, 6)}{_ri(r, 1, 40):02d}{_ch(r, ['', '', 'A', 'B'])}",
    "drug": lambda r: _ch(r, DRUG_A) + _ch(r, DRUG_B),
    "dose": lambda r: f"{_ch(r, [5, 10, 20, 25, 40, 50, 100, 125, 250, 500])} mg",
    "product": lambda r: f"{_ch(r, PROD_A)}{_ch(r, PROD_B)} {_ch(r, LETTERS)}{_ri(r, 2, 990)}",
    "project": lambda r: _ch(r, CITY_A) + _ch(r, ["ix", "ara", "on", "el", "ium", "ova", "is"]),
    "phone": lambda r: f"0{_ri(r, 100, 999)} {_ri(r, 100, 999)} {_ri(r, 1000, 9999)}",
    "ext": _num(2000, 7999),
    "chip": lambda r: f"{_ch(r, ['RX', 'KT', 'MV', 'QL', 'ZB'])}{_ri(r, 100, 9999)}",
    "ver": lambda r: f"{_ri(r, 1, 9)}.{_ri(r, 0, 20)}.{_ri(r, 0, 99)}",
    "rev": lambda r: f"{_ch(r, 'ABCDEFG')}{_ri(r, 1, 9)}",
    "compound": lambda r: f"{_ch(r, LETTERS)}{_ch(r, LETTERS)}-{_ri(r, 100, 9999)}",
    "well": lambda r: f"{_ch(r, 'ABCDEFGH')}{_ri(r, 1, 12)}",
    "case": lambda r: f"{_ri(r, 2004, 2029)}-{_ch(r, LETTERS)}{_ch(r, LETTERS)}-{_ri(r, 100, 99999):05d}",
    "flight": lambda r: f"{_ch(r, LETTERS)}{_ch(r, LETTERS)} {_ri(r, 10, 9999)}",
    "seat": lambda r: f"{_ri(r, 1, 48)}{_ch(r, 'ABCDEF')}",
    "gate": lambda r: f"{_ch(r, 'ABCD')}{_ri(r, 1, 40)}",
    "restaurant": lambda r: f"{_last(r)} {_ch(r, ['Table', 'Kitchen', 'Grill', 'House'])}",
    "order": _num(1000000, 9999999), "last4": lambda r: f"{_ri(r, 0, 9999):04d}",
    "errcode": lambda r: f"E{_ri(r, 10, 999)}", "month": _pick(*MONTHS),
    "ordinal": _pick(*ORDINALS), "park": lambda r: f"{_city(r)} {_ch(r, ['Park', 'Common'])}",
    "symptom": _pick("chest pain", "a persistent cough", "dizziness", "abdominal pain",
                     "shortness of breath", "headaches", "a high fever", "joint swelling",
                     "back pain", "nausea", "palpitations", "blurred vision"),
    "condition": _pick("asthma", "diabetes", "a heart murmur", "anaemia", "hypertension",
                       "gout", "epilepsy", "glaucoma"),
    "dept": _pick("Finance", "Operations", "Legal", "Procurement", "Research", "Facilities",
                  "Cardiology", "Radiology", "Quality", "Sales", "Payroll", "Logistics"),
    "incident": _pick("chemical spill", "small fire", "power failure", "forklift collision",
                      "gas leak", "roof collapse", "flooding event", "steam release",
                      "conveyor jam", "scaffold failure"),
    "facility": _pick("Warehouse", "Building", "Hangar", "Plant", "Depot", "Yard", "Shed"),
    "injury": _pick("burn", "cut to the hand", "sprained ankle", "bruised shoulder",
                    "twisted knee", "scalded wrist"),
    "direction": _pick("north", "south", "east", "west", "northwest", "southeast"),
    "sev": _pick("1", "2", "3", "4"), "tier": _pick("2", "3"),
    "kind": _pick("handheld sensor", "smart thermostat", "portable speaker", "water meter",
                  "label printer", "soil probe", "dash camera", "pressure logger"),
    "use": _pick("field technicians", "small offices", "greenhouses", "cold-chain shipping",
                 "school labs", "fishing boats"),
    "committee": _pick("Finance", "Allotment", "Residents", "Steering", "Heritage", "Safety",
                       "Library", "Orchard", "Harbour"),
    "pet": lambda r: _ch(r, ["Biscuit", "Pepper", "Moss", "Tam", "Rook", "Juno", "Dill"])
    + _ch(r, ["", "y", "o"]),
    "field": _pick("botany", "optics", "navigation", "metallurgy", "cartography", "acoustics",
                   "geology", "horology"),
    "invention": _pick("rain gauge", "lens grinder", "loom shuttle", "barometer", "ship's log",
                       "seed drill", "sextant"),
    "instrument": _pick("spectrophotometer", "plate reader", "pH meter", "balance",
                        "thermal cycler"),
    "energy": _pick("A", "B", "C", "D", "E"),
    "topic": _pick("Expense Policy", "Office Move", "Budget Freeze", "Badge Access", "Audit",
                   "Travel Rules", "Parking", "Hiring Pause", "Laptop Recall", "Overtime"),
    "item": _pick("equipment", "travel", "software licences", "catering", "consultancy",
                  "furniture", "printing"),
    "issue": _pick("Device Not Charging", "Refund Request", "Missing Delivery", "Sync Failure",
                   "Screen Flicker", "Login Loop", "Billing Error"),
    "tests": _pick("a full blood count", "blood cultures", "a metabolic panel", "liver tests",
                   "a clotting screen", "thyroid tests"),
    "imaging": _pick("a chest film", "a CT scan", "an ECG", "an ultrasound", "an MRI"),
    "relative": _pick("sibling", "cousin", "parent", "grandparent", "brother", "sister"),
    "kin": _pick("a partner", "a daughter", "a son", "a friend", "a brother", "a sister"),
    "food": _pick("plum cake", "lentil soup", "ginger biscuit", "apple chutney", "fish pie"),
    "veg": _pick("tomatoes", "courgettes", "marrows", "beans", "onions"),
    "fix": _pick("roof", "boiler", "car", "fence", "chimney"),
    "part": _pick("a worn seal", "a cracked hose", "a loose coupling", "a failed relay",
                  "a blocked vent"),
    "ppe": _pick("gloves", "goggles", "a hard hat", "ear defenders", "a harness"),
    "surface": _pick("concrete", "steel", "tile", "oak"),
    "creat": _num(45, 900),
    "hrs": _num(2, 12), "kids": _num(2, 9),
    "ip": _pick("IP54", "IP65", "IP67", "IP68"), "tz": _num(1, 11), "floors": _num(1, 4),
    "mz": lambda r: f"{_ri(r, 100, 2000)}.{_ri(r, 0, 9999):04d}",
}

# ---------------------------------------------------------------- macros
# ``<name>`` in a template is replaced by the macro's text before parsing.
MACROS: dict[str, str] = {
    "when": "[on {date}|at {time} on {date}|on {date} at {time}]",
    "says": "[says|reports|notes|states]",
    "said": "[said|reported|noted|stated]",
    "about": "[about|roughly|around|some]",
    "by": "[by|before|no later than]",
    "dose_freq": "[twice daily|once daily|every {hrs} hours|at night|each morning]",
}

# ---------------------------------------------------------------- genres
# Each genre: title and header templates; optional first and last sentences; "lead" and
# "tail" clauses that may open or close a body sentence; "facts", each a list of templates
# stating the same fact in different ways. Templates start in lower case unless the first
# word is a name (the sentence's first letter is capitalised after filling) and carry no
# final full stop (added unless the template ends in ? or !). Upper-case slots are
# constant within a document. Fixed text between two slots or alternatives is at most four
# words (tests/unit/test_corpus.py checks it), and a name, date, code or amount comes every
# few words, so that any 7 words carry one and the n-gram guard rarely has to draw again.
GENRES: dict[str, dict] = {
    "patient_record": {
        "title": ["[Patient Record|Clinical Summary|Admission Note|Case Notes][ -|:] {P}",
                  "{P}: [inpatient record|clinical notes|admission summary]"],
        "header": ["[MRN|Hospital number|Record] {order} | [Admitted|Seen] {date} | [Ward|Bay|Unit] {room}",
                   "[Ward|Unit] {room} | [MRN|Record] {order} | Consultant Dr {person}"],
        "lead": ["on {date}, ", "at {time}, ", "per Dr {person}, ", "in note {code}, ",
                 "as charted by {person}, "],
        "tail": [", per Dr {person}", " (entry {code})", ", charted at {time}",
                 ", according to {person}"],
        "facts": [
            ["{P}, born {date}, presented to {C} [General|Royal|Infirmary] [complaining of|reporting|with] {symptom} [for|over] {num} days",
             "aged {age}, {P} [came to|attended] {C} [General|Royal] <when> with {num} days of {symptom}",
             "{Pf} was brought in by {person} at {time}, [describing|citing] {symptom} since {date}",
             "{symptom} [since|from] {date} [brought|led] {Pf} to the {C} [clinic|emergency unit] at {time}"],
            ["at {time} {Pf} had a temperature of {temp} C, [a pulse of|pulse] {pulse} and [blood pressure|BP] {bp}",
             "observations at {time}: [temperature|temp] {temp} C, [heart rate|pulse] {pulse}, [BP|blood pressure] {bp}, [saturation|sats] {pct}",
             "{Pf} had a pulse of {pulse} [and|with] [a blood pressure of|BP] {bp} when {person} [examined|assessed] [the patient|{Pf}] at {time}",
             "{person} [recorded|noted] [BP|blood pressure] {bp} and [a pulse of|pulse] {pulse} [at|around] {time}"],
            ["Dr {person} ordered {tests} and {imaging} at {time} (request {code})",
             "request {code}, signed by Dr {person} at {time}, [asked for|covered] {tests} [and|plus] {imaging}",
             "[tests|investigations] ordered by {person} <when> included {tests}",
             "{imaging} and {tests} were [requested|booked] [for|on] {date} [by|under] {person}"],
            ["the {date} [bloods|labs] [showed|gave] [a white count of|WCC] {wcc} and [CRP|a CRP of] {num} mg/L[, reviewed by {person}|]",
             "[CRP|C-reactive protein] [rose|fell] to {num} mg/L by {time} on {date}, with [a white count|WCC] of {wcc}",
             "{person} [flagged|phoned through] [a CRP of|CRP] {num} and [a white count of|WCC] {wcc} at {time}"],
            ["{drug} {dose} was [started|begun|prescribed] <dose_freq> [by Dr {person}|on {date}|from {time}]",
             "{Pf} [was started on|received] {drug} {dose} <dose_freq> [in|on] room {room}",
             "Dr {person} [prescribed|charted] {dose} of {drug} at {time}, [to be repeated|repeating] every {hrs} hours",
             "[the|a] {drug} [course|prescription] ({dose}, <dose_freq>) [began|started] on {date}"],
            ["{Pf} reported a [prior|known] allergy to {drug}, [first documented|first noted|recorded] at {city} in {year}",
             "[allergy alert|alert]: {drug} [caused|gave {Pf}] [a rash|hives|swelling] in {year}, per {person} of {city}",
             "{drug} is [contraindicated|to be avoided]: {Pf} [reacted|had a reaction] [to it|] in {year}[ at {city}|]"],
            ["family history [is notable for|includes] {person}, a {relative}, treated for {condition} in {year}",
             "{person}, a {relative} of {Pf}, [had|was treated for] {condition} at {city} in {year}",
             "{person} ({relative}) [has had|had] {condition} [since|from] {year}"],
            ["nursing notes from {date} record {num} episodes of {symptom} before {time}",
             "nurse {person} logged {num} [bouts|episodes] of {symptom} between {time} and {time}",
             "{symptom} [recurred|returned] {num} times [overnight|on {date}], [per|according to] nurse {person}"],
            ["a [consult|referral] [with|to] {dept} was [requested|sent] and {person} saw [the patient|{Pf}] at {time} [the following day|on {date}]",
             "{dept} ([Dr|registrar] {person}) reviewed {Pf} on {date} and [agreed with|changed] the plan",
             "{person} [from|of] {dept} [came|visited] at {time}[ on {date}|] [and|then] [advised|suggested] {imaging}"],
            ["imaging [reference|report] {code} [described|showed] a {num} mm [opacity|nodule|shadow], [read|reported] by {person}",
             "[the|a] [CT|chest film|scan] of {date} ({code}) [showed|found] a {num} mm [nodule|opacity], [reported|read] by {person}",
             "{person} [read|reported] {code}: [no|one] [nodule|opacity|effusion] [at|over] {num} mm"],
            ["{Pf} lives at {street}, {C}, with {kin}, {person}, [listed|named] as next of kin",
             "next of kin: {person}, of {street}, {city}, [phone|tel] {phone}",
             "{person} ({kin}) [at|of] {street} [is|will be] [the contact|next of kin] [on|at] {phone}"],
            ["discharge was [planned|set] for {date} with [a follow-up|review] in clinic {room} in {num} weeks",
             "{Pf} [went home|left the ward|was discharged] on {date} at {time}, with {drug} {dose} for {num} days",
             "[home|discharge] [on|from] {date} [if|provided] {person} [agrees|signs off][; clinic {room} in {num} weeks|]"],
            ["insurance [details were confirmed|was verified] under policy {code} [held|taken out] with {org2}",
             "[cover|billing] [runs|goes] through {org2}, policy {code}, [expiring|renewed] {date}",
             "{org2} [confirmed|approved] cover [under|for] {code} at {time} on {date}"],
            ["{drug} was [reduced|lowered|cut] to {dose} [by {person}|on {date}] after a creatinine of {creat}",
             "creatinine [reached|rose to] {creat} umol/L on {date}, so {person} [halved|reduced] {drug} to {dose}",
             "{person} [cut|reduced] {drug} to {dose} [once|when] creatinine [hit|reached] {creat} at {time}"],
            ["{Pf} [walked|mobilised] {num} metres [with|without] [a frame|help] on {date}, [observed|supervised] by physio {person}",
             "physio {person} [got|had] {Pf} [walking|on the stairs] [at|by] {time} on {date}"],
            ["[moved|transferred] from bay {room} to room {room} at {time} on {date} [at the request of|by] {person}",
             "{person} [asked for|arranged] a move to room {room} [on|late on] {date}"],
            ["{Pf} [is|was] [nil by mouth|on a soft diet|on fluids only] from {time} on {date}, [per|as ordered by] {person}",
             "{person} [allowed|restarted] [food|a light diet|oral fluids] at {time}[ on {date}|]"],
            ["[pain|the pain score] [was|fell to|rose to] {num} [of|out of] 100 at {time}[, after {drug}|]",
             "{Pf} [rated|scored] the pain at {num} [of|out of] 100 [to|for] nurse {person}"],
        ],
    },
    "internal_memo": {
        "title": ["[MEMO|Memo|Internal memo|Staff notice] {code}: {topic}",
                  "{topic}[ -|:] [memo|notice] {code}"],
        "header": ["From: {P} | To: [all staff at|the {dept} team at|managers at] {ORG} | [Date|Sent]: {date}",
                   "{ORG} | {P}, {dept} | {date}"],
        "last": ["[Regards|Thanks|With thanks], {P}[| ({dept})]",
                 "{P}, {dept}, {ORG}[| ({ext})]"],
        "lead": ["effective {date}, ", "as of {time} on {date}, ", "following note {code}, ",
                 "at the request of {person}, ", "per {person} in {dept}, "],
        "tail": [", per {person}", " (ref {code})", ", effective {date}",
                 ", says {person} of {dept}"],
        "facts": [
            ["[all|any] requests for {item} above {amount} must be approved by {person} in {dept}",
             "{person} in {dept} [will now sign off|now approves] any {item} over {amount} from {date}",
             "[spending|orders] on {item} [beyond|over|exceeding] {amount} [need|require] [a signature from|sign-off by] {person}",
             "from {date}, {item} [costs|bills] over {amount} go to {person} [for approval|to approve]"],
            ["this follows [the|a] review of {project} by {person}, which [found|showed] a {pct} overspend",
             "[project|programme] {project} [ran|went] {pct} over its {month} budget, [according to|per] {person}",
             "the {project} [overspend|overrun] of {amount} ({pct}) was [flagged|raised] by {person} on {date}"],
            ["staff at {C} should submit [outstanding|pending] claims [through|via|on] form {code} before {date}",
             "[claims|receipts] from {month} [go|must go] [through|on] form {code} <by> {date}, {C} staff included",
             "{person} [collects|processes] {C} claims on form {code} until {date}"],
            ["from {date}, {org2} [rewires|repaints|reheats] the {ordinal} floor; rooms {room} to {room} close",
             "{org2} [starts|begins] work on the {ordinal} floor <when>, [closing|shutting] rooms {room} to {room}"],
            ["[questions|queries] [may|can] go to {person} on extension {ext} [until|before] {date}",
             "[ring|call|email] {person} (extension {ext}) [with|for] any [questions|queries] before {date}"],
            ["{num} {dept} laptops [are still missing|remain unaccounted for] after {person} [audited|checked] them on {date}",
             "the audit of {date} [found|turned up] {num} [missing|untraced] laptops, [asset tags|tags] {code} onward, [in|from] {dept}",
             "{person} [still cannot trace|is still chasing] {num} {dept} laptops, [last seen|logged] on {date}"],
            ["{person} [has agreed|agreed] to lead the {project} [working group|project] until {month}[, when {person} takes over|]",
             "[until|pending] {month}, the {project} group [reports to|is chaired by] {person} [of|from] {dept}"],
            ["the [revised|new] [travel allowance|hotel limit] for {city} is {fee} per night[, breakfast included|]",
             "[nights|stays] in {city} [now attract|are now capped at] {fee}, [down|up] from {fee}"],
            ["[our|the] headcount in {C} [currently stands at|is now] {big}, against a plan of {big}",
             "{C} [employs|has] {big} people [today|as of {date}], [versus|compared with] {big} planned"],
            ["[access badges|old badges] issued before {date} [will stop|stop] working at {time} on {date}",
             "[badge|card] [series|batch] {code} [expires|stops working] at {time} on {date}[; see {person} for a new one|]"],
            ["a summary of [the|our] {project} lessons, [prepared|written] by {person}, is [filed|saved] under {code}",
             "{person} [wrote up|compiled] the {project} [review|post-mortem] ({code}, {num} pages)"],
            ["[departments|teams] [not compliant|that fail to comply] by {date} [will have|face] [budgets|discretionary budgets] [frozen|capped] at {amount}",
             "[any|a] [team|department] [not compliant|still non-compliant] on {date} [loses|forfeits] {amount} [of|from] its {month} budget"],
            ["thank you to {person} and {person} for [compiling|checking] the figures in {num} days",
             "[thanks|credit] [go|goes] to {person} ({dept}) and {person} for [the|these] {month} figures"],
            ["[exceptions|any exception] [go|goes] in log {code}, countersigned by {P} within {num} days",
             "[log|record] any exception [under|as] {code}; {P} [countersigns|reviews] [each one|them] within {num} days"],
            ["[parking|car park] [bays|spaces] {num} to {num} at {C} [are reserved|go] to {dept} from {date}",
             "{dept} [loses|keeps] [bays|spaces] {num} to {num} [from|after] {date}, [confirms|says] {person}"],
            ["[mandatory|compulsory] {topic} training [runs|takes place] on {date} at {time} in room {room}, [led|run] by {person}",
             "{person} [runs|leads] {topic} [sessions|training] in room {room} [on|from] {date}[, {num} places|]"],
        ],
    },
    "incident_report": {
        "title": ["[Incident Report|Incident|Safety Incident] {code}[ -|:] {C} {facility}",
                  "{C} {facility} {num}: [incident|event] {code}"],
        "header": ["[Reported by|Filed by] {P} | {date} at {time} | [Severity|Level] {sev}",
                   "{P} | {date}, {time} | [Severity|Category] {sev} | [Site|Area] {room}"],
        "lead": ["at {time}, ", "on {date}, ", "according to {person}, ", "per witness {person}, ",
                 "per log {code}, "],
        "tail": [", per {person}", " (log {code})", ", logged at {time}",
                 ", according to the {C} log"],
        "facts": [
            ["at [approximately|about|around] {time} on {date}, a {incident} was [reported|detected] at {facility} {num}, {C}",
             "a {incident} [occurred|broke out|was detected] in {facility} {num}, {C}, [shortly before|just after] {time}",
             "{person} [raised the alarm|reported] a {incident} [near|beside|at] bay {room} at {time}"],
            ["[the first responder|first on scene], {person}, isolated bay {room} and [notified|called] {person} at {time}",
             "{person} [was first on scene|arrived first] at {time}, [cordoned off|closed] bay {room} and [phoned|called] {person}"],
            ["{num} [employees|staff] were evacuated to [assembly point|point] {code} and [accounted for|counted] by {time}",
             "[a roll call|the headcount] at point {code} [confirmed|found] all {num} [staff|workers] [by|at] {time}"],
            ["[initial|early] inspection [found|showed] valve {code} [partially|fully] open since the {time} shift change",
             "valve {code} was [found|discovered] [partly|wide] open by {person}, [probably|likely] since {time}"],
            ["[estimated|expected] damage to equipment is {amount}, excluding {big} units of lost production",
             "[losses|damage] [come to|total] {amount}[, plus {big} units of lost output|] [according to|per] {person}"],
            ["contractor {person} of {org2} [stated|said] that lockout tag {code} was missing at {time}",
             "{org2} [crew lead|supervisor] {person} <says> tag {code} [was gone|had vanished] [by|at] {time}"],
            ["{person} was treated [on site|by {person}] for a {injury}, [back at work|returning] on {date}",
             "[one|a] [worker|technician|driver], {person}, [suffered|sustained] a {injury}[; first aider {person} attended|]"],
            ["CCTV camera {num} [recorded|caught] the event; {person} [saved|secured] the footage as {code}",
             "[footage|video] from camera {num}, [covering|spanning] {time} to {time}, [is held|was saved] as {code}"],
            ["[the root cause analysis|root cause work], led by {person}, [identified|found] {part} [on|in] unit {code}",
             "{person} [traced|linked] the {date} [failure|event] to {part} [on|in] valve {code}"],
            ["{person} [will retrain|is to retrain] {num} operators and [replace|swap] {num} sensors on line {num} by {date}",
             "[line|cell] {num} [gets|will get] {num} new sensors by {date}, and {num} [operators|staff] [will be|are to be] retrained"],
            ["[ambient temperature|the temperature] at {time} was {deg} C, [wind|with wind] {direction} {num} km/h [per|at] {org2}",
             "[conditions|weather] at {time}: {deg} C, [wind|gusts] {direction} {num} km/h[, light rain|, dry|]"],
            ["a [similar|comparable] [event|{incident}] was [recorded|logged] at {city} in {year} ({code})",
             "{city} [had|logged] a [comparable|near-identical] {incident} in {year} ({code})"],
            ["inspector {person} [visited|came to] [the site|{C}] on {date} [for|representing] the regulator",
             "inspector {person} [attended|came] on {date} at {time}, [from|for] the {city} [safety authority|regulator]"],
            ["the [safety|operations|site] review on {date}, chaired by {P}, [will|is to] [consider|discuss] this report",
             "{P} [chairs|will chair] the review on {date}; [comments|objections] to {person} [by|before] {time}"],
            ["{person} [was|had been] wearing {ppe} [rated|marked] {code}[ at the time|]",
             "{person} [had not been|was not] issued {ppe} [by|before] {date}, [says|according to] {person}"],
            ["[production|the line] [stopped|halted] at {time} and [restarted|resumed] at {time} on {date}[, after checks by {person}|]",
             "{num} hours of [output|production] [were lost|went] before {person} [restarted|reopened] line {num}"],
        ],
    },
    "product_spec": {
        "title": ["[Product Specification|Spec Sheet|Technical Specification]: {product}",
                  "{product}[ -|:] [specification|design spec|requirements]"],
        "header": ["Document {code} | Revision {rev} | Owner {P} | {ORG}",
                   "{ORG} | [Doc|Spec] {code} rev {rev} | {P} | {date}"],
        "lead": ["per drawing {code}, ", "as of revision {rev}, ", "according to {person}, ",
                 "in test {code}, ", "since {date}, "],
        "tail": [", per {person}", " (see {code})", ", revision {rev}", ", as tested on {date}"],
        "facts": [
            ["the {product} is a {kind} [designed|built] for {use} [and weighs|weighing] {big} grams",
             "[built|intended] for {use}, the {product} {kind} weighs {big} grams[ bare| empty|]"],
            ["housing dimensions are {num} x {num} x {num} mm, [tolerance|with tolerance] {dec} mm",
             "the [enclosure|case|housing] [measures|is] {num} by {num} by {num} mm ([tolerance|tol] {dec} mm)"],
            ["[rated power draw|the rated draw] of the {product} is {dec} W [idle|at idle], {dec} W [under load|at full load]",
             "{person} measured {dec} W [idle|at rest] and {dec} W [flat out|at peak] on {date}"],
            ["the main controller [is|will be] [the|a] {chip}, running firmware {ver}",
             "firmware {ver} [runs on|targets] a {chip}[, signed off by {person}|]"],
            ["[battery capacity is|the battery holds] {big} mAh, [providing|giving] <about> {num} hours [of use|in operation]",
             "a {big} mAh [cell|pack] [gives|yields] <about> {num} hours [of use|in the field|per charge]"],
            ["the {product} [operates|works] from minus {cold} C to {hot} C[, tested by {person}| per {code}]",
             "between minus {cold} C and {hot} C, [at|up to] {pct} humidity, [the {product}|it] [must|should] [keep working|work]"],
            ["{org2} [verified|confirmed] {ip} [sealing|for the enclosure] on {date} ({code})",
             "{org2} [certified|verified] {ip} [sealing|ingress protection] on {date} [(report {code})|under {code}]"],
            ["target [bill of materials|BOM] cost is {amount} at {big} units [per year|a year]",
             "at {big} units [a year|per annum], {person} [caps|holds] [BOM|parts] cost [under|below] {amount}"],
            ["the {product} radio ({chip}) [uses|defaults to] channel {num} and pairs [with|up to] {num} devices",
             "[up to|at most] {num} [devices|peers] [can pair|may connect] with the {product} on channel {num}"],
            ["{person} [approved|signed off] [the pinout|pin map] {code} on {date}",
             "drawing {code} ([pinout|pin map], rev {rev}) [was approved|got approval] [by|from] {person} on {date}"],
            ["pilot production [is scheduled|starts] at the {C} factory [beginning|from] {date}",
             "{C} [starts|begins] a pilot run of {big} units [on|from] {date}[ under {person}|]"],
            ["test {code} [drops|dropped] the {product} {num} times from {dec} m onto {surface}",
             "{person} [saw|found] no [damage|faults] after {num} drops [from|at] {dec} m in test {code}"],
            ["this model replaces the {product}, [end of life|discontinued] [as of|from] {date}",
             "the {product} [reaches|hits] end of life on {date}[; this unit replaces it|]"],
            ["{person} tracks [open issues|bugs] in the {project} backlog under epic {code}",
             "[epic|ticket] {code} [in|on] the {project} board [holds|lists] {num} open issues for {person}"],
            ["the display [is|measures] {dec} inches [at|with] {big} [nits|lux] [and|plus] {num} [dimming steps|brightness levels]",
             "a {dec} inch [screen|panel] from {org2} [reaches|gives] {big} nits[ in sunlight|]"],
            ["[certification|approval] [under|against] standard {code} is [due|expected] {date}, [managed|handled] by {person}",
             "{person} [expects|plans for] [certification|sign-off] {code} [by|before] {date}"],
        ],
    },
    "meeting_minutes": {
        "title": ["Minutes of the {committee} Committee[| Meeting], {date}",
                  "[Minutes|Meeting notes]: {committee} Committee, {date}"],
        "header": ["[Location|Venue]: {ORG} offices, {C} | Chair: {P} | [Attendees|Present]: {num}",
                   "{C}, {ORG} | {P} [in the chair|presiding] | {num} present"],
        "first": ["the chair, {P}, opened the meeting at {time} [and confirmed|confirming] a quorum of {num}",
                  "{P} [opened|started] [proceedings|the meeting] at {time} with {num} members present[, a quorum|]",
                  "with {num} members [in the room|present] at {time}, {P} [opened the meeting|began]"],
        "last": ["the meeting closed at {time}",
                 "{P} closed the meeting at {time}[; next meeting {date}|]",
                 "[business|proceedings] ended at {time}, {num} minutes [late|over time|early]"],
        "lead": ["at {time}, ", "on the motion of {person}, ", "before the break at {time}, ",
                 "as {person} noted, "],
        "tail": [", according to {person}", " (action {code})", ", minuted by {person}",
                 " at {time}"],
        "facts": [
            ["apologies were received from {person} and {person}",
             "{person} and {person} [sent apologies|could not attend][; {person} deputised|]"],
            ["the minutes of {date} were approved, [corrected|amended] by {person} at item {num}",
             "[with|after] {person}'s correction[ to item {num}|], the {date} minutes were [approved|signed]"],
            ["{person} [presented|gave] the [treasurer's report|accounts]: {amount} [in hand|in the bank] on {date}",
             "the balance [stood at|was] {amount} on {date}, [according to|per] treasurer {person}"],
            ["item {num}, the [renovation|repair] of the {city} [premises|hall], [was deferred|waits] until {org2} [quotes|sends a quote]",
             "[quotes|estimates] from {org2} for the {city} [roof|hall|premises] [are still awaited|have not arrived]; item {num} [deferred|held over]"],
            ["{person} moved a fee of {fee}, seconded by {person}; [carried|passed] {num} to {num}",
             "[a|the] {fee} fee ([moved by|from] {person}, seconded by {person}) [carried|passed|failed] {num} to {num}"],
            ["action {code}: {person} [circulates|sends round] the {month} [schedule|rota] to {person} by {date}",
             "{person} [will|agreed to] [circulate|send round] [a|the] {month} [schedule|budget|rota] by {date} (action {code})"],
            ["[attendance|turnout] at the {date} workshop [fell|dropped] to {num}, [says|per] {person}",
             "only {num} people came to the {month} [workshop|open day|fair] at {C}, [against|versus] {num} in {year}"],
            ["{person} raised [a concern|concerns] about the {project} contract, which expires on {date}",
             "the {project} contract [ends|expires|runs out] on {date}, [warned|noted] {person}"],
            ["{person} [wants|asked for] advice from {org2} [before|ahead of] a [parking|guest|retention] vote on {date}",
             "the [parking|guest|retention] vote [moves|was moved] to {date} [at the request of|for] {person}"],
            ["the committee thanked {person} for {num} years [of service|] as [secretary|treasurer]",
             "{person} [steps|stepped] down after {num} years [as|in the role of] [secretary|treasurer][; {person} takes over|]"],
            ["{person} [proposed|suggested] [meeting|that we meet] again on {date} at {time}[, room {room}|]",
             "[next meeting|the next session]: {date}, {time}, room {room}"],
            ["under any other business, {person} reported {num} volunteers for the {city} [event|fair]",
             "{num} volunteers [have|had] [signed up|registered] for the {city} [event|fair|clean-up], <said> {person}"],
            ["{person} asked that {amount} of [unspent|unused] grant be returned to {org2} before {date}",
             "{amount} [unspent|left over] [goes|must go] back to {org2} by {date}, <said> {person}"],
            ["[a letter|correspondence|an email] from {person} of {org2} [dated|received] {date} was [noted|read out|tabled]",
             "{person} [wrote|emailed] on {date} [about|regarding] the {city} [lease|hall|grant][; noted|]"],
            ["membership [now stands at|is] {big}[, with {num} new members since {month}|]",
             "{num} new members [joined|signed up] since {date}, [bringing|taking] the total to {big}"],
        ],
    },
    "personal_letter": {
        "title": ["Letter from {P} to {R}", "[A letter|A note|Letter] to {R} from {P}",
                  "{P} to {R}, {date}"],
        "header": ["{street}, {C}, {date}", "{C}, {street}, {date}"],
        "first": ["dear {R}, [I hope|hoping] [you are well|all is well] [in {D}|at {street}] [since|after] {date}",
                  "dear {R}, [thank you|thanks] for [the letter|your card|the parcel] of {date}[, which arrived on {date}|]",
                  "[my dear|dearest|dear] {R}, [your news|the letter] of {date} [was lovely|was a treat]"],
        "last": ["[With love|Yours as ever|Warmly|Love to all], {Pf}",
                 "[write soon|do write back], {R}[; love|, with love] from {Pf}"],
        "lead": ["on {date}, ", "as {first} says, ", "as {first} put it, "],
        "tail": [", {R}", " (ask {first})", ", as {first} would say"],
        "facts": [
            ["{first} [was cheered by|loved] [your letter|the card] of {date} and [hopes|asks] you visit {street} in {month}",
             "{first} [keeps asking|asks daily|wants to know] [whether|if] {R} [will|can] visit {C} in {month}"],
            ["the garden at {street} [finally produced|gave us] {num} {veg} [this year|by {date}]",
             "{first} [grew|picked] {num} {veg} [at|on] {street}[, a record|]",
             "{num} {veg} [came|have come] out of the {street} garden since {date}"],
            ["aunt {first} [sends love|says hello]; the {food} recipe [came from|is from] {person} of {city}",
             "the {food} recipe (from {person}, {year}) [is|comes] [enclosed|on the back][; aunt {first} sends love|]"],
            ["I started [the new job|work] at {org2} on {date}; my manager, {person}, seems [decent|fair] enough",
             "{org2} [hired me|took me on] [as of|starting] {date}; [the boss|my manager], {person}, [seems fair|is decent enough]"],
            ["the rent [went up|rose] to {fee} [monthly|a month]; I [might|may] take {person}'s flat on {street}",
             "the rent on {street} is now {fee}, so I [might|may] move to {city}"],
            ["do you remember {city} in {year}, when we missed the {time} ferry?",
             "[I still laugh about|who could forget] {city} in {year} and [that|the] {time} ferry we missed"],
            ["{first} and {first} [finally set|have set] the wedding for {date}, [at|in] {city}",
             "the wedding of {first} and {first} [is|will be] on {date} [in|at] {city}[, chapel at {time}|]"],
            ["a cheque for {fee} [is enclosed|comes with this] toward the {fix}, since {person} quoted {fee}",
             "[here is|enclosed is] {fee} for the {fix}, {R}[; no arguing|]"],
            ["since {date}, {person} (the physio on {street}) has [helped|fixed] my [knee|back|shoulder]",
             "{person} (physio, {street}) [has sorted out|fixed] my [knee|back|shoulder] since {date}"],
            ["the dog, {pet}, is {num} [now|today] and still steals [socks|bread|gloves] from {first}",
             "{pet} [turned|is now] {num} [on|as of] {date} and [still|now] [chews|steals] [socks|gloves]"],
            ["[call|ring] me on {phone} [after|from] {time}[, or write to {street}|]",
             "my [new|] number is {phone}[; try after {time}|]"],
            ["[{first} and I|we] [are saving|have saved] {fee} for {city} in {month}",
             "{fee} [saved|put by] [so far|already] toward {city} in {month}[, {first} permitting|]"],
            ["did you [ever hear back|hear] from {person} about the {city} job?",
             "[any news|what happened] [about|with] the {city} job and {person}?"],
            ["the {last} [family|couple] at number {num} [moved|left] on {date} and {person} [bought|took] the house for {amount}",
             "{person} [bought|has taken] number {num} from the {last} [family|couple][, paying {amount}|]"],
            ["{first} [is|has been] in {city} hospital since {date}, [ward|bed] {room}, [recovering|doing better]",
             "[we visited|I saw] {first} [on|in] [ward|bed] {room} at {city} on {date}[; much better|]"],
        ],
    },
    "biography": {
        "title": ["{P} ({BY}-{DY}): A Short Biography",
                  "[The life of|A life of|Remembering] {P}, {BY} to {DY}",
                  "{P}, [{field}|instrument maker|inventor] ({BY}-{DY})"],
        "header": ["Compiled by {person} for the {C} [Historical Register|Local History Society|Archive], entry {code}",
                   "{C} [Register|Archive] {code} | [compiled|written] by {person}, {year}"],
        "first": ["{P} was born in {city} in {BY}, the {ordinal} of {kids} children of {person} and {person}",
                  "born in {city} in {BY}, {P} was the {ordinal} child of {person}[ and {person}|]",
                  "{person} and {person} [of|from] {city} [welcomed|had] {P}, [their|the] {ordinal} child, in {BY}"],
        "last": ["{Pl} died at {street}, {C}, in {DY}, aged {AGE}; [the papers|the notebooks] [are in|fill] [box|archive box] {code}",
                 "{Pl} died in {DY}, aged {AGE}; [the papers|the notebooks] [survive|are kept] in box {code} [at|in] {C}"],
        "lead": ["in {year}, ", "by {year}, ", "according to {person}, ", "around {year}, ",
                 "as {person} later [wrote|recalled], "],
        "tail": [", according to {person}", " (register {code})", ", as {person} recalled in {year}"],
        "facts": [
            ["{Pl} attended the {city} Grammar School, where {person} [encouraged|sparked] an interest in {field}",
             "at {city} [Grammar School|Academy], {person} [taught|introduced] young {Pf} [to|in] {field}"],
            ["in {year} {Pl} moved to {C} to apprentice with {person}, [an instrument maker|a clockmaker]",
             "{Pl} [was apprenticed|went as apprentice] to {person} of {C} in {year}[, aged {age}|]"],
            ["patent {big}, [the first|an early one], covered [an improved|a new] {invention} [and was granted|granted] on {date}",
             "patent {big} ([granted|issued] {date}) [protected|covered] {Pl}'s [improved|new] {invention}"],
            ["{Pl} married {person} in {year}; [the couple|they] had {kids} children [and lived|living] at {street}",
             "[marriage|the wedding] to {person} [came|followed] in {year}, [and|then] {kids} children [at|on] {street}"],
            ["during the {city} flood of {year}, {Pl} [organized|ran] [a relief committee|a relief fund] that housed {num} families",
             "[when|as] {city} flooded in {year}, {Pf} [housed|sheltered] {num} families[ at {street}|]"],
            ["a royalty dispute with {org2} [began|started] in {year} and [ended|was settled] for {amount}",
             "{org2} settled the [royalty|patent] dispute for {amount} in {year}, after {num} years"],
            ["{person} remembered {Pf} as [precise|exacting] and [generous|kind] in a {year} [profile|memoir]",
             "[a|the] {year} profile by {person} [called|described] {Pf} as [precise|exacting], [stubborn|proud] and [generous|kind]"],
            ["{Pl} served {num} terms on the {C} council, chairing [its|the] {committee} committee [from|after] {year}",
             "[elected|voted] to the {C} council in {year}, {Pl} [later chaired|ran] the {committee} committee"],
            ["the {Pl} Medal for {field} [was established|was founded] by {org2} in {year}",
             "{org2} [created|founded|endowed] [a medal|an annual prize] for {field} in {year}, named for {Pf}"],
            ["a collection of {num} letters between {Pl} and {person} [was donated|went] to the {city} library in {year}",
             "{num} letters to {person} [survive|were found] [in|at] the {city} library, [donated|given] in {year}"],
            ["in later life {Pf} taught {field} to evening classes [at {city}|in {C}] of up to {num} students",
             "{Pf}'s evening [classes|lectures] on {field} [drew|attracted] [up to|as many as] {num} students [by|around] {year}"],
            ["a fire at {street} in {year} destroyed {num} [instruments|clocks] and notebooks [kept|written] since {year}",
             "{num} [instruments|clocks] [burned|were lost] [when|as] the {street} workshop caught fire in {year}"],
            ["{Pf} travelled to {city} in {year}, showing the {invention} to {num} [members|fellows] [of|at] {org2}",
             "[before|in front of] {num} [members|fellows] [in|at] {city}, {Pf} [demonstrated|showed off] the {invention} on {date}"],
            ["[a|one] [voyage|journey] to {city} in {year} [took|lasted] {num} weeks and [yielded|produced] {num} [sketches|notebooks]",
             "{Pf} [spent|passed] {num} weeks [in|around] {city} in {year}, [sketching|surveying] [for|with] {person}"],
            ["[a|the] portrait of {Pf} by {person}, [painted|made] in {year}, [hangs|is kept] in the {C} [town hall|museum]",
             "{person} [painted|drew] {Pf} in {year}; [the picture|the portrait] [now hangs|is now] in {C}"],
        ],
    },
    "lab_notebook": {
        "title": ["Lab Notebook {code}, page {num}",
                  "[Notebook|Lab book] {code} [p|page] {num}: [assay|extraction|culture] notes"],
        "header": ["Researcher: {P} | {ORG} | {DT}", "{ORG} | {P} | {DT} | [bench|room] {room}"],
        "last": ["Signed off by {P}, witnessed by {person} on {DT}",
                 "{P} [signed|initialled] at {time}; witness {person}, {DT}"],
        "lead": ["at {time}, ", "per {person}, ", "in run {code}, ", "for batch {code}, "],
        "tail": [" (run {code})", ", per {person}", " at {time}", ", see page {num}"],
        "facts": [
            ["prepared {num} mL of buffer {code} at pH {ph}; stored at {deg} C [from|since] {time}",
             "buffer {code} (pH {ph}, {num} mL) [made up|prepared] at {time}[, kept at {deg} C|]"],
            ["sample {compound} was incubated with {compound} at {dec} uM for {num} minutes",
             "{compound} [plus|with] {dec} uM {compound}, {num} min at {deg} C"],
            ["absorbance at {nm} nm read {dec3} in well {well}, [versus|against] {dec3} for the control",
             "well {well} [read|gave] {dec3} at {nm} nm[, control {dec3}|]"],
            ["{person} [noted|found] that [the|a] centrifuge in room {room} [was running|ran] {rpm} rpm below setpoint",
             "centrifuge {chip} in room {room} [ran|was] {rpm} rpm [slow|under setpoint], [flagged|spotted] by {person}"],
            ["[repeated the|redid the] extraction [using|with] {num} mg of [tissue|liver tissue] from batch {code}; yield {dec} mg",
             "batch {code}: {num} mg tissue [in|gave] {dec} mg [out|yield][ on repeat|]"],
            ["on the {date} gel, lane {num} [shows|has] a [faint|clear] band near {num} kDa",
             "[a faint|a strong|one] band [near|at] {num} kDa [in|on] lane {num}, [new since|absent on] {date}"],
            ["the {instrument} was recalibrated by {person} at {time} after a drift of {dec} units",
             "{person} [recalibrated|reset] the {instrument} ([drift|offset] {dec}) at {time}"],
            ["hypothesis: {compound} [inhibits|blocks] the target only above {dec} uM; test on {date}",
             "[idea|to test] on {date}: [does|maybe] {compound} [only work|act] above {dec} uM"],
            ["cell line {compound} at passage {num} looked [healthy|fine], [with|at] {pct} confluence",
             "{compound} cells, passage {num}, <about> {pct} confluent [at|by] {time}"],
            ["ordered {num} [units|kits] of reagent {code} from {org2}, quoted at {fee}",
             "{org2} [quote|order] {code}: {num} [units|kits] [at|for] {fee}[, due {date}|]"],
            ["discussed results with {person}; [agreed to|we will] drop condition {code} from the next run",
             "{person} [and I|agreed we should] [drop|dropped] condition {code}[ after {time}|]"],
            ["freezer {num} alarm sounded at {time}; samples moved to rack {well} in freezer {num}",
             "[alarm on|alarm from] freezer {num} at {time}: [racks|samples] [moved|shifted] to {well}[ by {person}|]"],
            ["mass spec run {code} ({person}, {time}) [returned|gave] m/z {mz} [as|for] the parent ion",
             "[MS|mass spec] {code}: [parent|main] ion m/z {mz}[, fragment at {mz}|]"],
            ["pipette {chip} [failed|passed] its check ({dec} uL off) [on|at] {time}",
             "{person} [checked|serviced] pipettes {chip} and {chip} on {date}"],
            ["plate {code} [map|layout]: [controls|blanks] in {well} to {well}, samples from {well}",
             "[controls|blanks] [sit|went] in wells {well} to {well} of plate {code}"],
        ],
    },
    "legal_notice": {
        "title": ["[Notice of Petition|Notice of Claim|Hearing Notice|Public Notice]: Case {case}",
                  "Case {case}[ -|:] [notice of hearing|petition|claim]"],
        "header": ["[District|County|Civil] Court of {C} | Filed {date}[, Judge {person}|]",
                   "{C} [District|County] Court | {date} | [clerk|registrar] {person}"],
        "first": ["[notice is hereby given|take notice] that {P}, of {street}, {C}, has [filed|lodged] [a petition|a claim] [with|before] Judge {person}",
                  "{P} of {street}, {C}, [has filed|filed] [a petition|a claim] (case {case}) on {date}",
                  "[take notice|be advised] that {P}, [residing at|of] {street}, [has brought|brings] case {case}"],
        "last": ["dated at {C} on {date}; clerk {person}, [by court order|for the court]",
                 "[by court order|so ordered], {date}; clerk {person}"],
        "lead": ["on {date}, ", "pursuant to order {code}, ", "as directed by Judge {person}, "],
        "tail": [", per order {code}", ", [in|under] case {case}", ", as clerk {person} confirmed"],
        "facts": [
            ["{org2}, [the respondent|respondent], [must appear|shall appear] on {date} at {time} before Judge {person}",
             "{org2} [must appear|shall attend] [at|on] {date} at {time}, [before|in front of] Judge {person}"],
            ["the claim [concerns|covers] unpaid invoices [totaling|of] {amount} for [services|work] between {date} and {date}",
             "[invoices|bills] [worth|totalling] {amount}, [issued|dated] {date} to {date}, [remain unpaid|are unpaid]"],
            ["[objectors|anyone objecting] must [write to|notify] clerk {person} [within|inside] {num} days [of|after] {date}",
             "[objections|written objections] [go|must go] to {person} [within|inside] {num} days of {date}"],
            ["the property at {street}, [registered under|on] title {code}, is subject to [a lien|a charge] of {amount}",
             "[a lien|a charge] of {amount} [sits|is registered] [on|against] title {code} ({street})"],
            ["counsel for the [petitioner|claimant] is {person} of {ORG}, [reachable|on] {phone}",
             "{person} ({ORG}) [acts|appears] for {Pf}[; telephone {phone}|]"],
            ["a prior order of {date} [froze|restrained] sales by {org2} near {city} ({num} parcels)",
             "[under|by] an order of {date}, {num} [parcels|plots] [near|outside] {city} [may not be sold|are frozen]"],
            ["[failure to respond|no response] by {date} [means|risks] default judgment for {amount}[ plus costs|]",
             "[without|absent] a response by {date}, [default judgment|judgment] [for|of] {amount} [may follow|may be entered]"],
            ["documents may be [inspected|viewed] in room {room}[ of the courthouse|] between {time} and {time}",
             "[files|papers] [are open|can be seen] [in|at] room {room}, {time} to {time}[, weekdays|]"],
            ["{person}'s estate ({city}) is [named|joined] as [an interested party|a party]",
             "the estate of {person} ({city}, died {year}) [is|will be] [an interested party|a further party]"],
            ["from {date}, the {C} Gazette [will print|carries] this notice [for|over] {num} weeks",
             "[publication|this notice] [runs|appears] [in|within] the {C} Gazette [from|starting] {date} for {num} weeks"],
            ["creditors of {P} should [submit|send] claims to trustee {person} quoting reference {code}",
             "trustee {person} [takes|accepts] creditor claims [quoting|under] {code} [until|up to] {date}"],
            ["the hearing, [before|with] Judge {person}, [should last|is listed for] {num} days in courtroom {num}",
             "courtroom {num} [is booked|has been reserved] for {num} days from {date}"],
            ["an interim payment of {amount} was ordered on {date} pending the full hearing",
             "Judge {person} [ordered|directed] {amount} [paid|be paid] [on account|as interim relief] by {org2}"],
            ["[witness|witnesses] {person} and {person} [will|are to] [give evidence|testify] on {date}",
             "{person} [gives|will give] evidence [on|from] {date}, [followed by|then] {person}"],
            ["court fees of {fee} [were|have been] paid [under|by] receipt {code}",
             "receipt {code} [records|shows] {fee} in [fees|court fees] [paid|lodged] on {date}"],
        ],
    },
    "travel_itinerary": {
        "title": ["Travel Itinerary for {P}: {C} to {D}",
                  "[Itinerary|Trip plan|Travel plan]: {P}, {C} to {D}"],
        "header": ["Booking reference {code} | Issued {date} by {ORG}",
                   "[Ref|Booking] {code} | {ORG} | [issued|printed] {date}"],
        "lead": ["on {date}, ", "at {time}, ", "per {person}, "],
        "tail": [", ref {code}", " ({time} local)", ", confirmed by {person}"],
        "facts": [
            ["depart {C} on flight {flight} at {time} on {date}, arriving in {D} at {time} local time",
             "flight {flight} [leaves|departs] {C} {date} at {time} and [lands|arrives] in {D} at {time}",
             "{Pf} flies {C} to {D} on {date}: {flight}, [wheels up|departing] {time}"],
            ["seat {seat} [has been reserved|is booked] with {org2}, [plus|and] {num} kg of [checked|hold] baggage ({fee})",
             "[fare|ticket] {fee} [includes|covers] seat {seat} and {num} kg [of bags|hold luggage]"],
            ["a driver from {org2} will meet {Pf} at gate {gate} [for|and drive to] the {H}",
             "{org2} [sends|will send] {person} to gate {gate}[ at {time}|] for the [transfer|ride] to the {H}"],
            ["check-in at the {H} is from {time}; [confirmation|booking] {code} covers {num} nights",
             "the {H} [holds|has] [a room|room {room}] for {num} nights [under|on] {code}[, check-in {time}|]"],
            ["on {date}, {Pf} meets {person} at {time} at {street}, {D}",
             "{person} [expects|will see] {Pf} at {street} [at|from] {time} on {date}"],
            ["lunch is booked for {num} [guests|people] at {restaurant}, under the name {Pl}",
             "[a table|lunch] for {num} at {restaurant}, {time}, [booked as|under] {Pl}"],
            ["a [rail connection|train] to {city} departs platform {num} at {time}; ticket {code}",
             "[the train|trains] to {city} [leave|leaves] platform {num} at {time} [(ticket {code})|on ticket {code}]"],
            ["the local contact is {person}, [reachable|available] on {phone}[ at any hour|]",
             "[in {D},|locally,] [call|ring] {person} on {phone}[ if plans change|]"],
            ["visa application {code} was approved on {date} [and is valid|valid] for {num} days",
             "[the visa|entry permit] {code} [runs|is valid] for {num} days from {date}"],
            ["[per diem|the daily allowance] of {fee} [is claimable|can be claimed] from {org2} until {date}",
             "[claim|expense] the {fee} [daily allowance|per diem] within {num} days [via|through] {person}"],
            ["free afternoon on {date}: [visit|try] the {D} museum of {field}, {num} minutes from the {H}",
             "the {field} museum in {D} [sits|is] {num} minutes [away|from the {H}][; free time {date}|]"],
            ["return flight {flight} leaves {D} at {time} on {date}, connecting through {city}",
             "[home|back] on {date}: {flight} [via|through] {city}, [departing|leaving] {D} at {time}"],
            ["travel insurance [policy|cover] {code} [covers|pays] medical costs up to {amount}",
             "[cover|insurance] {code} with {org2} [pays|covers] up to {amount}[ in medical costs|]"],
            ["clocks in {D} [run|are] {tz} hours [ahead of|behind] {C}[, {Pf} notes|]",
             "{D} [runs|is] {tz} hours [ahead of|behind] {C}[; {Pf} lands tired|]"],
            ["[a hire car|a rental car] ({code}) [waits|is waiting] at [desk|bay] {gate} from {time} on {date}",
             "{org2} [holds|has] [car|vehicle] {code} for {Pl}, [pick-up|collection] {time}"],
        ],
    },
    "support_ticket": {
        "title": ["Support Ticket #{order}: {issue}", "[Ticket|Case|Request] {order}[ -|:] {issue}"],
        "header": ["Customer: {P} | Account {code} | Opened {date}[, agent {person}|]",
                   "{P} ({code}) | {date} {time} | [priority|tier] {sev}"],
        "lead": ["at {time}, ", "per agent {person}, ", "on {date}, ", "update {code}: "],
        "tail": [" (note {code})", ", logged by {person}", " at {time}"],
        "facts": [
            ["{Pf} contacted support at {time}, [stating|saying] that the {product} [bought|purchased] on {date} [stopped working|failed] after {num} days",
             "[bought|ordered] on {date}, the {product} [died|failed|stopped] after {num} days, {Pf} <says>",
             "{Pf} [rang|wrote|emailed] at {time}: {product}, [dead|faulty] [since|from] {date}"],
            ["[the order number is|order] {order}, [and the charge was|charged] {amount} to a card ending {last4}",
             "order {order}: {amount} [charged|billed] to card [ending|ending in] {last4} on {date}"],
            ["agent {person} [tried|walked {Pf} through] a [factory|soft] reset at {time}, but {errcode} [persisted|came back]",
             "[a|the] [factory|soft] reset [did not help|changed nothing]; {errcode} [returned|came back] at {time}, <says> {person}"],
            ["{Pf} [says|reports] the {city} service centre [ignored|did not return] {num} [calls|previous calls]",
             "{num} [earlier|prior] calls to {city} [went unanswered|got no reply][ since {date}|]"],
            ["{person} offered a replacement [delivered|sent] to {street}, {C}, within {num} days",
             "[a new unit|a replacement] [can reach|will reach] {street} by {date}, [per|says] {person}"],
            ["{Pf} [declined|refused] [the replacement|a swap] [on {date}|at {time}] and [wants|asked for] {fee} back",
             "[instead|rather than a swap], {Pf} [wants|asked for] {fee} back [to card {last4}|by {date}]"],
            ["escalated to tier {tier} supervisor {person} at {time}[ with priority {sev}|]",
             "{person} ([tier|level] {tier}) [took over|picked up] ticket {order} at {time}"],
            ["logs [uploaded|sent] by {Pf} show {num} failed sync attempts between {time} and {time}",
             "[uploaded|attached] logs ({code}) [list|show] {num} [failures|sync errors] from {time} to {time}"],
            ["courier {org2} [says|claims] {person} [left|dropped] the parcel at {street} on {date}",
             "{org2} [says|insists] [the parcel|it] [reached|was left at] {street} at {time} on {date}"],
            ["a goodwill credit of {fee} was applied to account {code} by {person}",
             "{person} [applied|added] {fee} [goodwill credit|as a goodwill gesture] [on|to] {code}"],
            ["{Pf} [asked|prefers] to be called on {phone}, not at {street}",
             "[call|phone] {Pf} on {phone}[, not by email|, after {time}]"],
            ["engineering [reference|ticket] {code} [is linked|was linked] to {num} similar cases [since|from] {date}",
             "[bug|defect] {code} now [covers|links] {num} cases [since|from] {date}"],
            ["[follow-up|a follow-up] call [scheduled|booked] for {date} at {time} with {person}",
             "{person} [calls back|will call back] on {date} [around|at] {time}"],
            ["[closure|auto-close] on {date} unless {Pf} [replies|calls {phone}]",
             "[we close|closing] the case on {date} [unless {Pf} replies|if {Pf} is silent]"],
            ["firmware {ver} [was pushed|went out] to [the unit|serial {code}] at {time}[, no change|, fault persists|]",
             "{person} [rolled back|downgraded] the {product} to firmware {ver} on {date}"],
        ],
    },
    "property_listing": {
        "title": ["For Sale: {BEDS}-Bedroom {HT} at {ADDR}, {C}",
                  "[{BEDS} bed|{BEDS}-bed] {HT}, {ADDR}, {C}[, {amount}|]"],
        "header": ["Listing {code} | Agent: {P} of {ORG} | Asking {amount}",
                   "{ORG} | [ref|listing] {code} | {P}, {phone}"],
        "lead": ["per {person}, ", "as of {date}, ", "since {year}, "],
        "tail": [", per {person}", " (ref {code})", ", checked {date}"],
        "facts": [
            ["this {ht} on {ADDR} offers {big} square feet ({floors} floors), [measured|surveyed] by {person}",
             "{big} square feet [over|on] {floors} floors [make|give] {ADDR} [real|plenty of] [space|room]"],
            ["built in {year} by [the local firm|local builders] {org2}, it was [fully|] rewired in {year}",
             "{org2} built [the house|it] in {year}; [rewiring|new wiring] [followed|came] in {year}"],
            ["the kitchen ({dec} by {dec} m) was refitted by {org2} in {year}",
             "[a|the] {dec} by {dec} m kitchen ([refitted|new] {year}) [leads|opens] [to|onto] the [garden|terrace]"],
            ["[the main|the largest] bedroom [overlooks|faces] {park}[, with a {num} sq m dressing room|]",
             "[with views of|overlooking] {park}, the [main|largest] bedroom [has|adds] a {num} sq m dressing room"],
            ["council tax [is|runs at] {fee} [a year|annually], with {fee} [per quarter|quarterly] to {org2} for service",
             "[council tax|tax] {fee} a year[; service charge {fee} quarterly|]"],
            ["the current owners, {person} and {person}, have lived here for {num} years",
             "{person} and {person} [bought it|arrived] in {year} and are [now moving|selling] after {num} years"],
            ["{C} station, {num} minutes [away|on foot], has {org2} trains to {city}",
             "[trains|services] to {city} [leave|run] every {num} minutes from {C} station, a {num} minute walk"],
            ["{person} [rated|judged] the {city} primary school ({dec} km [away|off]) outstanding in {year}",
             "{city} [primary|junior] [sits|lies] {dec} km [away|off][, rated outstanding in {year}|]"],
            ["the garage ({num} sq m, permit {code}) [could become|would suit] [a studio|an office]",
             "[permit|planning] {code}, [granted|issued] {date}, [would let|lets] {Pf} convert the garage"],
            ["energy certificate {code} [rates|puts] the {ht} at {energy}, [with|and] bills [of about|near] {fee}",
             "[EPC|the energy certificate] {code}: [band|rating] {energy}, <about> {fee} a year"],
            ["viewings are available on {date} between {time} and {time} by appointment with {Pf}",
             "[view|see it] on {date}, {time} to {time}[; book with {Pf}|, via {phone}]"],
            ["offers above {amount} [are welcome|will be considered]; {person} [has bought|is buying] in {city}",
             "[the sellers|the owners] [will consider|want] [offers|bids] over {amount}[, having bought in {city}|]"],
            ["{person} insulated the loft in {year}[ to {num} mm|]",
             "{org2} [laid|fitted] {num} mm of [loft|roof] insulation in {year}"],
            ["survey report {code}, prepared by {person}, is available on request",
             "{person} [surveyed|inspected] [the house|it] on {date} ([report|ref] {code})"],
            ["the garden [runs|extends] {num} metres [to|towards] {park}[ and gets sun after {time}|]",
             "[a|the] {num} m garden [backs onto|meets] {park}[, south facing|]"],
        ],
    },
}

MIN_WORDS = 130
MAX_TARGET_WORDS = 250
NGRAM = 7  # no word NGRAM-gram occurs twice in a corpus...
GUARD_DOCS = 10_000  # ... of up to this many documents (else: in this many consecutive ones)
MAX_TRIES = 12  # draws of a sentence before it is dropped
LEAD_P, TAIL_P = 0.25, 0.2
# a sentence starting with one of these words has its own opening clause: no lead before it
_NO_LEAD = frozenset("at on since from in by during effective as per under until pending before "
                     "with after when aged born built elected voted bought ordered instead rather "
                     "home back next free closure auto-close claim view see idea hypothesis "
                     "observations allergy alert conditions weather intended between only "
                     "marriage".split())
_MACRO_RE = re.compile(r"<(\w+)>")
_A_NUMBER_RE = re.compile(r"\b([Aa]) (\d[\d,]*(?:\.\d+)?)")
_WORD_RE = re.compile(r"[a-z0-9]+")

# A compiled template is a list of items: str (literal text), _Slot (a slot's name), tuple
# (alternatives of plain text: one is chosen) or list (alternatives holding slots or nested
# alternatives: each a list of items).
_Seq = list


class _Slot(str):
    """A slot's name in a compiled template."""


def _compile(template: str) -> _Seq:
    """Parse ``{slot}``, nested ``[a|b]`` and ``<macro>`` once into a list of items."""
    while "<" in template:
        template = _MACRO_RE.sub(lambda m: MACROS[m.group(1)], template)
    pos = 0

    def seq(stops: str) -> _Seq:
        nonlocal pos
        items: _Seq = []
        buf: list[str] = []
        while pos < len(template) and template[pos] not in stops:
            c = template[pos]
            if c in "{[" and buf:
                items.append("".join(buf))
                buf = []
            if c == "{":
                end = template.index("}", pos)
                items.append(_Slot(template[pos + 1:end]))
                pos = end + 1
            elif c == "[":
                pos += 1
                alts = []
                while True:
                    alts.append(seq("|]"))
                    pos += 1
                    if template[pos - 1] == "]":
                        break
                if all(len(a) <= 1 and all(type(x) is str for x in a) for a in alts):
                    items.append(tuple(a[0] if a else "" for a in alts))
                else:
                    items.append(alts)
            else:
                buf.append(c)
                pos += 1
        if buf:
            items.append("".join(buf))
        return items

    return seq("")


_COMPILED: dict[str, _Seq] = {}


def _compiled(template: str) -> _Seq:
    seq = _COMPILED.get(template)
    if seq is None:
        seq = _COMPILED[template] = _compile(template)
    return seq


def _emit(seq: _Seq, rng: random.Random, ctx: dict[str, str], out: list[str]) -> None:
    for x in seq:
        t = type(x)
        if t is str:
            out.append(x)
        elif t is _Slot:
            out.append(ctx[x] if x in ctx else SLOTS[x](rng))
        elif t is tuple:
            out.append(x[int(rng.random() * len(x))])
        else:
            _emit(x[int(rng.random() * len(x))], rng, ctx, out)


def _fill(template: str, rng: random.Random, ctx: dict[str, str]) -> str:
    out: list[str] = []
    _emit(_compiled(template), rng, ctx, out)
    return "".join(out)


def _sentence(templates: Sequence[str], spec: dict, rng: random.Random, ctx: dict[str, str],
              frame: bool) -> str:
    """One sentence: a template of the fact, maybe framed by a lead and a tail clause."""
    body = _fill(_ch(rng, templates), rng, ctx)
    if frame and "lead" in spec and rng.random() < LEAD_P \
            and body.split(" ", 1)[0] not in _NO_LEAD:
        body = _fill(_ch(rng, spec["lead"]), rng, ctx) + body
    end = body[-1]
    if end in "?!":
        body, end = body[:-1], end
    else:
        end = "."
        if frame and "tail" in spec and rng.random() < TAIL_P:
            body += _fill(_ch(rng, spec["tail"]), rng, ctx)
    if "  " in body:
        body = " ".join(body.split())
    if "a " in body or "A " in body:
        body = _A_NUMBER_RE.sub(_article, body)
    return body[0].upper() + body[1:] + end


def _article(m: re.Match) -> str:
    """'a' or 'an' before a number: an 8, an 11, an 18, an 80, an 11,500, an 18.5."""
    whole = m.group(2).split(".")[0].replace(",", "")
    lead = whole[:(len(whole) - 1) % 3 + 1]  # the digits read before "thousand", ...
    an = lead[0] == "8" or lead in ("11", "18")
    return (m.group(1) + "n " if an else m.group(1) + " ") + m.group(2)


class _NgramGuard:
    """The word n-grams of the last GUARD_DOCS documents; admits a piece of text only if it
    adds none that occurs already (in one of those documents, or earlier in this one).

    An n-gram is kept as the CRC-32 of its words joined by spaces (deterministic, no
    ``hash()``): a repeat always has the same key, so none gets through; two different
    n-grams sharing a key only cost a needless redraw (about one lookup in 10^4 at the
    default corpus size)."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.history: deque[set[int]] = deque()  # the keys of each remembered document
        self.redraws = 0  # sentences drawn again (statistics)
        self.dropped = 0  # sentences given up after MAX_TRIES draws

    def start(self) -> None:
        self.tail: list[str] = []  # the last NGRAM - 1 words of the document so far
        self.doc: set[int] = set()

    def admit(self, text: str) -> bool:
        window = self.tail + _WORD_RE.findall(text.lower())
        grams = map(" ".join, zip(*(window[i:] for i in range(NGRAM))))
        keys = list(map(crc32, map(str.encode, grams)))
        if len(set(keys)) < len(keys) or not self.seen.isdisjoint(keys) \
                or not self.doc.isdisjoint(keys):
            return False
        self.tail = window[-(NGRAM - 1):]
        self.doc.update(keys)
        return True

    def finish(self) -> None:
        self.seen |= self.doc
        self.history.append(self.doc)
        if len(self.history) > GUARD_DOCS:  # keys are unique to one document: drop its own
            self.seen -= self.history.popleft()


def _place(guard: _NgramGuard, templates: Sequence[str], spec: dict, rng: random.Random,
           ctx: dict[str, str], frame: bool) -> str | None:
    """The first of up to MAX_TRIES drawn sentences that the guard admits, else None."""
    for _ in range(MAX_TRIES):
        text = _sentence(templates, spec, rng, ctx, frame)
        if guard.admit(text):
            return text
        guard.redraws += 1
    guard.dropped += 1
    return None


def _doc_constants(rng: random.Random) -> dict[str, str]:
    """The slots that keep one value within a document: the main person, places, ..."""
    first, last = _first(rng), _last(rng)
    born = _ri(rng, 1840, 1950)
    died = born + _ri(rng, 48, 97)
    ht = _ch(rng, ["House", "Cottage", "Townhouse", "Flat", "Bungalow"])
    ctx = {
        "P": f"{first} {last}", "Pf": first, "Pl": last, "R": _first(rng),
        "C": _city(rng), "D": _city(rng), "ORG": _org(rng),
        "H": f"{_last(rng)} {_ch(rng, ['Hotel', 'Inn', 'Lodge', 'Suites'])}",
        "ADDR": _street(rng), "DT": SLOTS["date"](rng), "HT": ht, "ht": ht.lower(),
        "BEDS": str(_ri(rng, 1, 6)), "BY": str(born), "DY": str(died), "AGE": str(died - born),
    }
    return ctx


def _make_document(rng: random.Random, genre: str, guard: _NgramGuard) -> str:
    spec = GENRES[genre]
    ctx = _doc_constants(rng)
    for _ in range(100):  # the title and header (always unique in practice)
        guard.start()
        head = [_fill(_ch(rng, spec["title"]), rng, ctx), _fill(_ch(rng, spec["header"]), rng, ctx)]
        if guard.admit("\n".join(head)):
            break
        guard.redraws += 1
    else:
        raise RuntimeError(f"demo corpus: no unique title for a {genre} document")
    words = sum(len(s.split()) for s in head)
    target = _ri(rng, MIN_WORDS + 10, MAX_TARGET_WORDS)
    sentences: list[str] = []
    if "first" in spec:
        s = _place(guard, spec["first"], spec, rng, ctx, False)
        if s is not None:
            sentences.append(s)
            words += len(s.split())
    closing = 8 if "last" in spec else 0  # words kept for the closing sentence
    pool: list[int] = []
    rounds = 0
    while words + closing < target and rounds < 4:
        if not pool:
            pool = list(range(len(spec["facts"])))
            rng.shuffle(pool)
            rounds += 1
        s = _place(guard, spec["facts"][pool.pop()], spec, rng, ctx, True)
        if s is not None:
            sentences.append(s)
            words += len(s.split())
    if "last" in spec:
        s = _place(guard, spec["last"], spec, rng, ctx, False)
        if s is not None:
            sentences.append(s)
    guard.finish()
    paragraphs, i = [], 0
    while i < len(sentences):
        step = _ri(rng, 2, 5)
        paragraphs.append(" ".join(sentences[i:i + step]))
        i += step
    return "\n".join(head) + "\n\n" + "\n\n".join(paragraphs)


def generate_demo_corpus(num_docs: int = 2400, seed: int = 0, *,
                         stats: dict | None = None) -> list[dict]:
    """Return ``num_docs`` synthetic documents ``{"doc_id", "text", "genre"}``.

    Deterministic in ``(num_docs, seed)`` (a private ``random.Random(seed)``,
    no global state, no ``hash()``); genres cycle in a seed-dependent order so
    every genre appears once ``num_docs >= len(GENRES)``. No word 7-gram occurs
    in two documents (up to GUARD_DOCS documents; beyond, in two of GUARD_DOCS
    consecutive ones), so texts are distinct. ``stats``, if given, receives the
    number of sentences the 7-gram guard drew again (``redraws``) and gave up
    (``dropped``).
    """
    rng = random.Random(seed)
    order = list(GENRES)
    rng.shuffle(order)
    guard = _NgramGuard()
    docs: list[dict] = []
    for i in range(num_docs):
        genre = order[i % len(order)]
        text = _make_document(rng, genre, guard)
        docs.append({"doc_id": f"demo-{i:05d}", "text": text, "genre": genre})
    if stats is not None:
        stats.update(redraws=guard.redraws, dropped=guard.dropped)
    return docs
