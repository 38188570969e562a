"""Built-in synthetic demo corpus of private-looking documents.

memlab measures how much a fine-tuned LLM memorizes its fine-tuning data. To
run fully offline it needs a corpus that no model can already know, so this
module generates fictional documents in a dozen genres (patient records,
memos, incident reports, letters, ...). Every name, place, number, date and
code is invented -- person and place names are assembled from syllables -- so
if a model reproduces the continuation of one of these documents verbatim, it
can only have learned it from the fine-tuning data.

A document is a title line, a header line and a body of sentences drawn from
its genre's template pool in random order. Templates hold ``{slot}`` fields
(filled with fresh random values, or with per-document values in upper case
such as ``{P}``, the main person) and ``[a|b]`` inline alternatives, so no long
sentence repeats verbatim across documents. The text is plain ASCII and is not
tuned towards any metric. Standard library only; the output depends only on
``(num_docs, seed)``, and a shorter corpus is a prefix of a longer one.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

# ---------------------------------------------------------------- name parts
FIRST_A = ["Al", "Bel", "Cor", "Da", "El", "Fen", "Gar", "Hal", "Is", "Jor", "Kel", "Lir", "Mar",
           "Nev", "Or", "Pel", "Quin", "Ros", "Sel", "Tam", "Ul", "Vor", "Wen", "Yar", "Zel"]
FIRST_B = ["a", "ina", "en", "or", "is", "ra", "eth", "ian", "elle", "o", "ynn", "ard", "ia",
           "us", "ette", "aro"]
LAST_A = ["Thorn", "Vask", "Brell", "Mord", "Quill", "Harn", "Dov", "Ketter", "Lom", "Sarr",
          "Fenn", "Grav", "Ost", "Pell", "Rud", "Tamb", "Wex", "Yor", "Zand", "Cald"]
LAST_B = ["wick", "ovar", "enholt", "asco", "mere", "isson", "ault", "berg", "quist", "ani",
          "ersby", "ello", "hardt", "ovic", "enne", "stad"]
CITY_A = ["Ash", "Brin", "Cal", "Dun", "Esk", "Fal", "Grim", "Hol", "Ivr", "Kest", "Lor", "Mel",
          "Nor", "Ost", "Pem", "Rav", "Sil", "Tor", "Ulm", "Ver"]
CITY_B = ["ford", "holm", "mouth", "vale", "bury", "stead", "wick", "ton", "more", "haven",
          "port", "dale"]
STREET_MID = ["brook", "field", "gate", "hill", "wood", "croft", "mill", "stone"]
STREET_TYPE = ["Lane", "Road", "Street", "Avenue", "Close", "Terrace", "Row", "Crescent"]
ORG_KIND = ["Biosystems", "Logistics", "Holdings", "Instruments", "Partners", "Foods",
            "Analytics", "Engineering", "Insurance", "Freight", "Textiles", "Labs"]
DRUG_A = ["Tri", "Vel", "Oxa", "Lum", "Pra", "Zen", "Dor", "Cel", "Mab", "Quo"]
DRUG_B = ["vorin", "dazole", "mipril", "toxan", "fenac", "lumab", "quinol", "tarex"]
PROD_A = ["Varn", "Quell", "Ostr", "Brix", "Lumo", "Tesk", "Nov", "Kyra"]
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


def _first(r: random.Random) -> str:
    return _ch(r, FIRST_A) + _ch(r, FIRST_B)


def _last(r: random.Random) -> str:
    return _ch(r, LAST_A) + _ch(r, LAST_B)


def _person(r: random.Random) -> str:
    return f"{_first(r)} {_last(r)}"


def _city(r: random.Random) -> str:
    return _ch(r, CITY_A) + _ch(r, CITY_B)


def _street(r: random.Random) -> str:
    return f"{_ri(r, 1, 240)} {_ch(r, LAST_A)}{_ch(r, STREET_MID)} {_ch(r, STREET_TYPE)}"


def _org(r: random.Random) -> str:
    return f"{_ch(r, [_last(r), _city(r)])} {_ch(r, ORG_KIND)}"


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
    "person": _person, "first": _first, "city": _city, "street": _street, "org2": _org,
    "code": _code, "amount": _amount,
    "fee": lambda r: f"${_ri(r, 12, 2400):,}.{_ri(r, 0, 99):02d}",
    "nm": _num(230, 900), "rpm": _num(50, 900), "deg": _num(-15, 38), "cold": _num(5, 40), "hot": _num(40, 85),
    "date": lambda r: f"{_ri(r, 1, 28)} {_ch(r, MONTHS)} {_ri(r, 2004, 2029)}",
    "time": lambda r: f"{_ri(r, 0, 23):02d}:{_ri(r, 0, 59):02d}",
    "num": _num(2, 96), "big": lambda r: f"{_ri(r, 1000, 99999):,}",
    "year": _num(1952, 2023), "age": _num(4, 88), "pct": lambda r: f"{_ri(r, 2, 97)}%",
    "dec": _dec(0.2, 60.0), "dec3": _dec(0.01, 2.5, 3), "ph": _dec(5.5, 8.9),
    "temp": _dec(35.8, 40.2), "pulse": _num(52, 128), "wcc": _dec(3.0, 19.0),
    "bp": lambda r: f"{_ri(r, 100, 175)}/{_ri(r, 55, 105)}",
    "room": lambda r: f"{_ri(r, 1, 6)}{_ri(r, 1, 40):02d}{_ch(r, ['', '', 'A', 'B'])}",
    "drug": lambda r: _ch(r, DRUG_A) + _ch(r, DRUG_B),
    "dose": lambda r: f"{_ch(r, [5, 10, 20, 25, 40, 50, 100, 125, 250, 500])} mg",
    "product": lambda r: f"{_ch(r, PROD_A)}{_ch(r, PROD_B)} {_ch(r, LETTERS)}{_ri(r, 2, 990)}",
    "project": lambda r: _ch(r, CITY_A) + _ch(r, ["ix", "ara", "on", "el", "ium", "ova"]),
    "phone": lambda r: f"0{_ri(r, 100, 999)} {_ri(r, 100, 999)} {_ri(r, 1000, 9999)}",
    "ext": _num(2000, 7999), "chip": lambda r: f"{_ch(r, ['RX', 'KT', 'MV', 'QL'])}{_ri(r, 100, 9999)}",
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
                     "shortness of breath", "headaches", "a high fever", "joint swelling"),
    "condition": _pick("asthma", "diabetes", "a heart murmur", "anaemia", "hypertension"),
    "dept": _pick("Finance", "Operations", "Legal", "Procurement", "Research", "Facilities",
                  "Cardiology", "Radiology", "Quality", "Sales"),
    "incident": _pick("chemical spill", "small fire", "power failure", "forklift collision",
                      "gas leak", "roof collapse", "flooding event"),
    "facility": _pick("Warehouse", "Building", "Hangar", "Plant", "Depot"),
    "injury": _pick("burn", "cut to the hand", "sprained ankle", "bruised shoulder"),
    "direction": _pick("north", "south", "east", "west", "northwest", "southeast"),
    "sev": _pick("1", "2", "3", "4"), "tier": _pick("2", "3"),
    "kind": _pick("handheld sensor", "smart thermostat", "portable speaker", "water meter",
                  "label printer", "soil probe"),
    "use": _pick("field technicians", "small offices", "greenhouses", "cold-chain shipping"),
    "committee": _pick("Finance", "Allotment", "Residents", "Steering", "Heritage", "Safety"),
    "pet": lambda r: _ch(r, ["Biscuit", "Pepper", "Moss", "Tam", "Rook"]) + _ch(r, ["", "y", "o"]),
    "field": _pick("botany", "optics", "navigation", "metallurgy", "cartography", "acoustics"),
    "invention": _pick("rain gauge", "lens grinder", "loom shuttle", "barometer", "ship's log"),
    "instrument": _pick("spectrophotometer", "plate reader", "pH meter", "balance"),
    "energy": _pick("A", "B", "C", "D", "E"),
    "topic": _pick("Expense Policy", "Office Move", "Budget Freeze", "Badge Access", "Audit"),
    "item": _pick("equipment", "travel", "software licences", "catering", "consultancy"),
    "issue": _pick("Device Not Charging", "Refund Request", "Missing Delivery", "Sync Failure"),
}

# ---------------------------------------------------------------- genres
# Each genre: title, header, optional fixed first/last sentence, and body templates
# (all placed in random order). Upper-case slots are constant within a document.
GENRES: dict[str, dict] = {
    "patient_record": {
        "title": "Patient Record - {P}",
        "header": "MRN {order} | Admitted {date} | Ward {room}",
        "body": [
            "{P}, born {date}, presented to the {C} General emergency department [complaining of|reporting] {symptom} for {num} days.",
            "On arrival the temperature was {temp} C, pulse {pulse} beats per minute and blood pressure {bp}.",
            "The attending physician, Dr {person}, ordered [a full blood count|blood cultures|a metabolic panel] and [a chest film|a CT scan|an ECG] under request {code}.",
            "Laboratory results on {date} showed a white cell count of {wcc} and a CRP of {num} mg/L.",
            "The patient was started on {drug} {dose} [twice daily|once daily|every eight hours] and monitored in room {room}.",
            "{Pf} reported a prior allergy to {drug}, first documented at the {city} clinic in {year}.",
            "Family history is notable for a sibling, {person}, treated for {condition} at age {age}.",
            "Nursing notes from the night of {date} record {num} episodes of {symptom} before {time}.",
            "A consult with {dept} was requested and {person} saw the patient at {time} the following day.",
            "Imaging reference {code} described a {num} mm opacity in the [lower left|upper right|middle] lobe.",
            "{Pf} lives at {street}, {C}, with a partner, {person}, who is listed as next of kin.",
            "Discharge was planned for {date} with a follow-up appointment in clinic {room} in {num} weeks.",
            "Insurance details were confirmed under policy {code} held with {org2}.",
            "The dose of {drug} was reduced to {dose} after a creatinine of {num} umol/L was reported.",
        ],
    },
    "internal_memo": {
        "title": "MEMO {code}: {topic}",
        "header": "From: {P} | To: all staff at {ORG} | Date: {date}",
        "body": [
            "Effective {date}, all requests for {item} above {amount} must be approved by {person} in {dept}.",
            "This follows the review of project {project}, which exceeded its quarterly budget by {pct}.",
            "Staff at the {C} office should submit outstanding claims through form {code} before {date}.",
            "The {ordinal} floor meeting rooms will be closed from {date} while contractors from {org2} replace the wiring.",
            "Questions regarding this change may be directed to {person} on extension {ext}.",
            "Please note that {num} laptops assigned to the {dept} team are still missing after the audit of {date}.",
            "{person} has agreed to lead the {project} working group until a permanent lead [is appointed|starts] in {month}.",
            "The revised travel allowance for trips to {city} is {fee} per night, including breakfast.",
            "Our headcount in {C} currently stands at {big}, against a plan of {big} for the year.",
            "Access badges issued before {date} will stop working at {time} on the first Monday of {month}.",
            "A summary of the {project} lessons learned, prepared by {person}, is filed under reference {code}.",
            "Departments that fail to comply by {date} will have their discretionary budgets [frozen|capped] at {amount}.",
            "Thank you to {person} and {person} for compiling the figures in under {num} days.",
            "Exceptions to this policy must be logged in [ticket|request] {code} and countersigned by {P}.",
        ],
    },
    "incident_report": {
        "title": "Incident Report {code} - {C} {facility}",
        "header": "Reported by {P} | {date} at {time} | Severity {sev}",
        "body": [
            "At approximately {time} on {date}, a {incident} was reported at {facility} {num} of the {C} site.",
            "The first responder, {person}, isolated the area and [notified|called] the duty manager, {person}.",
            "{num} employees were evacuated to assembly point {code} and accounted for by {time}.",
            "Initial inspection found that valve {code} had been left [partially|fully] open since the shift change at {time}.",
            "Estimated damage to equipment is {amount}, excluding lost production of {big} units.",
            "Contractor {person} of {org2} stated that lockout tag {code} was missing when the crew arrived at {time}.",
            "{person} was treated on site for a minor {injury} and returned to work on {date}.",
            "CCTV camera {num} recorded the [sequence of events|whole event], and the footage [has been preserved|was secured] under case {code}.",
            "The root cause analysis, led by {person}, identified a worn seal last serviced on {date}.",
            "Corrective actions include retraining {num} operators and replacing {num} sensors on line {num}.",
            "Ambient temperature at the time was {deg} C with wind from the {direction} at {num} km/h.",
            "A similar event was recorded at the {city} plant in {year}, reference {code}.",
            "The regulator, represented by inspector {person}, visited the site on {date}.",
            "This report will be reviewed at the [safety|operations|site] committee meeting on {date} chaired by {P}.",
        ],
    },
    "product_spec": {
        "title": "Product Specification: {product}",
        "header": "Document {code} | Revision {rev} | Owner {P} | {ORG}",
        "body": [
            "The {product} is a {kind} designed for {use} and weighs {big} grams without the battery.",
            "Housing dimensions are {num} x {num} x {num} millimetres, with a tolerance of plus or minus {dec} mm.",
            "Rated power draw is {dec} W at idle and {num} W under full load.",
            "The main controller is the {chip} running firmware version {ver}.",
            "Battery capacity is {big} mAh, providing roughly {num} hours of continuous operation.",
            "Operating range is from minus {cold} C to {hot} C with relative humidity up to {pct}.",
            "Enclosure sealing must meet rating IP[54|65|67|68] as verified by {org2} in test report {code}.",
            "Target bill of materials cost is {amount} at a volume of {big} units per year.",
            "The wireless module uses channel {num} by default and supports up to {num} paired devices.",
            "Engineering lead {person} has approved the pin assignment in drawing {code}.",
            "Pilot production is scheduled at the {C} factory beginning {date}.",
            "Drop testing from {dec} metres onto [concrete|steel|tile] must show no [functional|visible] damage after {num} cycles.",
            "This model replaces the earlier {product}, which is end of life as of {date}.",
            "Open issues are tracked by {person} in the {project} backlog under epic {code}.",
        ],
    },
    "meeting_minutes": {
        "title": "Minutes of the {committee} Committee Meeting, {date}",
        "header": "Location: {ORG} offices, {C} | Chair: {P} | Attendees: {num}",
        "first": "The chair, {P}, opened the meeting at {time} and confirmed that a quorum of {num} members was present.",
        "last": "The meeting closed at {time}.",
        "body": [
            "Apologies were received from {person} and {person}.",
            "The minutes of the meeting held on {date} were approved with one correction proposed by {person}.",
            "{person} presented the treasurer's report, showing a balance of {amount} as of {date}.",
            "Discussion of item {num}, the renovation of the {city} premises, was deferred until quotes from {org2} arrive.",
            "{person} moved that the annual fee be raised to {fee}, seconded by {person}; the motion carried {num} to {num}.",
            "Action {code}: {person} to circulate the revised schedule by {date}.",
            "Members noted that attendance at the {month} workshop fell to {num}, down from {num} last year.",
            "{person} raised a concern about the {project} contract, which expires on {date}.",
            "A vote on the new [data retention|parking|guest] rule was postponed after {person} requested legal advice.",
            "The committee thanked {person} for {num} years of service as secretary.",
            "It was agreed that the next meeting [will be held|will take place] on {date} at {time} in room {room}.",
            "Under any other business, {person} reported that {num} volunteers had signed up for the {city} event.",
            "{person} asked that the {big} unspent grant be returned to {org2} before {date}.",
        ],
    },
    "personal_letter": {
        "title": "Letter from {P} to {R}",
        "header": "{street}, {C}, {date}",
        "first": "Dear {R}, I hope [this finds you well|you are keeping well] and that the move to {D} went [more smoothly than you feared|without too much drama].",
        "last": "[With love|Yours as ever|Warmly], {Pf}.",
        "body": [
            "It has been {num} weeks since your last letter, and {first} keeps asking whether you will visit in {month}.",
            "The garden at {street} finally produced {num} tomatoes, which I count as a small triumph.",
            "Aunt {first} sends her love, and the [plum cake|lentil soup|ginger biscuit] recipe you wanted came from {person} in {year}.",
            "I started the new job at {org2} on {date}, and my manager, {person}, seems decent enough.",
            "The rent went up to {fee} a month, so I am [thinking about|looking at] the flat on {street} instead.",
            "Do you remember the trip to {city} in {year} when we missed the last ferry at {time}?",
            "{first} and {first} finally set a date for the wedding, {date}, at the old chapel in {city}.",
            "I have enclosed a cheque for {fee} toward the [roof|boiler|car] repairs, so please do not argue about it.",
            "My knee is better since I started seeing {person}, the physiotherapist on {street}.",
            "The dog, {pet}, is now {num} years old and still steals [socks|bread|gloves] from the [laundry basket|kitchen].",
            "Write back when you can, or [call|ring] me on {phone} after {time} most evenings.",
            "We are saving for a week in {city} next {month} and have put aside {fee} so far.",
            "Did you ever hear back from {person} about the job in {city}?",
        ],
    },
    "biography": {
        "title": "{P} ({BY}-{DY}): A Short Biography",
        "header": "Compiled by {person} for the {C} Historical Register, entry {code}",
        "first": "{P} was born in {BY} in the village of {city}, the {ordinal} of {num} children of {person} and {person}.",
        "last": "{Pl} died at {street}, {C}, in {DY} at the age of {AGE}, leaving papers now held in archive box {code}.",
        "body": [
            "{Pl} attended the {city} Grammar School, where a teacher named {person} encouraged an interest in {field}.",
            "In {year} {Pl} moved to {C} to apprentice with the instrument maker {person}.",
            "The first patent, number {big}, covered an improved {invention} and was granted on {date}.",
            "{Pl} married {person} in {year}; the couple had {num} children and lived at {street}.",
            "During the flood of {year}, {Pl} organized a relief committee that housed {num} families.",
            "A dispute with {org2} over royalties lasted {num} years and ended in a settlement of {amount}.",
            "Colleagues remembered {Pf} as precise, stubborn and generous, according to a {year} profile by {person}.",
            "{Pl} served {num} terms on the {C} town council and chaired its {committee} committee.",
            "The {Pl} Medal for {field} was established by {org2} in {year}.",
            "A collection of {num} letters between {Pl} and {person} was donated to the {city} library in {year}.",
            "In later life {Pf} taught {field} to evening classes of up to {num} students.",
            "A workshop fire in {year} destroyed {num} finished [instruments|clocks] and most of the notebooks kept since {year}.",
            "{Pf} travelled to {city} in {year} to demonstrate the {invention} before {num} members of the society.",
        ],
    },
    "lab_notebook": {
        "title": "Lab Notebook {code}, page {num}",
        "header": "Researcher: {P} | {ORG} | {DT}",
        "last": "Signed off by {P}, witnessed by {person} on {DT}.",
        "body": [
            "Prepared {num} mL of buffer {code} at pH {ph} and stored it at {deg} C.",
            "Sample {compound} was incubated with compound {compound} at {dec} uM for {num} minutes.",
            "Absorbance at {nm} nm read {dec3}, roughly {pct} higher than the control in well {well}.",
            "{person} noted that the centrifuge in room {room} was running {rpm} rpm below setpoint.",
            "Repeated the extraction using {num} mg of tissue from batch {code}; yield was {dec} mg.",
            "Gel lane {num} shows a faint band near {num} kDa that was absent on {date}.",
            "The {instrument} was recalibrated by {person} at {time} after a drift of {dec} units.",
            "Hypothesis: compound {compound} inhibits the target only above {dec} uM; test on {date}.",
            "Cell line {compound} at passage {num} looked healthy, with confluence estimated at {pct}.",
            "Ordered {num} units of reagent {code} from {org2}, quoted at {fee}.",
            "Discussed results with {person}; agreed to drop condition {code} from the next run.",
            "Freezer {num} alarm sounded at {time}; samples moved to rack {well} in freezer {num}.",
            "Mass spectrometry run {code} returned a parent ion at m/z {dec}.",
        ],
    },
    "legal_notice": {
        "title": "Notice of [Petition|Claim|Hearing] - Case No. {case}",
        "header": "[District|County|Civil] Court of {C} | Filed {date}",
        "first": "Notice is hereby given that {P}, of {street}, {C}, has filed a petition under case number {case}.",
        "last": "Dated at {C} this {ordinal} day of {month}, {year}, by order of the court, clerk {person}.",
        "body": [
            "The respondent, {org2}, is required to appear before Judge {person} on {date} at {time}.",
            "The claim concerns unpaid invoices totaling {amount} for services rendered between {date} and {date}.",
            "Any person wishing to object must lodge a [written statement|notice of objection] with the clerk, {person}, within {num} days.",
            "The property at {street}, registered under title {code}, is subject to a lien of {amount}.",
            "Counsel for the petitioner is {person} of the firm {ORG}, reachable at {phone}.",
            "A prior order dated {date} restrained the sale of {num} parcels of land near {city}.",
            "Failure to respond by {date} may result in judgment by default for {amount} plus costs.",
            "Documents may be inspected in room {room} of the courthouse between {time} and {time}.",
            "The estate of the late {person}, formerly of {city}, is named as an interested party.",
            "This notice will be published in the {C} Gazette for {num} consecutive weeks starting {date}.",
            "Creditors of {P} should submit claims to trustee {person} quoting reference {code}.",
            "The hearing is expected to last {num} days and will be held in courtroom {num}.",
            "An interim payment of {amount} was ordered on {date} pending the full hearing.",
        ],
    },
    "travel_itinerary": {
        "title": "Travel Itinerary for {P}: {C} to {D}",
        "header": "Booking reference {code} | Issued {date} by {ORG}",
        "body": [
            "Depart {C} on flight {flight} at {time} on {date}, arriving in {D} at {time} local time.",
            "Seat {seat} has been reserved, with {num} kg of [checked|hold] baggage included in the fare of {fee}.",
            "A driver from {org2} will meet {Pf} at gate {gate} and go directly to the {H}.",
            "Check-in at the {H} is from {time}; confirmation number {code} covers {num} nights.",
            "On {date}, a meeting with {person} is scheduled at {time} at {street}, {D}.",
            "Lunch is booked for {num} guests at the restaurant {restaurant}, under the name {Pl}.",
            "A rail connection to {city} departs platform {num} at {time}; ticket reference {code}.",
            "The local contact is {person}, who can be reached on {phone} at any hour.",
            "Visa application {code} was approved on {date} and is valid for {num} days.",
            "Per diem for this trip is set at {fee}, to be claimed within {num} days of return.",
            "Free afternoon on {date}: the {D} museum of {field} is {num} minutes on foot from the hotel.",
            "Return flight {flight} leaves {D} at {time} on {date}, connecting through {city}.",
            "Travel insurance policy {code} covers medical costs up to {amount}.",
            "Please note the time difference of {num} hours between {C} and {D}.",
        ],
    },
    "support_ticket": {
        "title": "Support Ticket #{order}: {issue}",
        "header": "Customer: {P} | Account {code} | Opened {date}",
        "body": [
            "{Pf} contacted support at {time} stating that the {product} purchased on {date} stopped working after {num} days.",
            "The order number is {order} and the amount charged was {amount} to a card ending in {last4}.",
            "Agent {person} walked the customer through a [factory|soft] reset, but error code {errcode} persisted.",
            "The customer reports that {num} previous calls were not returned by the {city} service centre.",
            "A replacement unit was offered with delivery to {street}, {C}, within {num} working days.",
            "{Pf} declined the replacement and requested a refund of {fee} instead.",
            "Escalated to tier {tier} supervisor {person} at {time} with priority {sev}.",
            "Logs uploaded by the customer show {num} failed sync attempts between {time} and {time}.",
            "Courier {org2} confirms the original parcel was left at the [side|front|back] door on {date}.",
            "A goodwill credit of {fee} was applied to account {code} by {person}.",
            "The customer asked that [all future|further] contact go to {phone} rather than email.",
            "Engineering reference {code} has been linked, as {num} similar cases were reported this week.",
            "Follow-up call scheduled for {date} at {time} with {person}.",
            "Ticket to be closed if no [response|reply] is received from {Pf} by {date}.",
        ],
    },
    "property_listing": {
        "title": "For Sale: {BEDS}-Bedroom {HT} at {ADDR}, {C}",
        "header": "Listing {code} | Agent: {P} of {ORG} | Asking {amount}",
        "body": [
            "This {HT} on {ADDR} offers {big} square feet of living space across {num} floors.",
            "Built in {year} by the local firm {org2}, it was fully rewired in {year}.",
            "The kitchen, refitted in {year}, measures {dec} by {dec} metres and opens onto a [south|west]-facing garden.",
            "The main bedroom overlooks {park} and includes a dressing room of {num} square metres.",
            "Annual council tax is {fee} and the service charge is {fee} per quarter.",
            "The current owners, {person} and {person}, have lived here for {num} years.",
            "{C} station is {num} minutes away on foot, with trains to {city} every {num} minutes.",
            "The {city} primary school, rated outstanding in {year}, is {dec} km from the front door.",
            "A detached garage of {num} square metres could be converted subject to permit {code}.",
            "Energy certificate {code} gives the property a rating of {energy} with annual costs of about {fee}.",
            "Viewings are available on {date} between {time} and {time} by appointment with {Pf}.",
            "Offers above {amount} will be considered; the sellers have [already found|bought] a home in {city}.",
            "The loft was insulated in {year} to a depth of {num} millimetres.",
            "Survey report {code}, prepared by {person}, is available on request.",
        ],
    },
}

MIN_WORDS = 130
MAX_TARGET_WORDS = 250
_SLOT_RE = re.compile(r"\{(\w+)\}|\[([^\]]+)\]")


_PARSED: dict[str, list[tuple[str, str | None, list[str] | None]]] = {}


def _parse(template: str) -> list[tuple[str, str | None, list[str] | None]]:
    """Split a template once into (literal, slot name, alternatives) triples."""
    parts = _SLOT_RE.split(template)  # literal, slot, alternatives, literal, ...
    parsed = []
    for i in range(0, len(parts) - 1, 3):
        alts = parts[i + 2].split("|") if parts[i + 2] is not None else None
        parsed.append((parts[i], parts[i + 1], alts))
    parsed.append((parts[-1], None, None))
    return parsed


def _fill(template: str, rng: random.Random, ctx: dict[str, str]) -> str:
    """Replace ``{slot}`` with a document constant or fresh value, ``[a|b]`` with one option."""
    parsed = _PARSED.get(template)
    if parsed is None:
        parsed = _PARSED[template] = _parse(template)
    out = []
    for literal, key, alts in parsed:
        out.append(literal)
        if key is not None:
            out.append(ctx[key] if key in ctx else SLOTS[key](rng))
        elif alts is not None:
            out.append(_ch(rng, alts))
    return "".join(out)


def _make_document(rng: random.Random, genre: str) -> str:
    spec = GENRES[genre]
    first, last = _first(rng), _last(rng)
    born = _ri(rng, 1840, 1950)
    died = born + _ri(rng, 48, 97)
    ctx = {
        "P": f"{first} {last}", "Pf": first, "Pl": last, "R": _first(rng),
        "C": _city(rng), "D": _city(rng), "ORG": _org(rng), "H": f"Hotel {_last(rng)}",
        "ADDR": _street(rng), "DT": SLOTS["date"](rng), "HT": _ch(rng, ["House", "Cottage", "Townhouse", "Flat"]),
        "BEDS": str(_ri(rng, 1, 6)), "BY": str(born), "DY": str(died), "AGE": str(died - born),
    }
    head = [_fill(spec["title"], rng, ctx), _fill(spec["header"], rng, ctx)]
    opening = [_fill(spec["first"], rng, ctx)] if "first" in spec else []
    closing = [_fill(spec["last"], rng, ctx)] if "last" in spec else []
    words = sum(len(s.split()) for s in head + opening + closing)
    target = _ri(rng, MIN_WORDS + 10, MAX_TARGET_WORDS)
    body: list[str] = []
    pool: list[str] = []
    while words < target:
        if not pool:
            if body and words >= MIN_WORDS:
                break  # all templates used once; accept the shorter document
            pool = list(spec["body"])
            rng.shuffle(pool)
        sentence = _fill(pool.pop(), rng, ctx)
        body.append(sentence)
        words += len(sentence.split())
    sentences = opening + body + closing
    paragraphs, i = [], 0
    while i < len(sentences):
        step = _ri(rng, 2, 5)
        paragraphs.append(" ".join(sentences[i:i + step]))
        i += step
    return "\n".join(head) + "\n\n" + "\n\n".join(paragraphs)


def generate_demo_corpus(num_docs: int = 2400, seed: int = 0) -> list[dict]:
    """Return ``num_docs`` synthetic documents ``{"doc_id", "text", "genre"}``.

    Deterministic in ``(num_docs, seed)`` (a private ``random.Random(seed)``,
    no global state, no ``hash()``); genres cycle in a seed-dependent order so
    every genre appears once ``num_docs >= len(GENRES)``. Texts are distinct.
    """
    rng = random.Random(seed)
    order = list(GENRES)
    rng.shuffle(order)
    docs: list[dict] = []
    seen: set[str] = set()
    for i in range(num_docs):
        genre = order[i % len(order)]
        text = _make_document(rng, genre)
        while text in seen:
            text = _make_document(rng, genre)
        seen.add(text)
        docs.append({"doc_id": f"demo-{i:05d}", "text": text, "genre": genre})
    return docs
