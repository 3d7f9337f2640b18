"""Name pools for loadtests/bench_sanctions.py: a synthetic, seeded sanctions list of many
cultures, the perturbations a screened name arrives with, and clean names that are not listed.

The listed and the clean pools are disjoint (different cultures and syllables); the clean
set also mixes single listed tokens into clean names, the way real false positives arise.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

LATIN_GIVEN = [
    "John",
    "James",
    "Robert",
    "Michael",
    "William",
    "David",
    "Richard",
    "Joseph",
    "Thomas",
    "Charles",
    "Daniel",
    "Matthew",
    "Anthony",
    "Mark",
    "Paul",
    "Steven",
    "Andrew",
    "Kenneth",
    "George",
    "Edward",
    "Brian",
    "Ronald",
    "Timothy",
    "Jason",
    "Jeffrey",
    "Ryan",
    "Gary",
    "Nicholas",
    "Eric",
    "Jonathan",
    "Stephen",
    "Larry",
    "Justin",
    "Scott",
    "Brandon",
    "Frank",
    "Benjamin",
    "Gregory",
    "Samuel",
    "Raymond",
    "Patrick",
    "Alexander",
    "Jack",
    "Dennis",
    "Jerry",
    "Tyler",
    "Aaron",
    "Henry",
    "Douglas",
    "Peter",
    "Adam",
    "Nathan",
    "Zachary",
    "Walter",
    "Kyle",
    "Harold",
    "Carl",
    "Jeremy",
    "Mary",
    "Patricia",
    "Jennifer",
    "Linda",
    "Elizabeth",
    "Barbara",
    "Susan",
    "Jessica",
    "Sarah",
    "Karen",
    "Nancy",
    "Lisa",
    "Margaret",
    "Betty",
    "Sandra",
    "Ashley",
    "Dorothy",
    "Kimberly",
    "Emily",
    "Donna",
    "Michelle",
    "Carol",
    "Amanda",
    "Melissa",
    "Deborah",
    "Stephanie",
    "Rebecca",
    "Laura",
    "Sharon",
    "Cynthia",
    "Kathleen",
    "Helen",
    "Amy",
    "Shirley",
    "Angela",
    "Anna",
    "Brenda",
    "Pamela",
    "Nicole",
    "Ruth",
    "Katherine",
    "José",
    "Juan",
    "Luis",
    "Carlos",
    "Jorge",
    "Manuel",
    "Francisco",
    "Antonio",
    "Miguel",
    "Rafael",
    "Pedro",
    "Ramón",
    "Andrés",
    "Sebastián",
    "María",
    "Lucía",
    "Carmen",
    "Rosa",
    "Isabel",
    "Josefina",
    "Beatriz",
    "Inés",
    "Sofía",
    "Valentina",
    "Hans",
    "Klaus",
    "Jürgen",
    "Günter",
    "Stefan",
    "Wolfgang",
    "Dieter",
    "Uwe",
    "Björn",
    "François",
    "Jérôme",
    "Hélène",
    "Élodie",
    "Benoît",
    "René",
    "Zoé",
    "Thérèse",
]
LATIN_SURNAME_HEADS = [
    "Bar",
    "Cal",
    "Dun",
    "Fair",
    "Gar",
    "Hal",
    "Kirk",
    "Lang",
    "Mar",
    "Ash",
    "Brad",
    "Carl",
    "Dal",
    "Ed",
    "Fen",
    "Glen",
    "Har",
    "Hol",
    "Mont",
    "Nor",
    "Ober",
    "Pen",
    "Ros",
    "Sal",
    "Stan",
    "Thorn",
    "Wal",
    "Win",
    "Whit",
    "Bel",
    "Cas",
    "Del",
    "Es",
    "Fer",
    "Gon",
    "Her",
    "Lor",
    "Mor",
    "Nav",
    "Ort",
    "Pas",
    "Quin",
    "Ram",
    "San",
    "Tor",
    "Val",
    "Vil",
    "Zam",
    "Brook",
    "Craw",
    "Ell",
    "Ford",
    "Gib",
    "Hast",
    "Ken",
    "Lind",
    "Pres",
    "Red",
    "Shel",
    "Stock",
    "Wex",
    "Ald",
    "Bur",
    "Cog",
    "Dra",
]
LATIN_SURNAME_TAILS = [
    "ton",
    "ley",
    "ford",
    "wood",
    "son",
    "man",
    "er",
    "ez",
    "ard",
    "ing",
    "berg",
    "stein",
    "mann",
    "ier",
    "ville",
    "dez",
    "ado",
    "era",
    "ano",
    "ini",
    "etti",
    "well",
    "worth",
    "by",
    "stead",
    "hurst",
    "more",
    "ridge",
    "ow",
]

ARABIC_GIVEN = [
    "Mohammed",
    "Ahmed",
    "Ali",
    "Omar",
    "Khaled",
    "Yusuf",
    "Ibrahim",
    "Hussein",
    "Hassan",
    "Mustafa",
    "Abdullah",
    "Osama",
    "Tariq",
    "Karim",
    "Walid",
    "Faisal",
    "Nasser",
    "Saeed",
    "Samir",
    "Jamal",
    "Rashid",
    "Hamza",
    "Bilal",
    "Anwar",
    "Ismail",
    "Mahmoud",
    "Nabil",
    "Ziad",
    "Adel",
    "Ayman",
    "Bashir",
    "Fadi",
    "Ghassan",
    "Hisham",
    "Imad",
    "Jaber",
    "Kamal",
    "Majid",
    "Nizar",
    "Qasim",
    "Rami",
    "Salim",
    "Talal",
    "Wael",
    "Yasser",
    "Zaid",
    "Fatima",
    "Aisha",
    "Mariam",
    "Layla",
    "Noor",
    "Huda",
    "Samira",
    "Zainab",
    "Amina",
    "Rania",
    "Salma",
    "Hana",
    "Yasmin",
    "Dalia",
]
ARABIC_FAMILY = [
    "Rahman",
    "Hashimi",
    "Qasimi",
    "Masri",
    "Tikriti",
    "Baghdadi",
    "Zawahiri",
    "Shami",
    "Halabi",
    "Najdi",
    "Yamani",
    "Maliki",
    "Hakim",
    "Jaziri",
    "Tamimi",
    "Dosari",
    "Harbi",
    "Otaibi",
    "Qahtani",
    "Shammari",
    "Anazi",
    "Mutairi",
    "Ghamdi",
    "Zahrani",
    "Sulaimani",
    "Kurdi",
    "Farsi",
    "Basri",
    "Mosuli",
    "Ansari",
    "Azzam",
    "Haddad",
    "Khoury",
    "Nassar",
    "Saleh",
    "Darwish",
    "Barakat",
    "Hamdan",
    "Jaber",
    "Khalil",
    "Mansour",
    "Nasrallah",
    "Qureshi",
    "Rifai",
    "Sabbagh",
    "Taha",
    "Yassin",
    "Zein",
    "Fakhoury",
    "Ghanem",
    "Habib",
    "Issa",
    "Karam",
    "Lahham",
    "Makdisi",
    "Nader",
    "Obeid",
    "Sayegh",
    "Tannous",
    "Wehbe",
]
ARABIC_ABD = [
    "Rahman",
    "Aziz",
    "Karim",
    "Rahim",
    "Latif",
    "Majid",
    "Hamid",
    "Qadir",
    "Salam",
    "Jabbar",
    "Wahab",
    "Ghani",
    "Hakim",
    "Malik",
    "Nasir",
]

RUSSIAN_GIVEN = [
    "Aleksandr",
    "Sergei",
    "Dmitry",
    "Andrei",
    "Aleksei",
    "Vladimir",
    "Ivan",
    "Mikhail",
    "Nikolai",
    "Yuri",
    "Evgeny",
    "Oleg",
    "Pavel",
    "Igor",
    "Viktor",
    "Boris",
    "Anatoly",
    "Gennady",
    "Konstantin",
    "Roman",
    "Maksim",
    "Artem",
    "Denis",
    "Vadim",
    "Stanislav",
    "Grigory",
    "Leonid",
    "Tatyana",
    "Elena",
    "Olga",
    "Natalya",
    "Irina",
    "Svetlana",
    "Anna",
    "Marina",
    "Yulia",
    "Ekaterina",
    "Lyudmila",
    "Galina",
    "Vera",
    "Nadezhda",
]
RUSSIAN_ROOTS = [
    "Ivan",
    "Petr",
    "Smirn",
    "Kuznets",
    "Sokol",
    "Pop",
    "Lebed",
    "Kozl",
    "Novik",
    "Moroz",
    "Volk",
    "Zaits",
    "Pavl",
    "Semen",
    "Golub",
    "Vinograd",
    "Bogdan",
    "Vorob",
    "Fed",
    "Mikhail",
    "Belyak",
    "Tarasenk",
    "Belous",
    "Kovalen",
    "Shevchen",
    "Bondar",
    "Tkach",
    "Kravch",
    "Oleinik",
    "Melnik",
    "Savchen",
    "Rudenk",
    "Lysen",
    "Marchen",
    "Kulik",
    "Gavril",
    "Orl",
    "Andre",
    "Makar",
    "Nikit",
    "Zakhar",
    "Zuev",
    "Borisov",
    "Yakovl",
    "Gromov",
    "Frol",
    "Dorofe",
    "Kirill",
    "Rybak",
    "Sorokin",
    "Abram",
    "Titov",
    "Kudryavts",
    "Baran",
    "Kulikov",
    "Alekse",
    "Stepan",
    "Nazar",
]
RUSSIAN_TAILS = ("ov", "ev", "in", "sky", "enko", "uk", "ich", "ovich", "insky", "yan")
RUSSIAN_PATRONYMIC_TAILS = ("ovich", "evich", "ovna", "evna")

PINYIN_SURNAME = [
    "Wang",
    "Li",
    "Zhang",
    "Liu",
    "Chen",
    "Yang",
    "Huang",
    "Zhao",
    "Wu",
    "Zhou",
    "Xu",
    "Sun",
    "Ma",
    "Zhu",
    "Hu",
    "Guo",
    "He",
    "Gao",
    "Lin",
    "Luo",
    "Zheng",
    "Liang",
    "Xie",
    "Song",
    "Tang",
    "Han",
    "Feng",
    "Deng",
    "Cao",
    "Peng",
    "Zeng",
    "Xiao",
    "Tian",
    "Dong",
    "Yuan",
    "Pan",
    "Cai",
    "Jiang",
    "Yu",
    "Du",
    "Ye",
    "Cheng",
    "Wei",
    "Su",
    "Lu",
    "Ding",
    "Ren",
    "Shen",
    "Yao",
    "Lu",
    "Jiang",
    "Cui",
    "Zhong",
    "Tan",
    "Fan",
    "Wang",
    "Jin",
    "Shi",
    "Liao",
    "Jia",
    "Xia",
    "Fu",
    "Fang",
    "Zou",
    "Xiong",
    "Bai",
    "Meng",
    "Qin",
]
PINYIN_SYLLABLES = [
    "wei",
    "min",
    "jun",
    "hong",
    "ming",
    "hua",
    "ping",
    "ling",
    "jing",
    "li",
    "xiao",
    "yan",
    "fang",
    "qiang",
    "lei",
    "jie",
    "tao",
    "bin",
    "hai",
    "yong",
    "gang",
    "chao",
    "dong",
    "feng",
    "guo",
    "hui",
    "jian",
    "kai",
    "lin",
    "long",
    "mei",
    "na",
    "peng",
    "qing",
    "rong",
    "shan",
    "tian",
    "wen",
    "xin",
    "xue",
    "ying",
    "yu",
    "zhen",
    "zhi",
    "bo",
    "chen",
    "fei",
    "gui",
    "hao",
    "heng",
    "jia",
    "kang",
    "kun",
    "lan",
    "le",
    "liang",
    "lu",
    "ning",
    "pei",
    "qi",
    "rui",
    "sheng",
    "shu",
    "song",
    "ting",
    "wan",
    "xia",
    "xiang",
    "xu",
    "yang",
    "yi",
    "yong",
    "yuan",
    "yue",
    "yun",
    "ze",
    "zhao",
    "zhong",
]

ENTITY_HEADS = [
    "Golden",
    "Silver",
    "Bright",
    "Eastern",
    "Western",
    "Northern",
    "Southern",
    "Grand",
    "Royal",
    "Global",
    "Pacific",
    "Atlantic",
    "Oriental",
    "Crescent",
    "Phoenix",
    "Falcon",
    "Eagle",
    "Lion",
    "Star",
    "Sun",
    "Horizon",
    "Summit",
    "Delta",
    "Sigma",
    "Omega",
    "Alpha",
    "Zenith",
    "Apex",
    "Vertex",
    "Caspian",
    "Baltic",
    "Aegean",
    "Levant",
    "Sahara",
    "Persian",
    "Arabian",
    "Siberian",
    "Ural",
    "Volga",
    "Danube",
    "Tigris",
    "Euphrates",
    "Nile",
    "Andes",
    "Orinoco",
    "Mekong",
    "Yangtze",
    "Ganges",
    "Indus",
    "Amur",
    "Lena",
    "Kama",
    "Oka",
    "Don",
    "Neva",
    "Kura",
    "Araks",
]
ENTITY_MIDDLES = [
    "Petroleum",
    "Shipping",
    "Maritime",
    "Logistics",
    "Metals",
    "Mining",
    "Chemicals",
    "Energy",
    "Finance",
    "Investment",
    "Holdings",
    "Industries",
    "Engineering",
    "Construction",
    "Technology",
    "Electronics",
    "Aviation",
    "Marine",
    "Tankers",
    "Commodities",
    "Resources",
    "Minerals",
    "Steel",
    "Cement",
    "Textiles",
    "Pharma",
    "Agro",
    "Foods",
    "Telecom",
    "Capital",
    "Ventures",
    "Partners",
    "Exchange",
]
LEGAL_FORMS = (
    "LLC",
    "Ltd.",
    "Limited",
    "Inc.",
    "Corp.",
    "Corporation",
    "Co.",
    "GmbH",
    "S.A.",
    "PLC",
    "AG",
    "JSC",
    "OJSC",
    "LLP",
    "Trading Co.",
)

# Clean pools: cultures and syllables the listed pools do not use.
CLEAN_GIVEN = [
    "Hiroshi",
    "Takeshi",
    "Kenji",
    "Yuki",
    "Haruto",
    "Sakura",
    "Aiko",
    "Daiki",
    "Ryota",
    "Sota",
    "Minato",
    "Yui",
    "Hina",
    "Kaito",
    "Riku",
    "Rin",
    "Aarav",
    "Vivaan",
    "Aditya",
    "Ishaan",
    "Arjun",
    "Saanvi",
    "Ananya",
    "Diya",
    "Priya",
    "Kavya",
    "Rohan",
    "Vikram",
    "Lakshmi",
    "Deepak",
    "Suresh",
    "Chidi",
    "Emeka",
    "Ngozi",
    "Chinwe",
    "Oluwaseun",
    "Adebayo",
    "Folake",
    "Kwame",
    "Kofi",
    "Ama",
    "Abena",
    "Yaw",
    "Nnamdi",
    "Ifeoma",
    "Tunde",
    "Sven",
    "Lars",
    "Ingrid",
    "Astrid",
    "Bjarne",
    "Eirik",
    "Solveig",
    "Torbjorn",
    "Halvard",
    "Sigrid",
    "Leif",
    "Gunnhild",
    "Ragnhild",
]
CLEAN_FAMILY = [
    "Tanaka",
    "Watanabe",
    "Yamamoto",
    "Nakamura",
    "Kobayashi",
    "Yoshida",
    "Yamaguchi",
    "Matsumoto",
    "Inoue",
    "Kimura",
    "Hayashi",
    "Shimizu",
    "Ishikawa",
    "Nakajima",
    "Maeda",
    "Fujita",
    "Okada",
    "Goto",
    "Hasegawa",
    "Murakami",
    "Kondo",
    "Sakamoto",
    "Endo",
    "Aoki",
    "Sharma",
    "Verma",
    "Gupta",
    "Iyer",
    "Menon",
    "Nair",
    "Reddy",
    "Chatterjee",
    "Banerjee",
    "Mukherjee",
    "Bhattacharya",
    "Deshpande",
    "Kulkarni",
    "Joshi",
    "Pillai",
    "Okonkwo",
    "Adeyemi",
    "Okafor",
    "Mensah",
    "Asante",
    "Boateng",
    "Owusu",
    "Nwosu",
    "Eze",
    "Obi",
    "Balogun",
    "Haugen",
    "Johansen",
    "Halvorsen",
    "Bakken",
    "Solberg",
    "Lunde",
    "Strand",
    "Moen",
    "Berntsen",
    "Fjeld",
    "Dahle",
    "Vik",
]
CLEAN_ENTITY_HEADS = [
    "Kestrel",
    "Juniper",
    "Tamarind",
    "Obsidian",
    "Marigold",
    "Quillon",
    "Harrier",
    "Wisteria",
    "Cobalt",
    "Lantern",
]
CLEAN_ENTITY_MIDDLES = [
    "Bakery",
    "Florists",
    "Dental",
    "Pottery",
    "Bicycles",
    "Stationery",
    "Furniture",
    "Optics",
    "Printing",
    "Laundry",
]

# Spellings of the same name in other transliterations: a perturbation replaces one with another.
VARIANTS = {
    "Mohammed": ("Muhammad", "Mohamed", "Mohammad", "Muhammed"),
    "Ahmed": ("Ahmad",),
    "Yusuf": ("Youssef", "Yousef", "Yusef"),
    "Hussein": ("Husain", "Hussain", "Husein"),
    "Hassan": ("Hasan",),
    "Mustafa": ("Mostafa", "Moustafa"),
    "Abdullah": ("Abdallah",),
    "Osama": ("Usama",),
    "Omar": ("Umar",),
    "Khaled": ("Khalid",),
    "Ibrahim": ("Ebrahim", "Ibraheem"),
    "Yasser": ("Yasir", "Yaser"),
    "Aleksandr": ("Alexander", "Aleksander", "Alexandr"),
    "Aleksei": ("Alexey", "Aleksey", "Alexei"),
    "Sergei": ("Sergey", "Serguei"),
    "Dmitry": ("Dmitri", "Dmitriy"),
    "Yuri": ("Yury", "Iouri", "Yuriy"),
    "Mikhail": ("Michail", "Mihail"),
    "Nikolai": ("Nikolay",),
    "Evgeny": ("Yevgeny", "Evgeniy"),
    "Tatyana": ("Tatiana",),
    "Natalya": ("Natalia",),
    "Andrei": ("Andrey",),
    "Maksim": ("Maxim",),
}

_CYRILLIC = (
    ("shch", "щ"), ("kh", "х"), ("zh", "ж"), ("ch", "ч"), ("sh", "ш"), ("ts", "ц"), ("ya", "я"),  # noqa: RUF001
    ("yu", "ю"), ("ye", "е"), ("a", "а"), ("b", "б"), ("v", "в"), ("g", "г"), ("d", "д"), ("e", "е"),  # noqa: RUF001
    ("z", "з"), ("i", "и"), ("y", "ы"), ("k", "к"), ("l", "л"), ("m", "м"), ("n", "н"), ("o", "о"),  # noqa: RUF001
    ("p", "п"), ("r", "р"), ("s", "с"), ("t", "т"), ("u", "у"), ("f", "ф"), ("c", "к"), ("x", "кс"),  # noqa: RUF001
)  # fmt: skip


def cyrillic(name: str) -> str:
    """A Latin-spelt Russian name in Cyrillic script (a rough inverse of the usual romanisation)."""
    out = []
    for word in name.split():
        lower, i, letters = word.lower(), 0, []
        while i < len(lower):
            for latin, cyr in _CYRILLIC:
                if lower.startswith(latin, i):
                    letters.append(cyr)
                    i += len(latin)
                    break
            else:
                letters.append(lower[i])
                i += 1
        text = "".join(letters)
        out.append(text[:1].upper() + text[1:])
    return " ".join(out)


@dataclass(frozen=True, slots=True)
class Party:
    uid: str
    names: tuple[str, ...]
    kind: str  # "latin" | "arabic" | "russian" | "chinese" | "entity"
    parts: tuple[str, ...]  # the primary name's words in "first middle last" order, Latin script
    cyrillic: bool


LATIN_LINKS = ("", "", "a", "e", "i", "o", "en", "er", "el", "ing")
ARABIC_SYLLABLES = [
    "ka",
    "ma",
    "ha",
    "sa",
    "ra",
    "ba",
    "da",
    "na",
    "za",
    "ja",
    "qa",
    "ta",
    "fa",
    "la",
    "wa",
    "sha",
    "kha",
    "gha",
    "di",
    "ri",
    "mi",
    "ni",
    "si",
    "bi",
    "hu",
    "mu",
    "ru",
]
ARABIC_ENDINGS = ["ri", "wi", "mi", "di", "ni", "si", "bi", "ji", "zi", "ani", "awi", "ati"]
RUSSIAN_SYLLABLES = [
    "ko",
    "mo",
    "vo",
    "ra",
    "la",
    "se",
    "te",
    "bo",
    "go",
    "do",
    "zu",
    "ni",
    "pe",
    "ru",
    "sa",
    "sha",
    "che",
    "zhe",
    "kra",
    "sto",
    "gro",
    "bla",
]
RUSSIAN_CODAS = ["l", "v", "r", "n", "sh", "k", "d", "t", "b"]


def _latin_surname(rng: random.Random) -> str:
    return rng.choice(LATIN_SURNAME_HEADS) + rng.choice(LATIN_LINKS) + rng.choice(LATIN_SURNAME_TAILS)


def _arabic_family(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return rng.choice(ARABIC_FAMILY)
    made = rng.choice(ARABIC_SYLLABLES) + rng.choice(ARABIC_SYLLABLES) + rng.choice(ARABIC_ENDINGS)
    return ("Al-" if rng.random() < 0.5 else "") + made.capitalize()


def _arabic_given(rng: random.Random) -> str:
    return (
        rng.choice(ARABIC_SYLLABLES) + rng.choice(ARABIC_SYLLABLES) + rng.choice(("d", "r", "m", "l", "n", "b"))
    ).capitalize()


def _russian_surname(rng: random.Random) -> str:
    if rng.random() < 0.15:
        return rng.choice(RUSSIAN_ROOTS) + rng.choice(RUSSIAN_TAILS)
    root = rng.choice(RUSSIAN_SYLLABLES) + rng.choice(RUSSIAN_SYLLABLES) + rng.choice(RUSSIAN_CODAS)
    return root.capitalize() + rng.choice(RUSSIAN_TAILS)


def _person(rng: random.Random, kind: str) -> tuple[str, ...]:
    if kind == "latin":
        given = rng.sample(LATIN_GIVEN, 2 if rng.random() < 0.4 else 1)
        if rng.random() < 0.3:  # a family middle name
            given.append(_latin_surname(rng))
        if rng.random() < 0.3:  # a double-barrelled family name
            return (*given, _latin_surname(rng), _latin_surname(rng))
        return (*given, _latin_surname(rng))
    if kind == "arabic":
        first = rng.choice(ARABIC_GIVEN) if rng.random() < 0.7 else "Abdul" + rng.choice(ARABIC_ABD).lower()
        father = rng.choice(ARABIC_GIVEN) if rng.random() < 0.4 else _arabic_given(rng)
        family = _arabic_family(rng)
        if rng.random() < 0.3:
            return (first, father, rng.choice(ARABIC_GIVEN), family)
        return (first, father, family)
    if kind == "russian":
        father = rng.choice(RUSSIAN_GIVEN).rstrip("aiy") if rng.random() < 0.4 else _russian_surname(rng)[:-2]
        patronymic = father + rng.choice(RUSSIAN_PATRONYMIC_TAILS)
        if rng.random() < 0.3:
            return (rng.choice(RUSSIAN_GIVEN), patronymic, _russian_surname(rng) + "-" + _russian_surname(rng))
        return (rng.choice(RUSSIAN_GIVEN), patronymic, _russian_surname(rng))
    pinyin = (rng.choice(PINYIN_SYLLABLES) + rng.choice(PINYIN_SYLLABLES)).capitalize()
    if rng.random() < 0.3:  # written apart, as some lists do
        return (rng.choice(PINYIN_SYLLABLES).capitalize(), pinyin, rng.choice(PINYIN_SURNAME))
    return (pinyin, rng.choice(PINYIN_SURNAME))


BRAND_SYLLABLES = [
    "zar",
    "tex",
    "vol",
    "kor",
    "mex",
    "tra",
    "nor",
    "bel",
    "vin",
    "dar",
    "sol",
    "lum",
    "kap",
    "rox",
    "ven",
    "tal",
    "mar",
    "gen",
    "fin",
    "qua",
]


def _brand(rng: random.Random) -> str:
    return (
        rng.choice(BRAND_SYLLABLES) + rng.choice(BRAND_SYLLABLES) + rng.choice(("", "o", "a", "ix", "on"))
    ).capitalize()


def _entity(rng: random.Random) -> tuple[str, ...]:
    head = _brand(rng) if rng.random() < 0.6 else rng.choice(ENTITY_HEADS)
    extra = (_latin_surname(rng),) if rng.random() < 0.5 else (rng.choice(ENTITY_HEADS),)
    return (head, *extra, rng.choice(ENTITY_MIDDLES), rng.choice(LEGAL_FORMS))


def _aliases(rng: random.Random, kind: str, parts: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for _ in range(rng.randint(1, 3)):
        if kind == "entity":
            out.append(" ".join((*parts[:-2], rng.choice(ENTITY_MIDDLES), rng.choice(LEGAL_FORMS))))
        elif rng.random() < 0.5:
            out.append(" ".join(_person(rng, kind)))  # an unrelated alias (a nom de guerre)
        else:
            swapped = [rng.choice(VARIANTS.get(p, (p,))) for p in parts]
            out.append(" ".join(swapped[:1] + swapped[-1:]))  # short form
    return out


def sanctions_list(parties: int, seed: int) -> list[Party]:
    """The synthetic list: individuals of four cultures and entities with legal forms."""
    rng = random.Random(seed)
    kinds = ("latin", "arabic", "russian", "chinese", "entity")
    weights = (0.2, 0.3, 0.2, 0.15, 0.15)
    out = []
    for n in range(parties):
        kind = rng.choices(kinds, weights)[0]
        parts = _entity(rng) if kind == "entity" else _person(rng, kind)
        script = kind == "russian" and rng.random() < 0.3
        primary = cyrillic(" ".join(parts)) if script else _published(rng, kind, parts)
        names = [primary, *(_aliases(rng, kind, parts) if rng.random() < 0.4 else [])]
        core = parts[:-1] if kind == "entity" else parts
        out.append(Party(f"P{n:05d}", tuple(names), kind, core, script))
    return out


def _published(rng: random.Random, kind: str, parts: tuple[str, ...]) -> str:
    if kind != "entity" and rng.random() < 0.5:  # OFAC style
        return f"{parts[-1].upper()}, {' '.join(parts[:-1])}"
    return " ".join(parts)


# Perturbations: each takes the words of a listed name and returns a query, or None where
# it does not apply to that name.
Perturbation = Callable[[random.Random, Party], str | None]


def _one_token(rng: random.Random, party: Party, edit: Callable[[random.Random, str], str]) -> str:
    words = list(party.parts)
    choices = [i for i, w in enumerate(words) if len(w) >= 4] or list(range(len(words)))
    i = rng.choice(choices)
    words[i] = edit(rng, words[i])
    return " ".join(words)


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _letter_at(rng: random.Random, word: str, start: int = 1) -> int:
    spots = [i for i in range(start, len(word)) if word[i].isalpha()]
    return rng.choice(spots) if spots else len(word) - 1


def _substitute(rng: random.Random, word: str) -> str:
    i = _letter_at(rng, word)
    return word[:i] + rng.choice(_LETTERS.replace(word[i].lower(), "")) + word[i + 1 :]


def _insert(rng: random.Random, word: str) -> str:
    i = rng.randrange(1, len(word) + 1)
    return word[:i] + rng.choice(_LETTERS) + word[i:]


def _delete(rng: random.Random, word: str) -> str:
    i = _letter_at(rng, word)
    return word[:i] + word[i + 1 :]


def _transpose(rng: random.Random, word: str) -> str:
    i = rng.randrange(1, len(word) - 1) if len(word) > 2 else 0
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :] if len(word) > 1 else word


def _variant(rng: random.Random, party: Party) -> str | None:
    words = list(party.parts)
    spots = [i for i, w in enumerate(words) if w in VARIANTS]
    if not spots:
        return None
    i = rng.choice(spots)
    words[i] = rng.choice(VARIANTS[words[i]])
    return " ".join(words)


def _script(rng: random.Random, party: Party) -> str | None:
    if party.cyrillic:  # listed in Cyrillic, screened as written in Latin
        return _variant(rng, party) or " ".join(party.parts)
    plain = " ".join(party.parts)
    folded = "".join(c for c in unicodedata.normalize("NFKD", plain) if not unicodedata.combining(c))
    return folded if folded != plain else None


def _reorder(rng: random.Random, party: Party) -> str | None:
    if len(party.parts) < 2:
        return None
    words = list(party.parts)
    while words == list(party.parts):
        rng.shuffle(words)
    return " ".join(words)


def _missing_middle(rng: random.Random, party: Party) -> str | None:
    if party.kind == "entity" or len(party.parts) < 3:
        return None
    words = list(party.parts)
    del words[rng.randrange(1, len(words) - 1)]
    return " ".join(words)


def _last_first(rng: random.Random, party: Party) -> str | None:
    if party.kind == "entity":
        return None
    return f"{party.parts[-1].upper()}, {' '.join(party.parts[:-1])}"


def _dropped_suffix(rng: random.Random, party: Party) -> str | None:
    return " ".join(party.parts) if party.kind == "entity" else None


PERTURBATIONS: dict[str, Perturbation] = {
    "typo: substitution": lambda rng, p: _one_token(rng, p, _substitute),
    "typo: insertion": lambda rng, p: _one_token(rng, p, _insert),
    "typo: deletion": lambda rng, p: _one_token(rng, p, _delete),
    "transposition": lambda rng, p: _one_token(rng, p, _transpose),
    "transliteration variant": _variant,
    "script / diacritics": _script,
    "token reordering": _reorder,
    "missing middle name": _missing_middle,
    "LAST, First form": _last_first,
    "dropped legal suffix": _dropped_suffix,
}


def perturbed(parties: list[Party], per_kind: int, seed: int) -> list[tuple[str, str, str]]:
    """(kind, query, uid): per_kind queries of each perturbation, of randomly chosen parties."""
    rng = random.Random(seed)
    out = []
    for kind, perturb in PERTURBATIONS.items():
        made = tries = 0
        while made < per_kind and tries < per_kind * 200:
            tries += 1
            party = rng.choice(parties)
            query = perturb(rng, party)
            if query is not None:
                out.append((kind, query, party.uid))
                made += 1
    return out


def clean_names(count: int, seed: int) -> list[tuple[str, str]]:
    """(kind, name) of people and firms not on the list: some entirely from the clean pools,
    some sharing one token with listed names (a listed given name, family name or firm word)."""
    rng = random.Random(seed)
    makers: dict[str, Callable[[], str]] = {
        "clean person": lambda: f"{rng.choice(CLEAN_GIVEN)} {rng.choice(CLEAN_FAMILY)}",
        "clean firm": lambda: (
            f"{rng.choice(CLEAN_ENTITY_HEADS)} {rng.choice(CLEAN_ENTITY_MIDDLES)} {rng.choice(LEGAL_FORMS)}"
        ),
        "listed given name": lambda: " ".join(
            (
                rng.choice([*LATIN_GIVEN, *ARABIC_GIVEN, *RUSSIAN_GIVEN]),
                rng.choice(CLEAN_GIVEN),
                rng.choice(CLEAN_FAMILY),
            )
        ),
        "listed family name": lambda: (
            f"{rng.choice(CLEAN_GIVEN)} {rng.choice([*ARABIC_FAMILY, _latin_surname(rng), _russian_surname(rng)])}"
        ),
        "listed firm word": lambda: " ".join(
            (
                rng.choice(ENTITY_HEADS),
                rng.choice(CLEAN_ENTITY_HEADS),
                rng.choice(CLEAN_ENTITY_MIDDLES),
                rng.choice(LEGAL_FORMS),
            )
        ),
        "listed surname, pinyin": lambda: f"{rng.choice(PINYIN_SURNAME)} {rng.choice(CLEAN_GIVEN)}",
    }
    kinds = list(makers)
    return [(kind, makers[kind]()) for kind in (kinds[n % len(kinds)] for n in range(count))]
