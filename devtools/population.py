"""A synthetic population with known truth, for measuring how well the person index links records.

Families live in a programme's area (the policy's `programme.area`): each has a family reference, a surname, a
postcode and one to three children; in some families the two youngest are twins (one date of birth, two first
names that do not sound alike). Every child has a valid NHS number (modulus 11) and a truth id. Services then
observe the children as partners' files would, with the noise real files carry:

- first names as nicknames (Robert as Bob) or spelling variants (Mohammed, Muhammad), and one-character typos
  in first names and surnames;
- a middle name in a full name; a double-barrelled surname written with a space or as one of its parts;
- day and month of the date of birth swapped, occasionally a day off by one, or no date at all;
- a house move between (or during) services, at one point for the whole family, and some rows without a postcode;
- the NHS number where the service holds it, and its own child reference where it issues one (a family support
  service may only know the family's reference, which names a group, never a person). Health visiting, like
  LEAP's NHS trust, sends names only as tokens made at source (which key as the names themselves do). A service
  that sees one twin nearly always sees both, as often.

Each observation is a plain dict; `record_table` turns them into the rows `shared.identity.linkage.link` reads,
under a given root key, as ingest would: person identifiers as `kind=pseudonym` (an NHS number as the pseudonym
of its programme source token, kind `nhs_number_token`, as a trust sends it; a service's child reference as
`partner_ref:<service>`), the family reference apart as a group, names, date of birth and postcode as match-key
tokens. `score` measures persons against the truth. Names come from common first names and surnames in England
and Wales, with a tail of made-up ones, drawn Zipf-like so that common names are common; any resemblance to a
real child is chance. Everything is reproducible from the seed.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import jellyfish
import pyarrow as pa

from devtools.synthetic import nhs_number
from shared.identity.linkage import KIND_SEPARATOR
from shared.identity.matchkeys import LIST_COLUMNS, STRONG_KEYS, TOKEN_COLUMNS, Identity, MatchKeys, identity_from
from shared.identity.pseudonymise import Pseudonymiser
from shared.identity.source import TOKEN_TYPE, SourceTokens
from shared.policy.loader import Policy

TODAY = date(2026, 11, 1)
FAMILY_SIZES = {1: 45, 2: 38, 3: 17}
"""Children per family: how often each size is drawn (twins make a family at least two)."""
TWINS_TOGETHER = 0.95
"""A service that sees one twin nearly always sees the other, as often: health visitors visit the household, a
nursery takes both."""
TRUTH = "truth"
"""The column `record_table(..., with_truth=True)` adds: the child a record is really about."""

GIRLS = ["Olivia", "Amelia", "Isla", "Ava", "Ivy", "Freya", "Lily", "Florence", "Mia", "Willow", "Rosie", "Sophia",
         "Isabella", "Grace", "Daisy", "Sienna", "Poppy", "Elsie", "Emily", "Ella", "Evelyn", "Phoebe", "Sofia", "Evie",
         "Charlotte", "Harper", "Millie", "Matilda", "Maya", "Sophie", "Alice", "Emilia", "Isabelle", "Ruby", "Luna",
         "Maisie", "Aria", "Penelope", "Mila", "Bonnie", "Eva", "Hallie", "Eliza", "Ada", "Violet", "Esme", "Arabella",
         "Imogen", "Jessica", "Delilah", "Layla", "Scarlett", "Hannah", "Chloe", "Zara", "Aisha", "Fatima", "Maryam",
         "Khadija", "Amara", "Zainab", "Hana", "Nour", "Leah", "Abigail", "Eleanor", "Elizabeth", "Katherine",
         "Rebecca", "Victoria", "Margaret", "Jasmine", "Priya", "Ananya", "Anaya", "Inaya", "Sara", "Zoe", "Nia", "Ama",
         "Adaeze", "Chidinma", "Folake", "Abena", "Efua", "Amina", "Hodan", "Ifrah", "Zuzanna", "Julia", "Maja",
         "Zofia", "Lena", "Beatriz", "Ines", "Leonor", "Mariana", "Ana", "Gabriela", "Chiara", "Giulia", "Aaliyah",
         "Tia", "Kiara", "Eden", "Holly", "Megan", "Lucy", "Lola", "Erin", "Molly", "Orla", "Niamh", "Aoife", "Thea",
         "Clara", "Iris", "Harriet", "Beatrice", "Nancy", "Edith", "Mabel", "Robyn", "Naomi", "Esther", "Ruth",
         "Miriam", "Salma", "Yasmin", "Samira", "Halima", "Mariam"]
BOYS = ["Muhammad", "Noah", "Oliver", "George", "Leo", "Arthur", "Oscar", "Theodore", "Freddie", "Harry", "Archie",
        "Jack", "Henry", "Charlie", "Alfie", "Thomas", "Jacob", "William", "Isaac", "Joshua", "Lucas", "Edward",
        "Finley", "Teddy", "James", "Tommy", "Roman", "Max", "Ethan", "Arlo", "Hugo", "Reggie", "Albie", "Rory", "Luca",
        "Jude", "Louie", "Mason", "Elijah", "Sebastian", "Ezra", "Benjamin", "Daniel", "Samuel", "Alexander", "Robert",
        "Frederick", "Alfred", "Matthew", "Nathaniel", "Zachary", "Adam", "Yusuf", "Ibrahim", "Omar", "Ali", "Ayaan",
        "Zayn", "Hamza", "Musa", "Idris", "Kwame", "Kofi", "Kwabena", "Chinedu", "Emeka", "Tobi", "Femi", "Tunde",
        "David", "Joseph", "Michael", "John", "Jakub", "Szymon", "Filip", "Antoni", "Kacper", "Tomasz", "Mateus",
        "Tiago", "Rodrigo", "Santiago", "Gabriel", "Rafael", "Dev", "Arjun", "Aarav", "Rohan", "Vihaan", "Ryan",
        "Dylan", "Jayden", "Tyler", "Kai", "Jaxon", "Caleb", "Reuben", "Felix", "Stanley", "Harrison", "Jenson",
        "Riley", "Toby", "Jamie", "Liam", "Aiden", "Callum", "Kieran", "Connor", "Cian", "Oisin", "Abdullahi",
        "Mustafa", "Bilal", "Ismail", "Yahya", "Ayub", "Malachi", "Jesse", "Nathan", "Aaron", "Dominic", "Patrick",
        "Francis", "Peter", "Andrew", "Christopher", "Anthony", "Stephen", "Kayden", "Leon", "Marcus", "Jordan",
        "Elliot", "Louis"]
SURNAMES = ["Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas", "Johnson",
            "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards", "Hughes", "Green", "Hall",
            "Lewis", "Harris", "Clarke", "Patel", "Jackson", "Wood", "Turner", "Martin", "Cooper", "Hill", "Ward",
            "Morris", "Moore", "Clark", "Lee", "King", "Baker", "Harrison", "Morgan", "Allen", "James", "Scott",
            "Phillips", "Watson", "Davis", "Parker", "Price", "Bennett", "Young", "Griffiths", "Mitchell", "Kelly",
            "Cook", "Carter", "Richardson", "Bailey", "Collins", "Bell", "Shaw", "Murphy", "Miller", "Cox", "Richards",
            "Khan", "Marshall", "Anderson", "Simpson", "Ellis", "Adams", "Singh", "Begum", "Wilkinson", "Foster",
            "Chapman", "Powell", "Webb", "Rogers", "Gray", "Mason", "Ali", "Hunt", "Hussain", "Campbell", "Matthews",
            "Owen", "Palmer", "Holmes", "Mills", "Barnes", "Knight", "Lloyd", "Butler", "Russell", "Barker", "Fisher",
            "Stevens", "Jenkins", "Murray", "Dixon", "Harvey", "Ahmed", "Rahman", "Uddin", "Islam", "Miah", "Akhtar",
            "Iqbal", "Shah", "Mahmood", "Hassan", "Mohamed", "Abdi", "Osman", "Farah", "Warsame", "Okafor", "Okeke",
            "Adeyemi", "Adebayo", "Okonkwo", "Nwosu", "Eze", "Balogun", "Ogunleye", "Mensah", "Owusu", "Boateng",
            "Asante", "Osei", "Appiah", "Agyeman", "Nowak", "Kowalski", "Wisniewski", "Wojcik", "Kaminski",
            "Lewandowski", "Zielinski", "Silva", "Santos", "Ferreira", "Pereira", "Costa", "Oliveira", "Rodrigues",
            "Fernandes", "Gomes", "Martins", "Sousa", "Nguyen", "Tran", "Chen", "Wang", "Li", "Zhang", "Liu", "Wong",
            "Kaur", "Gill", "Sharma", "Kumar", "Mistry", "Joshi", "Desai", "O'Brien", "O'Connor", "O'Neill", "Byrne",
            "Ryan", "Walsh", "McCarthy", "Doyle", "Brennan", "Gallagher", "Reid", "Stewart", "Robertson", "Grant",
            "Fraser", "Ross", "Hamilton", "Henry", "Francis", "Bryan", "Duncan", "Graham", "Sutherland", "Kennedy",
            "Lawrence", "Gordon", "Wallace", "Spencer", "Pearson", "Hart", "Hudson", "Fletcher", "Dawson", "Armstrong",
            "Gibson", "Lowe", "Nicholson", "Howard", "Burke", "Quinn", "Daly", "Forde", "Bishop", "Pryce", "Nelson",
            "Douglas", "Joseph", "Samuels", "Clarke-Reid", "Bailey-Brown"]
MIDDLE = ["Grace", "Rose", "May", "Mae", "Louise", "Jane", "Marie", "James", "John", "Ali", "David", "Alexander",
          "Joseph", "Olu", "Kofi", "Anne"]

NICKNAMES = {
    "Robert": ["Bob", "Rob", "Bobby"], "William": ["Will", "Bill", "Billy"], "Elizabeth": ["Liz", "Beth", "Lizzie"],
    "Katherine": ["Kate", "Katie", "Kathy"], "Alexander": ["Alex", "Xander"], "Thomas": ["Tom", "Tommy"],
    "Oliver": ["Ollie"], "Charlotte": ["Lottie", "Charlie"], "James": ["Jim", "Jamie"], "Samuel": ["Sam", "Sammy"],
    "Daniel": ["Dan", "Danny"], "Joshua": ["Josh"], "Benjamin": ["Ben", "Benji"], "Matthew": ["Matt"],
    "Jacob": ["Jake"], "Isabella": ["Izzy", "Bella"], "Olivia": ["Liv", "Livvy"], "Amelia": ["Millie", "Amy"],
    "Henry": ["Harry", "Hal"], "Frederick": ["Freddie", "Fred"], "Theodore": ["Theo", "Teddy"],
    "Alfred": ["Alfie", "Alf"], "Edward": ["Ed", "Eddie", "Ted"], "Jessica": ["Jess", "Jessie"],
    "Rebecca": ["Becky", "Becca"], "Abigail": ["Abby", "Abi"], "Eleanor": ["Ellie", "Nell"],
    "Margaret": ["Maggie", "Peggy"], "Victoria": ["Vicky", "Tori"], "Zachary": ["Zac", "Zach"],
    "Nathaniel": ["Nate", "Nathan"], "Sebastian": ["Seb"], "Matilda": ["Tilly", "Tilda"], "Florence": ["Flo"],
    "Gabriel": ["Gabe"], "Christopher": ["Chris"], "Anthony": ["Tony"], "Michael": ["Mike", "Mikey"],
    "Joseph": ["Joe", "Joey"], "Penelope": ["Penny"], "Harriet": ["Hattie"], "Beatrice": ["Bea"],
    "Muhammad": ["Mo"], "Ibrahim": ["Ibby"], "Abdullahi": ["Abdi"], "Tomasz": ["Tomek"], "Jakub": ["Kuba"],
    "Zuzanna": ["Zuza"], "Gabriela": ["Gabi"], "Mariana": ["Mari"],
}
"""What a service may call a child instead of the name on the birth record."""
VARIANTS = [("Muhammad", "Mohammed", "Mohammad", "Muhammed"), ("Sofia", "Sophia"), ("Isabelle", "Isabel"),
            ("Aisha", "Ayesha", "Aysha"), ("Yusuf", "Yousef", "Yusef"), ("Zara", "Sara"), ("Maryam", "Mariam"),
            ("Amina", "Aminah"), ("Aaliyah", "Aliyah"), ("Khadija", "Khadijah"), ("Layla", "Leila"),
            ("Jayden", "Jaden"), ("Aiden", "Aidan"), ("Connor", "Conor"), ("Elliot", "Elliott"),
            ("Zayn", "Zain"), ("Ayaan", "Ayan"), ("Finley", "Finlay"), ("Reggie", "Reggy"), ("Stephen", "Steven")]
"""Spellings of one name that different services write for the same child."""

_SYLLABLES = ("ka ri na lo me ta vi so ra el an is do ze mi ko ya be la nu ti fa", "n l s r th ne ra ia")
_SURNAME_PARTS = ("Ash Black Brook Cald Dun Fair Glen Hart Holl Kirk Lang Marl Nor Oak Pen Red Rook Stan Thorn Wyn"
                  " Ald Bram Cres Drey Elm Fen Gold Hal Ivy Lark", "by ford ley ton wood well more field ham worth"
                  " stead wick croft dale")
_KEYBOARD = {c: near for c, near in zip("abcdefghijklmnopqrstuvwxyz", (
    "qswz", "vghn", "xdfv", "serfcx", "wsdr", "drtgvc", "ftyhbv", "gyujnb", "ujko", "huikmn", "jiolm", "kop",
    "njk", "bhjm", "iklp", "ol", "wa", "edft", "awedxz", "rfgy", "yhji", "cfgb", "qase", "zsdc", "tghu", "asx"),
    strict=True)}


@dataclass(frozen=True)
class Service:
    """A service that sees children and sends the platform a file about them."""

    name: str
    reach: float
    """Share of the children it sees."""
    visits: tuple[int, int]
    """Rows per child it sees: between these two, uniformly."""
    nhs_share: float
    """Share of its children whose NHS number it holds."""
    names: str
    """How it sends names: `split` (first name and surname columns), `full` (one full-name column), `tokens`
    (first name and surname tokenised at source, as a trust does) or `none`."""
    child_refs: bool
    """Whether it issues its own reference per child, or knows only the family's reference."""


SERVICES = (
    Service("health-visiting", 0.95, (1, 5), 1.0, "tokens", False),  # a trust: NHS and name tokens, birth, postcode
    Service("early-years-setting", 0.45, (1, 3), 0.5, "full", True),
    Service("childrens-centre", 0.35, (1, 4), 0.1, "split", True),
    Service("family-support-charity", 0.25, (1, 6), 0.2, "full", False),
    Service("speech-and-language", 0.08, (1, 3), 0.95, "full", True),
)
"""A programme's services, modelled on LEAP's partners: health visiting reaches nearly every child."""


@dataclass(frozen=True)
class Noise:
    """How often each kind of error is made, per child and service (one registration)."""

    nickname: float = 0.12
    """Of children whose name has a nickname in `NICKNAMES`."""
    variant: float = 0.3
    """Of children whose name has other spellings in `VARIANTS`."""
    first_typo: float = 0.02
    surname_typo: float = 0.02
    middle_name: float = 0.15
    """Of full names: a middle name between first name and surname."""
    double_surname_space: float = 0.15
    double_surname_one_part: float = 0.25
    """Of double-barrelled surnames: written with a space, or as one of the parts."""
    dob_swapped: float = 0.02
    """Of dates whose day is 12 or less: day and month swapped."""
    dob_off_by_one: float = 0.005
    dob_missing: float = 0.01
    postcode_missing: float = 0.02


@dataclass(frozen=True)
class Child:
    truth: str
    first: str
    middle: str
    surname: str
    born: date
    nhs_number: str
    twin: str | None = None
    """The truth id of the child's twin."""


@dataclass(frozen=True)
class Family:
    family_ref: str
    surname: str
    postcode: str
    moved_to: str | None
    """The new postcode where the family moved house while services saw them."""
    children: tuple[Child, ...]


@dataclass(frozen=True)
class Population:
    seed: int
    families: tuple[Family, ...]
    children: tuple[Child, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "children", tuple(c for family in self.families for c in family.children))

    @property
    def twins(self) -> list[tuple[str, str]]:
        """Each pair of twins once, by truth id."""
        return [(child.truth, child.twin) for child in self.children if child.twin and child.truth < child.twin]


def seeded(seed: int | str) -> random.Random:
    """The generator every draw here comes from: reproducible from its seed (synthetic data, not secrets)."""
    return random.Random(seed)  # noqa: S311


class _Zipf:
    """A draw in which the name of rank k is drawn in proportion to 1 / k**s."""

    def __init__(self, names: Sequence[str], s: float) -> None:
        self.names = list(names)
        self.cumulative = list(itertools.accumulate(1 / rank**s for rank in range(1, len(names) + 1)))

    def draw(self, rng: random.Random) -> str:
        return self.names[bisect.bisect(self.cumulative, rng.random() * self.cumulative[-1])]


def _made_up_names(rng: random.Random, count: int, parts: tuple[str, str], taken: Iterable[str], *,
                  syllables: bool) -> list[str]:
    """Names that sound like names and are nobody's: two or three syllables and an ending, or the two halves of an
    English place name."""
    starts, ends = parts[0].split(), parts[1].split()
    seen = {name.casefold() for name in taken}
    names: list[str] = []
    for _ in range(count * 50):
        middle = "".join(rng.choice(starts) for _ in range(rng.choice((2, 3)))) if syllables else rng.choice(starts)
        name = (middle + rng.choice(ends)).capitalize()
        if name.casefold() not in seen and 3 <= len(name) <= 12:
            seen.add(name.casefold())
            names.append(name)
            if len(names) == count:
                return names
    raise ValueError(f"too few parts to make {count} distinct names")


class _Names:
    """Who is called what: listed common names first (drawn most often), then made-up ones in the tail."""

    def __init__(self, seed: int) -> None:
        rng = seeded(f"names:{seed}")
        listed = GIRLS + BOYS
        self.girls = _Zipf(GIRLS + _made_up_names(rng, 300, _SYLLABLES, listed, syllables=True), 0.65)
        self.boys = _Zipf(BOYS + _made_up_names(rng, 300, _SYLLABLES, listed, syllables=True), 0.65)
        places = _made_up_names(rng, 350, _SURNAME_PARTS, SURNAMES, syllables=False)
        sounds = _made_up_names(rng, 350, _SYLLABLES, SURNAMES + places + GIRLS + BOYS, syllables=True)
        self.surnames = _Zipf(SURNAMES + [name for pair in zip(places, sounds, strict=True) for name in pair], 0.55)
        self.middle = MIDDLE

    def first(self, rng: random.Random, siblings: Iterable[str] = ()) -> str:
        """A first name that does not sound like a sibling's, nor spell the same name another way (no parents
        call twins Sophia and Sofia)."""
        names = self.girls if rng.random() < 0.5 else self.boys
        taken = {_sounds_like(sibling) for sibling in siblings}
        while True:
            name = names.draw(rng)
            if _sounds_like(name) not in taken:
                return name


def _sounds_like(name: str) -> str:
    """Metaphone (not the NYSIIS the match keys use), one code for a whole group of spelling variants."""
    group = next((group for group in VARIANTS if name in group), (name,))
    return jellyfish.metaphone(group[0])


def area_of(source: Policy | Mapping[str, Any]) -> dict[str, Any]:
    """Postcode districts and child ages from the policy's `programme.area` (or such a mapping itself)."""
    area = source.programme.area if isinstance(source, Policy) else source
    return {"postcode_districts": list(area.get("postcode_districts") or ["SW9"]),
            "child_ages": list(area.get("child_ages") or [0, 4])}


def population(area: Policy | Mapping[str, Any], families: int, *, seed: int = 0, twin_share: float = 0.05,
               double_surname_share: float = 0.06, moved_share: float = 0.12, today: date = TODAY) -> Population:
    """Families in the area, 1-3 children each, all with distinct NHS numbers. In `twin_share` of families the
    two youngest are twins: by default about 3% of births, twice the UK's 1 in 65, so a benchmark sees enough."""
    rng = seeded(seed)
    names = _Names(seed)
    place = area_of(area)
    districts, (youngest_age, oldest_age) = place["postcode_districts"], place["child_ages"]
    span = max(int((oldest_age + 1 - youngest_age) * 365.25), 1)
    nhs_numbers: set[str] = set()
    made: list[Family] = []
    counter = itertools.count()
    for index in range(families):
        surname = names.surnames.draw(rng)
        if "-" not in surname and rng.random() < double_surname_share:
            surname = f"{surname}-{_other(rng, names.surnames, surname)}"
        postcode = _postcode(rng, districts)
        moved_to = _move(rng, postcode, districts) if rng.random() < moved_share else None
        twins = rng.random() < twin_share
        size = max(rng.choices(tuple(FAMILY_SIZES), weights=tuple(FAMILY_SIZES.values()))[0], 2 if twins else 1)
        latest = today - timedelta(days=int(youngest_age * 365.25) + rng.randrange(span))
        births: list[date] = []
        for birth in range(size):
            if twins and birth == 1:
                births.append(births[0])
            else:
                births.append(latest if not births else births[-1] - timedelta(days=rng.randint(330, 1400)))
        given: list[str] = []
        children: list[Child] = []
        truths = [f"c{next(counter):07d}" for _ in births]
        for birth, born in enumerate(births):
            given.append(names.first(rng, given))
            number = nhs_number(rng)
            while number in nhs_numbers:
                number = nhs_number(rng)
            nhs_numbers.add(number)
            twin = truths[1 - birth] if twins and birth < 2 else None
            children.append(Child(truths[birth], given[-1], rng.choice(names.middle), surname, born, number, twin))
        made.append(Family(f"F{index:07d}", surname, postcode, moved_to, tuple(children)))
    return Population(seed, tuple(made))


def families_for(records: int, services: Sequence[Service] = SERVICES, twin_share: float = 0.05) -> int:
    """About how many families make `records` observations."""
    per_child = sum(s.reach * (s.visits[0] + s.visits[1]) / 2 for s in services)
    total = sum(FAMILY_SIZES.values())
    children = (sum(size * weight for size, weight in FAMILY_SIZES.items()) + twin_share * FAMILY_SIZES[1]) / total
    return max(1, round(records / (per_child * children)))


def observations(people: Population, *, seed: int | None = None, services: Sequence[Service] = SERVICES,
                 noise: Noise = Noise()) -> Iterator[dict[str, Any]]:
    """Every row each service sends about each child it sees, in order of service and child.

    Each dict holds what the service wrote: first, surname, full_name (None where the service does not send that
    column), date_of_birth (a date, or None), postcode, nhs_number (None where not held), family_ref, child_ref
    (None where the service has no reference of its own), and the truth: the child's truth id, `noise` (what
    went wrong in this row), `service` and `record` (a unique id).
    """
    rng = seeded(people.seed * 7919 + 1 if seed is None else seed)
    for service in services:
        numbers, references = itertools.count(1), itertools.count(rng.randrange(10**5, 10**6))
        for family in people.families:
            move = rng.random()  # when, in this service's time with the family, it moved house
            visits: dict[str, int] = {}
            for child in family.children:
                twin = child.twin
                if twin is not None and twin in visits and rng.random() < TWINS_TOGETHER:  # together, or not at all
                    visits[child.truth] = visits[twin]
                else:
                    visits[child.truth] = rng.randint(*service.visits) if rng.random() < service.reach else 0
                if visits[child.truth]:
                    reference = f"{service.name[:2].upper()}{next(references):07d}" if service.child_refs else None
                    moved_after = round(move * visits[child.truth]) if family.moved_to else visits[child.truth]
                    yield from _registration(rng, service, family, child, reference, noise, numbers,
                                             visits[child.truth], moved_after)


def _registration(rng: random.Random, service: Service, family: Family, child: Child, child_ref: str | None,
                  noise: Noise, numbers: Iterator[int], visits: int, moved_after: int) -> Iterator[dict[str, Any]]:
    """The rows one service sends about one child: its register is written once, so its errors repeat; the family's
    house move falls at one point of the service's time with it, for every child."""
    errors: list[str] = []
    first, surname, full_name = _names_as_written(rng, service, child, noise, errors)
    born = _date_as_written(rng, child.born, noise, errors)
    nhs = child.nhs_number if rng.random() < service.nhs_share else None
    if nhs is None:
        errors.append("no NHS number")
    postcode_missing = rng.random() < noise.postcode_missing
    for visit in range(visits):
        postcode = family.postcode if visit < moved_after else family.moved_to
        row_errors = errors + (["moved house"] if postcode != family.postcode else [])
        if postcode_missing:
            postcode = None
            row_errors.append("no postcode")
        yield {"record": f"{service.name}:{next(numbers):07d}", "service": service.name, "first": first,
               "surname": surname, "full_name": full_name, "date_of_birth": born, "postcode": postcode,
               "nhs_number": nhs, "family_ref": family.family_ref, "child_ref": child_ref, "truth": child.truth,
               "noise": tuple(row_errors)}


def _names_as_written(rng: random.Random, service: Service, child: Child, noise: Noise,
                      errors: list[str]) -> tuple[str | None, str | None, str | None]:
    if service.names == "none":
        return None, None, None
    first = child.first
    nicknames = NICKNAMES.get(first)
    variants = next((group for group in VARIANTS if first in group), None)
    if nicknames and rng.random() < noise.nickname:
        first = rng.choice(nicknames)
        errors.append("nickname")
    elif variants and rng.random() < noise.variant:
        first = rng.choice([name for name in variants if name != first])
        errors.append("spelling variant")
    if rng.random() < noise.first_typo:
        first = typo(rng, first)
        errors.append("first name typo")
    surname = child.surname
    if "-" in surname:
        draw = rng.random()
        if draw < noise.double_surname_space:
            surname = surname.replace("-", " ")
            errors.append("double surname with a space")
        elif draw < noise.double_surname_space + noise.double_surname_one_part:
            surname = rng.choice(surname.split("-"))
            errors.append("one part of a double surname")
    if rng.random() < noise.surname_typo:
        surname = typo(rng, surname)
        errors.append("surname typo")
    if service.names in ("split", "tokens"):  # tokens at source key as the names themselves (matchkeys.py)
        return first, surname, None
    if rng.random() < noise.middle_name:
        errors.append("middle name")
        return None, None, f"{first} {child.middle} {surname}"
    return None, None, f"{first} {surname}"


def _date_as_written(rng: random.Random, born: date, noise: Noise, errors: list[str]) -> date | None:
    draw = rng.random()
    if draw < noise.dob_missing:
        errors.append("no date of birth")
        return None
    draw -= noise.dob_missing
    if draw < noise.dob_swapped and born.day <= 12 and born.day != born.month:
        errors.append("day and month swapped")
        return date(born.year, born.day, born.month)
    draw -= noise.dob_swapped
    if draw < noise.dob_off_by_one:
        errors.append("day off by one")
        return born + timedelta(days=rng.choice((-1, 1)))
    return born


def typo(rng: random.Random, name: str) -> str:
    """One slip of the keyboard, rarely on the first letter: a neighbouring key, a letter dropped or doubled, or
    two letters swapped."""
    letters = [i for i, c in enumerate(name) if c.isalpha()]
    if len(letters) < 3:
        return name
    at = rng.choice(letters[1:])
    c = name[at].lower()
    kind = rng.choice(("substitute", "drop", "double", "transpose"))
    if kind == "substitute":
        return name[:at] + rng.choice(_KEYBOARD[c]) + name[at + 1:]
    if kind == "drop":
        return name[:at] + name[at + 1:]
    if kind == "double":
        return name[:at] + c + name[at:]
    other = at - 1 if at - 1 in letters[1:] else at + 1 if at + 1 < len(name) and name[at + 1].isalpha() else None
    if other is None or name[other].lower() == c:  # nothing to swap with: a letter dropped instead
        return name[:at] + name[at + 1:]
    low, high = sorted((at, other))
    return name[:low] + name[high] + name[low] + name[high + 1:]


def _other(rng: random.Random, names: _Zipf, avoid: str) -> str:
    while True:
        name = names.draw(rng)
        if name != avoid and "-" not in name:
            return name


_UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


def _postcode(rng: random.Random, districts: Sequence[str]) -> str:
    unit = rng.choice(_UNIT_LETTERS) + rng.choice(_UNIT_LETTERS)
    return f"{rng.choice(districts)} {rng.randint(0, 9)}{unit}"


def _move(rng: random.Random, postcode: str, districts: Sequence[str]) -> str:
    """A new address: nearby (same sector) a third of the time, elsewhere in the area otherwise."""
    while True:
        if rng.random() < 1 / 3:
            moved = postcode[:-2] + rng.choice(_UNIT_LETTERS) + rng.choice(_UNIT_LETTERS)
        else:
            moved = _postcode(rng, districts)
        if moved != postcode:
            return moved


# The linkage record table -----------------------------------------------------------------------------------

SCHEMA = pa.schema([pa.field("record", pa.string()), pa.field("ids", pa.list_(pa.string())),
                    pa.field("groups", pa.list_(pa.string())), pa.field("strong_keys", pa.list_(pa.string())),
                    *(pa.field(name, pa.string()) for name in TOKEN_COLUMNS),
                    *(pa.field(name, pa.list_(pa.string())) for name in LIST_COLUMNS)])
"""What `shared.identity.linkage.link` reads, and the family reference kept apart as a group (never an id)."""


class RecordMaker:
    """Observations to linkage records under one root key, each identity's tokens made once."""

    def __init__(self, root_key: bytes) -> None:
        self.pseudonyms = Pseudonymiser(root_key)
        self.sources = SourceTokens.from_root_key(root_key)
        self.match_keys = MatchKeys(root_key)
        self._tokens: dict[Identity, tuple[dict[str, object], list[str]]] = {}
        self._nhs: dict[str, str] = {}

    def nhs_id(self, number: str) -> str:
        """`nhs_number_token=<pseudonym>`: the platform pseudonym of the number's programme source token."""
        if number not in self._nhs:
            token = self.sources.token(number)
            self._nhs[number] = f"{TOKEN_TYPE}{KIND_SEPARATOR}{self.pseudonyms.pseudonym(TOKEN_TYPE, token)}"
        return self._nhs[number]

    def tokens(self, row: Mapping[str, Any]) -> tuple[dict[str, object], list[str]]:
        identity = identity_from({"first_name": row.get("first"), "surname": row.get("surname"),
                                  "full_name": row.get("full_name"), "date_of_birth": row.get("date_of_birth"),
                                  "postcode": row.get("postcode")})
        made = self._tokens.get(identity)
        if made is None:
            if identity.empty:
                made = ({**dict.fromkeys(TOKEN_COLUMNS), **{name: [] for name in LIST_COLUMNS}}, [])
            else:
                keys = self.match_keys.keys(identity)
                made = (self.match_keys.tokens(identity), [key for name in STRONG_KEYS for key in keys.get(name, [])])
            self._tokens[identity] = made
        return made

    def record(self, row: Mapping[str, Any]) -> dict[str, object]:
        service = row["service"]
        ids = [self.nhs_id(row["nhs_number"])] if row.get("nhs_number") else []
        if row.get("child_ref"):
            kind = f"partner_ref:{service}"
            ids.append(f"{kind}{KIND_SEPARATOR}{self.pseudonyms.pseudonym(kind, row['child_ref'])}")
        groups = [self.pseudonyms.pseudonym(f"partner_ref:{service}", row["family_ref"])] if row.get("family_ref") \
            else []
        tokens, strong = self.tokens(row)
        return {"record": row["record"], "ids": ids, "groups": groups, "strong_keys": strong, **tokens}


def record_table(rows: Iterable[Mapping[str, Any]], root_key: bytes, *, with_truth: bool = False) -> pa.Table:
    """The linkage records of the observations, in their order; `with_truth` adds the `truth` column (drop it
    before linking)."""
    maker = RecordMaker(root_key)
    columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    truth: list[str] = []
    for row in rows:
        for name, value in maker.record(row).items():
            columns[name].append(value)
        if with_truth:
            truth.append(row["truth"])
    table = pa.table(columns, schema=SCHEMA)
    return table.append_column(TRUTH, pa.array(truth, pa.string())) if with_truth else table


# Scoring against the truth ------------------------------------------------------------------------------------

def _pairs(count: int) -> int:
    return count * (count - 1) // 2


def score(persons: list[str], truth: list[str], twins: list[tuple[str, str]]) -> dict[str, Any]:
    """Pairwise precision and recall of the persons (one key per record) against the true children: precision is
    the share of record pairs put in one person that are one child, recall the share of one child's record pairs
    that were put in one person. Twins merged counts twin pairs with a record of each in one person."""
    together = Counter(zip(persons, truth, strict=True))
    true_positive = sum(_pairs(n) for n in together.values())
    predicted = sum(_pairs(n) for n in Counter(persons).values())
    actual = sum(_pairs(n) for n in Counter(truth).values())
    children_of: dict[str, set[str]] = defaultdict(set)
    persons_of: dict[str, set[str]] = defaultdict(set)
    for person, child in together:
        children_of[person].add(child)
        persons_of[child].add(person)
    return {"precision": true_positive / predicted if predicted else 1.0,
            "recall": true_positive / actual if actual else 1.0,
            "true_pairs": actual, "linked_pairs": predicted,
            "twin_pairs": len(twins), "twins_merged": sum(bool(persons_of[a] & persons_of[b]) for a, b in twins),
            "mixed_persons": sum(len(children) > 1 for children in children_of.values()),
            "split_children": sum(len(found) > 1 for found in persons_of.values()),
            "children": len(persons_of)}
