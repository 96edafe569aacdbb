"""An adversarial Brazilian customer file, with ground truth, built apart from the sandbox.

It shares no code with ``omnicanal.sandbox`` (nothing here imports it) so the identity
bench does not only measure the resolver on the generator it was tuned on. It is built
from public facts instead:

- first names by IBGE's "Nomes no Brasil" (Censo 2022): Maria 12.28M people (6.05%),
  José 5.16M, Ana 3.95M, João 3.43M, Antonio 2.24M, Francisco 1.67M, Pedro 1.62M,
  Carlos 1.47M, Lucas 1.34M, Luiz 1.34M; rarer names decay as the ranking does;
- surnames by the same release: Silva 34.0M (16.8%), Santos 21.4M (10.5%), Oliveira
  11.7M, Souza 9.2M, Pereira 6.9M, Ferreira 6.2M, Lima 6.1M, Alves 5.8M, Rodrigues
  5.4M, Costa 4.9M, Sousa 4.8M ... Batista 1.7M (its top 30), then a tail;
- compound first names (Maria Eduarda, João Pedro, Ana Paula) and the particles da, de,
  dos, do between surnames; two or three surnames, the mother's before the father's,
  the order changed or cut short when typed; a wife's married surname; Filho/Júnior/Neto;
- Brazilian hypocoristics (Zé, Chico, Toninho, Bia, Duda, Malu, Maju, Cadu, Cida, ...);
- households: 2.79 people per household in Censo 2022; a retailer's file holds one to
  four of them, who share the address, often a landline, sometimes a mobile or an email;
- phones: mobiles with the ninth digit (eight digits after it beginning 6-9 when it is
  dropped, as older systems and people still type them), without the area code, in
  every local format; numbers that Anatel's rules let operators give to a new owner
  after the old one leaves (the old owner's records keep it);
- CPFs with their check digits; at tills, "CPF na nota?" answered with well-known fake
  CPFs that pass the check digits (123.456.789-09 ...) or the cashier's own CPF;
  one-digit typos that fail them;
- eight sources with the habits of their forms: two web stores (email login, shipping
  address, CPF for the invoice), a till (upper case, cut names, "CONSUMIDOR FINAL",
  CPF or phone for the loyalty cashback), a CRM (work emails, old numbers), WhatsApp
  (the number and a profile name, often a nickname), support (a name that is the
  email's local part), an email list (the first name if any) and a paper loyalty form
  typed from handwriting (name, birth date dd/mm/yyyy, city, CEP; identifiers often
  missing or mistyped).

``generate(people, seed)`` is deterministic per seed. Every random choice that is noise
goes through ``Noise.maybe`` with its stated probability (``NOISE``), which counts trials
and hits, so tests can check each kind occurs in its stated proportion.
"""

from __future__ import annotations

import csv
import random
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

#: The ``omnicanal identity resolve`` input columns the file fills (a subset of
#: omnicanal.identity.resolve.INPUT_COLUMNS).
COLUMNS = [
    "record_id",
    "source",
    "email",
    "phone",
    "wa_id",
    "cpf",
    "first_name",
    "last_name",
    "full_name",
    "birth_date",
    "city",
    "postcode",
    "address",
]

DEFAULT_PEOPLE = 20_000
AS_OF = date(2026, 1, 1)

# ---------------------------------------------------------------------------- names
# thousands of people; the top ten of each sex from IBGE Censo 2022, the rest decaying
FEMALE = [
    ("Maria", 12284),
    ("Ana", 3949),
    ("Francisca", 720),
    ("Antônia", 600),
    ("Adriana", 560),
    ("Juliana", 560),
    ("Márcia", 550),
    ("Fernanda", 540),
    ("Patrícia", 530),
    ("Aline", 520),
    ("Sandra", 480),
    ("Camila", 470),
    ("Amanda", 460),
    ("Bruna", 450),
    ("Jéssica", 440),
    ("Letícia", 430),
    ("Júlia", 420),
    ("Luciana", 410),
    ("Vanessa", 400),
    ("Mariana", 390),
    ("Gabriela", 380),
    ("Beatriz", 370),
    ("Larissa", 360),
    ("Cláudia", 350),
    ("Vitória", 340),
    ("Rita", 320),
    ("Luana", 310),
    ("Sônia", 300),
    ("Renata", 290),
    ("Eliane", 280),
    ("Raimunda", 270),
    ("Daniela", 260),
    ("Carolina", 250),
    ("Isabela", 240),
    ("Rafaela", 230),
    ("Cristiane", 220),
    ("Simone", 210),
    ("Tatiana", 200),
    ("Débora", 190),
    ("Eduarda", 180),
    ("Alessandra", 170),
    ("Rosângela", 160),
    ("Terezinha", 150),
    ("Helena", 150),
    ("Aparecida", 140),
    ("Sofia", 130),
    ("Alice", 130),
    ("Lúcia", 120),
    ("Cecília", 110),
    ("Valéria", 100),
    ("Paula", 100),
    ("Priscila", 95),
    ("Thaís", 90),
]
MALE = [
    ("José", 5165), ("João", 3431), ("Antônio", 2241), ("Francisco", 1665),
    ("Pedro", 1624), ("Carlos", 1474), ("Lucas", 1342), ("Luiz", 1335), ("Paulo", 1300),
    ("Gabriel", 1100), ("Rafael", 900), ("Marcos", 880), ("Luís", 800), ("Daniel", 780),
    ("Marcelo", 760), ("Bruno", 700), ("Eduardo", 680), ("Felipe", 650),
    ("Raimundo", 620), ("Rodrigo", 600), ("Manoel", 560), ("Mateus", 540),
    ("André", 520), ("Fernando", 500), ("Fábio", 480), ("Leonardo", 470),
    ("Gustavo", 460), ("Guilherme", 450), ("Leandro", 420), ("Tiago", 400),
    ("Anderson", 390), ("Ricardo", 380), ("Márcio", 370), ("Jorge", 360),
    ("Sebastião", 350), ("Alexandre", 340), ("Roberto", 330), ("Edson", 320),
    ("Diego", 310), ("Vitor", 300), ("Sérgio", 290), ("Cláudio", 280), ("Matheus", 270),
    ("Thiago", 260), ("Geraldo", 250), ("Henrique", 200), ("Vinícius", 190),
    ("Miguel", 180), ("Arthur", 170), ("Davi", 160), ("Benedito", 150), ("Joaquim", 140),
    ("Augusto", 120), ("Alberto", 110),
]  # fmt: skip
# (chance of a second given name, the second names): "Maria" alone is rarer than
# "Maria José", "Maria Aparecida", "Maria Eduarda" ...
COMPOUND = {
    "Maria": (0.75, ["Eduarda", "Clara", "José", "Aparecida", "de Fátima", "das Graças",
                     "Luiza", "Júlia", "Helena", "Fernanda", "Vitória", "Alice", "Cecília",
                     "do Socorro", "da Conceição", "Antônia", "Cristina"]),
    "Ana": (0.55, ["Paula", "Clara", "Carolina", "Beatriz", "Luiza", "Júlia", "Cláudia",
                   "Maria", "Lúcia", "Cristina", "Vitória"]),
    "João": (0.5, ["Pedro", "Victor", "Paulo", "Lucas", "Gabriel", "Miguel", "Carlos",
                   "Guilherme"]),
    "José": (0.5, ["Carlos", "Roberto", "Antônio", "Luiz", "Maria", "Augusto", "Ricardo",
                   "Francisco"]),
    "Luiz": (0.4, ["Carlos", "Fernando", "Henrique", "Gustavo", "Eduardo", "Felipe"]),
    "Pedro": (0.35, ["Henrique", "Lucas", "Paulo", "Miguel"]),
    "Carlos": (0.3, ["Eduardo", "Alberto", "Henrique", "Roberto"]),
    "Paulo": (0.25, ["Roberto", "César", "Henrique"]),
    "Antônio": (0.3, ["Carlos", "Marcos", "José"]),
    "Francisco": (0.2, ["de Assis", "das Chagas"]),
}  # fmt: skip
# hypocoristics by given name (or by a compound given name)
NICKNAMES = {
    "José": ["Zé", "Zezinho", "Zezé"], "Francisco": ["Chico", "Chiquinho"],
    "Antônio": ["Toninho", "Tonho", "Tonico"], "Antônia": ["Toinha", "Tonha"],
    "Francisca": ["Chica", "Chiquinha"], "Beatriz": ["Bia"], "Eduarda": ["Duda"],
    "Eduardo": ["Dudu", "Edu"], "Gabriela": ["Gabi"], "Gabriel": ["Biel", "Gabi"],
    "Rafael": ["Rafa"], "Rafaela": ["Rafa"], "Fernanda": ["Nanda", "Fê"],
    "Fernando": ["Nando"], "Carolina": ["Carol"], "Patrícia": ["Pati", "Paty"],
    "Juliana": ["Ju"], "Júlia": ["Ju", "Juju"], "Isabela": ["Isa", "Bela"],
    "Mariana": ["Mari"], "Roberto": ["Beto"], "Alberto": ["Beto"], "Augusto": ["Guto"],
    "Gustavo": ["Guto", "Gu"], "Rodrigo": ["Digo"], "Vinícius": ["Vini"],
    "Guilherme": ["Gui"], "Henrique": ["Rique"], "Felipe": ["Lipe"],
    "Ricardo": ["Cacá", "Rick"], "Manoel": ["Mané", "Neco"], "Raimundo": ["Mundinho"],
    "Sebastião": ["Tião"], "Benedito": ["Dito"], "Aparecida": ["Cida"],
    "Camila": ["Mila"], "Daniela": ["Dani"], "Daniel": ["Dani"], "Alexandre": ["Xande"],
    "Leonardo": ["Léo"], "Matheus": ["Teteu"], "Pedro": ["Pedrinho"],
    "João": ["Joãozinho"], "Larissa": ["Lari"], "Luciana": ["Lu"], "Luana": ["Lu"],
    "Vitória": ["Vivi"], "Adriana": ["Dri"], "Cristiane": ["Cris"], "Carlos": ["Carlinhos"],
    "Rosângela": ["Rô"], "Terezinha": ["Tê"], "Joaquim": ["Quim"], "Luiz": ["Lula"],
    "Maria Eduarda": ["Duda"], "Maria Luiza": ["Malu"], "Maria Júlia": ["Maju"],
    "Maria Aparecida": ["Cida"], "Maria das Graças": ["Graça", "Gracinha"],
    "Maria do Socorro": ["Socorro", "Corrinha"], "Maria da Conceição": ["Ceição"],
    "Ana Carolina": ["Carol"], "Carlos Eduardo": ["Cadu"], "Ana Paula": ["Paulinha"],
    "Maria Clara": ["Clarinha"], "João Pedro": ["JP"], "Luiz Fernando": ["Nando"],
}  # fmt: skip
SURNAMES_TOP = [
    ("Silva", 34030), ("Santos", 21367), ("Oliveira", 11709), ("Souza", 9197),
    ("Pereira", 6888), ("Ferreira", 6226), ("Lima", 6095), ("Alves", 5757),
    ("Rodrigues", 5429), ("Costa", 4861), ("Sousa", 4797), ("Gomes", 4047),
    ("Nascimento", 3609), ("Araújo", 3461), ("Ribeiro", 3127), ("Almeida", 3069),
    ("Jesus", 2859), ("Barbosa", 2738), ("Soares", 2615), ("Carvalho", 2600),
    ("Martins", 2577), ("Lopes", 2338), ("Vieira", 2102), ("Rocha", 2044), ("Dias", 2035),
    ("Gonçalves", 2028), ("Fernandes", 1836), ("Santana", 1816), ("Andrade", 1707),
    ("Batista", 1703),
]  # fmt: skip
SURNAMES_TAIL = """Moreira Cardoso Teixeira Cavalcante Ramos Mendes Freitas Nunes Pinto Moura
Castro Correia Machado Monteiro Campos Reis Cunha Miranda Farias Pires Sales Borges Melo
Barros Marques Azevedo Aguiar Xavier Bezerra Fonseca Tavares Cruz Medeiros Nogueira Duarte
Assis Brito Figueiredo Leite Matos Viana Macedo Guimarães Siqueira Coelho Amaral Rezende
Moraes Queiroz Franco Sampaio Paiva Peixoto Cordeiro Vasconcelos Magalhães Pacheco Lacerda
Braga Bastos Garcia Neves Moura Holanda Albuquerque Bandeira Prado Toledo Camargo Mota
Fagundes Brandão Conceição Abreu Rangel Bittencourt Dantas Lira Falcão Galvão Quintino
Sobral Valente Arruda Menezes Cabral Pimentel Diniz Barreto Chaves Porto Lobo Vilela
Quaresma Portela Aragão Meireles Sardinha Nóbrega Trindade Uchoa Frota Jardim Esteves
Gouveia Paixão Godoy Bento Calado Muniz Resende Salgado Torres Seixas Tenório Ventura""".split()
SURNAMES = SURNAMES_TOP + [
    (name, max(60, round(1600 * (rank + 1) ** -0.75)))
    for rank, name in enumerate(dict.fromkeys(SURNAMES_TAIL))
]
# the particle a surname usually takes, and how often
PARTICLES = {"Silva": ("da", 0.5), "Santos": ("dos", 0.55), "Jesus": ("de", 0.9),
             "Conceição": ("da", 0.9), "Nascimento": ("do", 0.4), "Costa": ("da", 0.3),
             "Oliveira": ("de", 0.25), "Souza": ("de", 0.25), "Sousa": ("de", 0.25),
             "Lima": ("de", 0.2), "Almeida": ("de", 0.2), "Araújo": ("de", 0.2),
             "Assis": ("de", 0.8), "Paixão": ("da", 0.8), "Cruz": ("da", 0.6)}  # fmt: skip
AGNOMES = ("Filho", "Júnior", "Neto")
PLACEHOLDER_NAMES = ("CONSUMIDOR FINAL", "CONSUMIDOR", "CLIENTE", "NAO INFORMADO")

# ---------------------------------------------------------------------- addresses
# city, weight (a São Paulo retailer that also ships nationwide), area code (DDD),
# CEP ranges of the city (first five digits)
CITIES = [
    ("São Paulo", 35, "11", [(1000, 5999), (8000, 8499)]),
    ("Guarulhos", 5, "11", [(7000, 7399)]), ("Campinas", 5, "19", [(13000, 13139)]),
    ("Santo André", 3, "11", [(9000, 9299)]), ("Rio de Janeiro", 12, "21", [(20000, 23799)]),
    ("Niterói", 2, "21", [(24000, 24399)]), ("Belo Horizonte", 6, "31", [(30000, 31999)]),
    ("Salvador", 5, "71", [(40000, 42499)]), ("Recife", 4, "81", [(50000, 52999)]),
    ("Fortaleza", 5, "85", [(60000, 61599)]), ("Curitiba", 4, "41", [(80000, 82999)]),
    ("Porto Alegre", 4, "51", [(90000, 91999)]), ("Brasília", 4, "61", [(70000, 72799)]),
    ("Goiânia", 2, "62", [(74000, 74899)]), ("Manaus", 2, "92", [(69000, 69099)]),
    ("Belém", 2, "91", [(66000, 66999)]),
]  # fmt: skip
STREETS = """São José|Sete de Setembro|XV de Novembro|Tiradentes|Santos Dumont|Dom Pedro II
Rui Barbosa|Brasil|Getúlio Vargas|das Flores|Marechal Deodoro|Duque de Caxias|Castro Alves
Bahia|Paraná|Amazonas|São Paulo|Santa Luzia|Boa Vista|da Independência|Floriano Peixoto
Barão do Rio Branco|José Bonifácio|Princesa Isabel|Joaquim Nabuco|Primeiro de Maio
Treze de Maio|Minas Gerais|Pernambuco|Goiás|Espírito Santo|Santa Catarina|Ceará|Piauí
Sergipe|Alagoas|Maranhão|Pará|das Palmeiras|dos Andradas|Voluntários da Pátria
Barão de Mauá|Visconde de Inhaúma|Padre Anchieta|Carlos Gomes|Olavo Bilac|Machado de Assis
Monteiro Lobato|Cecília Meireles|João Pessoa|Afonso Pena|Presidente Kennedy|das Acácias
dos Ipês|das Hortênsias|Bela Vista|Nova Esperança|São Sebastião|Santo Antônio|São João
Nossa Senhora Aparecida|Capitão Antônio Rosa|General Osório|Almirante Barroso""".replace(
    "\n", "|"
).split("|")
STREET_TYPES = [("Rua", 70, "R."), ("Avenida", 20, "Av."), ("Travessa", 5, "Tv."),
                ("Alameda", 5, "Al.")]  # fmt: skip

# ------------------------------------------------------------------------ contacts
EMAIL_DOMAINS = [("gmail.com", 55), ("hotmail.com", 18), ("outlook.com", 5),
                 ("yahoo.com.br", 7), ("bol.com.br", 3), ("uol.com.br", 3),
                 ("icloud.com", 3), ("terra.com.br", 2), ("live.com", 2),
                 ("hotmail.com.br", 2)]  # fmt: skip
DOMAIN_TYPOS = {
    "gmail.com": ["gmial.com", "gmail.con", "gamil.com", "gmail.com.br"],
    "hotmail.com": ["hotmal.com", "hotmail.con", "hotmial.com"],
    "yahoo.com.br": ["yaho.com.br", "yahoo.com"],
    "outlook.com": ["outlok.com"],
}
JUNK_EMAILS = ("naotem@gmail.com", "sememail@hotmail.com", "teste@teste.com",
               "nao@tem.com", "cliente@cliente.com")  # fmt: skip
# CPFs typed at tills for customers who give none; each passes the check digits
FAKE_CPFS = ("123.456.789-09", "111.444.777-35", "529.982.247-25", "000.000.001-91",
             "111.111.111-11", "000.000.000-00")  # fmt: skip

# ------------------------------------------------------------------------- sources
# share of records; chance the record holds email, phone, cpf, birth date, address;
# how it keeps the name: "split" first/last fields, "full" one field
SOURCES: dict[str, tuple[float, float, float, float, float, float, str]] = {
    "loja_web": (22, 1.0, 0.75, 0.45, 0.25, 0.95, "split"),
    "loja_app": (12, 1.0, 0.9, 0.95, 0.15, 0.95, "split"),
    "pdv": (20, 0.08, 0.35, 0.7, 0.05, 0.0, "split"),
    "crm": (12, 0.85, 0.8, 0.3, 0.5, 0.4, "split"),
    "whatsapp": (13, 0.0, 1.0, 0.0, 0.0, 0.0, "full"),
    "suporte": (8, 0.75, 0.4, 0.1, 0.0, 0.0, "full"),
    "email": (7, 1.0, 0.0, 0.0, 0.05, 0.0, "split"),
    "fidelidade": (6, 0.3, 0.5, 0.3, 0.95, 0.7, "full"),
}
# sources that cannot hold a person without an email: a login, a mailing list
EMAIL_SOURCES = ("loja_web", "loja_app", "email")
# records per person: mean ~2.1 (20k people leave ~42k records)
RECORDS_PER_PERSON = ((1, 38), (2, 30), (3, 18), (4, 9), (5, 4), (6, 1))
# customers of the file per household (of Censo 2022's 2.79 people per household)
HOUSEHOLD_CUSTOMERS = ((1, 62), (2, 28), (3, 8), (4, 2))

#: every noise kind and its probability per trial (what a trial is: see where it is used)
NOISE: dict[str, float] = {
    # people
    "second_email": 0.25,  # a person with 2+ emails (work, old provider)
    "third_email": 0.2,  # of those with two, a third
    "no_email": 0.12,  # a person with no email at all
    "second_mobile": 0.1,
    "old_number": 0.08,  # an old number still in some records ...
    "recycled_number": 0.5,  # ... which an operator gave to another customer
    "married_surname": 0.25,  # a woman in a couple household who took the husband's name
    "agnome": 0.05,  # a man with Filho/Júnior/Neto
    # households with 2+ customers
    "household_landline": 0.45,
    "household_email": 0.12,  # a couple sharing one email
    "borrowed_mobile": 0.1,  # a record of a member with another member's mobile
    # per record
    "phone_landline": 0.12,  # a record whose phone is the household's landline
    "phone_old": 0.3,  # a record (of a person with an old number) that gives it
    "phone_no_ninth": 0.12,  # a mobile typed without its ninth digit
    "phone_no_ddd": 0.06,  # a phone typed without the area code
    "wa_no_ninth": 0.15,  # a WhatsApp id without the ninth digit
    "email_secondary": 0.3,  # a record (of a person with 2+ emails) with another one
    "email_case": 0.1,  # upper case or spaces around the email
    "email_typo": 0.2,  # the paper form's handwriting: a different domain
    "cpf_typo": 0.03,  # one digit wrong (fails the check digits, but for a few)
    "cpf_typo_form": 0.12,
    "cpf_fake": 0.08,  # at the till: a well-known fake CPF
    "cpf_operator": 0.03,  # at the till: the cashier's own CPF
    "pdv_junk_email": 0.3,  # of the till's emails, a placeholder
    "pdv_store_phone": 0.04,  # the store's own phone
    "pdv_placeholder_name": 0.2,
    "pdv_first_name_only": 0.35,
    "nickname": 0.35,  # on WhatsApp, the profile name is a nickname
    "name_first_only": 0.3,  # support, email list, WhatsApp: the first name only
    "name_is_email": 0.25,  # support: the email's local part as the name
    "name_typo": 0.04,
    "name_typo_form": 0.2,
    "drop_particle": 0.4,  # "da Silva" typed "Silva"
    "surname_order": 0.1,  # the surnames in another order
    "last_surname_only": 0.35,  # only the last surname kept
    "first_given_only": 0.3,  # a compound given name cut to its first part
    "split_at_first_space": 0.3,  # a full name typed in one box, split at the first space
    "no_accents": 0.5,
    "upper_case": 0.15,
    "birth_typo": 0.02,
    "birth_day_month_swap": 0.04,
    "postcode_typo": 0.06,
    "no_city": 0.2,
    "address_abbrev": 0.4,
    "maiden_name_record": 0.4,  # a married woman's record under her maiden name
}


@dataclass
class Noise:
    """Draws each noise kind with its stated probability and counts trials and hits."""

    rng: random.Random
    trials: Counter = field(default_factory=Counter)
    hits: Counter = field(default_factory=Counter)

    def maybe(self, kind: str) -> bool:
        self.trials[kind] += 1
        hit = self.rng.random() < NOISE[kind]
        if hit:
            self.hits[kind] += 1
        return hit


@dataclass
class Person:
    person_id: str
    household_id: str
    sex: str
    given: str  # possibly compound: "Maria Eduarda"
    surnames: list[str]  # with particles: ["Santos", "da Silva"]
    maiden_surnames: list[str] | None
    birth_date: date
    city: str
    ddd: str
    postcode: str
    street: tuple[str, str, str, str]  # type, abbreviation, name, number
    complement: str
    cpf: str
    emails: list[str]
    mobiles: list[str]  # 11 digits: DDD + 9 + 8
    old_number: str | None = None
    landline: str | None = None
    household_email: str | None = None
    housemates: list[Person] = field(default_factory=list)

    @property
    def legal_name(self) -> str:
        return f"{self.given} {' '.join(self.surnames)}"


@dataclass
class Dataset:
    people: list[Person]
    #: (person_id, row in COLUMNS order)
    rows: list[tuple[str, list[str | None]]]
    #: per record, the noise kinds that touched it (for the error analysis)
    tags: list[list[str]]
    noise: Noise
    fake_cpfs: tuple[str, ...]  # well-known ones and the cashiers'


def cpf_check_digits(nine: str) -> str:
    digits = [int(d) for d in nine]
    for size in (9, 10):
        total = sum(d * w for d, w in zip(digits, range(size + 1, 1, -1), strict=False))
        digits.append(0 if total % 11 < 2 else 11 - total % 11)
    return f"{digits[9]}{digits[10]}"


def cpf_valid(cpf: str) -> bool:
    digits = "".join(c for c in cpf if c.isdigit())
    return len(digits) == 11 and cpf_check_digits(digits[:9]) == digits[9:]


def _weighted(rng: random.Random, pairs):
    names = [p[0] for p in pairs]
    weights = [p[1] for p in pairs]
    return rng.choices(names, weights=weights)[0]


def _unaccent(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _ascii_local(text: str) -> str:
    return "".join(c for c in _unaccent(text).lower() if c.isalnum())


def _strip_particle(surname: str) -> str:
    return surname.split(" ", 1)[1] if " " in surname else surname


class Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.noise = Noise(self.rng)
        self.used_emails: set[str] = set()
        self.used_numbers: set[str] = set()
        self.used_cpfs: set[str] = set()
        self.counter = 0
        # five stores, each with a cashier who types her own CPF, and a store phone
        self.cashier_cpfs = [self.new_cpf() for _ in range(5)]
        self.store_phones = [f"11{self.rng.randint(30000000, 39999999)}" for _ in range(5)]

    # --------------------------------------------------------------- identifiers
    def new_cpf(self) -> str:
        while True:
            nine = f"{self.rng.randrange(1, 10**9):09d}"
            cpf = nine + cpf_check_digits(nine)
            if cpf not in self.used_cpfs and len(set(cpf)) > 1:
                self.used_cpfs.add(cpf)
                return cpf

    def new_mobile(self, ddd: str) -> str:
        while True:
            number = f"{ddd}9{self.rng.randint(6, 9)}{self.rng.randrange(10**7):07d}"
            if number not in self.used_numbers:
                self.used_numbers.add(number)
                return number

    def new_landline(self, ddd: str) -> str:
        while True:
            number = f"{ddd}{self.rng.randint(2, 5)}{self.rng.randrange(10**7):07d}"
            if number not in self.used_numbers:
                self.used_numbers.add(number)
                return number

    def new_email(self, given: str, surnames: list[str], birth: date, work: bool) -> str:
        rng = self.rng
        first = _ascii_local(given.split()[0])
        last = _ascii_local(_strip_particle(surnames[-1]))
        while True:
            pattern = rng.randrange(7)
            if pattern == 0:
                local = f"{first}.{last}"
            elif pattern == 1:
                local = f"{first}{last}{birth.year % 100:02d}"
            elif pattern == 2:
                local = f"{first}_{last}"
            elif pattern == 3:
                local = f"{first}{birth.year}"
            elif pattern == 4:
                local = f"{first[0]}{last}{rng.randint(1, 99)}"
            elif pattern == 5:
                nick = NICKNAMES.get(given) or NICKNAMES.get(given.split()[0])
                local = f"{_ascii_local(rng.choice(nick)) if nick else first}{rng.randint(1, 999)}"
            else:
                local = f"{first}.{last}.{rng.randint(1, 9999)}"
            if work:
                domain = f"{rng.choice(['grupo', 'cia', 'empresa', 'consultoria'])}"
                domain += f"{rng.randint(1, 400)}.com.br"
                local = f"{first}.{last}"
            else:
                domain = _weighted(rng, EMAIL_DOMAINS)
            email = f"{local}@{domain}"
            if email not in self.used_emails:
                self.used_emails.add(email)
                return email

    # ------------------------------------------------------------------- people
    def given_name(self, sex: str) -> str:
        first = _weighted(self.rng, FEMALE if sex == "F" else MALE)
        if first in COMPOUND:
            chance, seconds = COMPOUND[first]
            if self.rng.random() < chance:
                return f"{first} {self.rng.choice(seconds)}"
        return first

    def surname(self) -> str:
        name = _weighted(self.rng, SURNAMES)
        particle = PARTICLES.get(name)
        if particle and self.rng.random() < particle[1]:
            return f"{particle[0]} {name}"
        return name

    def birth_date(self, low: int = 18, high: int = 80) -> date:
        age_days = self.rng.randint(low * 365, high * 365)
        return AS_OF - timedelta(days=age_days)

    def households(self, people: int) -> list[Person]:
        rng, out = self.rng, []
        household = 0
        while len(out) < people:
            household += 1
            size = min(_weighted(rng, HOUSEHOLD_CUSTOMERS), people - len(out))
            city, _, ddd, ranges = rng.choices(CITIES, weights=[c[1] for c in CITIES])[0]
            low, high = rng.choice(ranges)
            postcode = f"{rng.randint(low, high):05d}{rng.randrange(1000):03d}"
            kind, _, abbrev = rng.choices(STREET_TYPES, weights=[s[1] for s in STREET_TYPES])[0]
            street = (kind, abbrev, rng.choice(STREETS), str(rng.randint(1, 3000)))
            complement = (
                rng.choice([f"apto {rng.randint(1, 24)}{rng.randint(1, 4)}", "casa 2", "fundos",
                            f"bloco {rng.choice('ABCD')} apto {rng.randint(11, 154)}"])
                if rng.random() < 0.4 else ""
            )  # fmt: skip
            father_line, mother_line = self.surname(), self.surname()
            members: list[Person] = []
            for index in range(size):
                if index == 0:
                    sex = rng.choice("FM")
                elif index == 1 and size >= 2:
                    sex = "M" if members[0].sex == "F" else "F"  # a couple
                else:
                    sex = rng.choice("FM")  # an adult child or a parent
                if index == 0:
                    surnames = [self.surname(), father_line if sex == "M" else mother_line]
                elif index == 1:
                    surnames = [self.surname(), father_line if sex == "M" else mother_line]
                else:
                    surnames = [mother_line, father_line]  # the mother's, then the father's
                if _strip_particle(surnames[0]) == _strip_particle(surnames[1]):
                    surnames = surnames[1:]  # no "Silva da Silva" by chance
                elif rng.random() < 0.3:
                    surnames = surnames[1:]  # one surname only
                elif rng.random() < 0.15:
                    surnames = [self.surname(), *surnames]
                maiden = None
                if sex == "F" and index <= 1 and size >= 2 and self.noise.maybe("married_surname"):
                    maiden = list(surnames)
                    surnames = [*surnames[-1:], father_line]
                if sex == "M" and self.noise.maybe("agnome"):
                    surnames = [*surnames, rng.choice(AGNOMES)]
                given = self.given_name(sex)
                birth = self.birth_date(18 if index < 2 else 18, 80 if index < 2 else 45)
                person = Person(
                    person_id=f"P{len(out) + len(members) + 1:06d}",
                    household_id=f"H{household:06d}",
                    sex=sex,
                    given=given,
                    surnames=surnames,
                    maiden_surnames=maiden,
                    birth_date=birth,
                    city=city,
                    ddd=ddd,
                    postcode=postcode,
                    street=street,
                    complement=complement,
                    cpf=self.new_cpf(),
                    emails=[],
                    mobiles=[self.new_mobile(ddd)],
                )
                if not self.noise.maybe("no_email"):
                    person.emails.append(self.new_email(given, surnames, birth, work=False))
                    if self.noise.maybe("second_email"):
                        person.emails.append(
                            self.new_email(given, surnames, birth, work=rng.random() < 0.5)
                        )
                        if self.noise.maybe("third_email"):
                            person.emails.append(self.new_email(given, surnames, birth, False))
                if self.noise.maybe("second_mobile"):
                    person.mobiles.append(self.new_mobile(ddd))
                members.append(person)
            if size >= 2:
                landline = (
                    self.new_landline(members[0].ddd)
                    if self.noise.maybe("household_landline")
                    else None
                )
                shared = None
                if self.noise.maybe("household_email"):
                    family = _ascii_local(_strip_particle(members[0].surnames[-1]))
                    shared = f"familia{family}"
                    shared += f"{rng.randint(1, 99)}@{_weighted(rng, EMAIL_DOMAINS)}"
                    self.used_emails.add(shared)
                for person in members:
                    person.landline = landline
                    person.household_email = shared if person in members[:2] else None
                    person.housemates = [m for m in members if m is not person]
            out.extend(members)
        # old numbers: some still in records; half of them now another customer's mobile
        for person in out:
            if self.noise.maybe("old_number"):
                if self.noise.maybe("recycled_number"):
                    other = rng.choice(out)
                    if other is not person and other.household_id != person.household_id:
                        person.old_number = other.mobiles[0]
                        continue
                person.old_number = self.new_mobile(person.ddd)
        return out

    # ------------------------------------------------------------------ records
    def typo(self, text: str) -> str:
        rng = self.rng
        letters = [i for i, c in enumerate(text) if c.isalpha()]
        if len(letters) < 3:
            return text
        i = rng.choice(letters[1:])
        kind = rng.randrange(4)
        if kind == 0:  # dropped
            return text[:i] + text[i + 1 :]
        if kind == 1:  # doubled
            return text[:i] + text[i] + text[i:]
        if kind == 2 and i + 1 < len(text) and text[i + 1].isalpha():  # swapped
            return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        near = {"a": "e", "e": "i", "i": "e", "o": "u", "u": "o", "s": "z", "z": "s", "c": "s",
                "n": "m", "m": "n", "l": "u", "r": "rr", "ç": "c", "ss": "s"}  # fmt: skip
        return text[:i] + near.get(text[i].lower(), text[i]) + text[i + 1 :]

    def surnames_typed(self, person: Person, tags: list[str]) -> list[str]:
        surnames = list(person.surnames)
        if person.maiden_surnames and self.noise.maybe("maiden_name_record"):
            surnames = list(person.maiden_surnames)
            tags.append("maiden_name")
        if self.noise.maybe("drop_particle"):
            surnames = [_strip_particle(s) for s in surnames]
        if len(surnames) > 1 and self.noise.maybe("surname_order"):
            surnames = surnames[::-1]
            tags.append("surname_order")
        if len(surnames) > 1 and self.noise.maybe("last_surname_only"):
            surnames = [s for s in surnames if s not in AGNOMES][-1:]
        return surnames

    def given_typed(self, person: Person) -> str:
        if " " in person.given and self.noise.maybe("first_given_only"):
            return person.given.split(" ", 1)[0]
        return person.given

    def nickname(self, person: Person) -> str | None:
        options = NICKNAMES.get(person.given) or NICKNAMES.get(person.given.split()[0])
        return self.rng.choice(options) if options else None

    def name_fields(self, person: Person, source: str, tags: list[str]):
        """(first_name, last_name, full_name) as the source keeps them."""
        rng, noise = self.rng, self.noise
        given = self.given_typed(person)
        surnames = self.surnames_typed(person, tags)
        first, last = given, " ".join(surnames)
        if source == "pdv":
            if noise.maybe("pdv_placeholder_name"):
                tags.append("placeholder_name")
                return (rng.choice(PLACEHOLDER_NAMES), None, None) if rng.random() < 0.5 else (
                    None, None, None)  # fmt: skip
            if noise.maybe("pdv_first_name_only"):
                last = None
            elif " " in last:
                # the till's 30-character field: middle surnames cut to initials
                parts = last.split()
                last = " ".join([p[0] for p in parts[:-1] if p[0].isupper()] + parts[-1:])
        elif source == "whatsapp":
            if noise.maybe("nickname"):
                nick = self.nickname(person)
                if nick:
                    tags.append("nickname")
                    family = _strip_particle(surnames[-1])
                    full = nick if rng.random() < 0.6 else f"{nick} {family}"
                    return None, None, full + rng.choice(["", "", " 🙂", " 🌸", " ✨"])
            if noise.maybe("name_first_only"):
                return None, None, given.split()[0]
            return None, None, f"{given} {last}"
        elif source == "suporte":
            if person.emails and noise.maybe("name_is_email"):
                tags.append("name_is_email")
                return None, None, person.emails[0].split("@")[0]
            if noise.maybe("name_first_only"):
                return None, None, given.split()[0]
            return None, None, f"{given} {last}"
        elif source == "email":
            if noise.maybe("name_first_only"):
                return (given.split()[0], None, None) if rng.random() < 0.7 else (None, None, None)
        elif source == "fidelidade":
            full = f"{given} {last}"
            if noise.maybe("name_typo_form"):
                full = self.typo(full)
                tags.append("name_typo")
            return None, None, full
        if source in ("loja_web", "loja_app", "crm") and noise.maybe("split_at_first_space"):
            # the name typed in the first box; the store splits it at the first space
            whole = f"{given} {last}".split(" ", 1)
            first, last = whole[0], whole[1] if len(whole) > 1 else None
        if first and noise.maybe("name_typo"):
            first = self.typo(first)
            tags.append("name_typo")
        if last and noise.maybe("name_typo"):
            last = self.typo(last)
            tags.append("name_typo")
        return first, last, None

    def phone_typed(self, number: str, tags: list[str]) -> str:
        rng, noise = self.rng, self.noise
        ddd, local = number[:2], number[2:]
        if len(local) == 9 and noise.maybe("phone_no_ninth"):
            local = local[1:]
            tags.append("no_ninth_digit")
        if noise.maybe("phone_no_ddd"):
            tags.append("no_ddd")
            return f"{local[:-4]}-{local[-4:]}" if rng.random() < 0.7 else local
        style = rng.randrange(6)
        if style == 0:
            return f"+55{ddd}{local}"
        if style == 1:
            return f"({ddd}) {local[:-4]}-{local[-4:]}"
        if style == 2:
            return f"{ddd}{local}"
        if style == 3:
            return f"+55 ({ddd}) {local[:-4]}-{local[-4:]}"
        if style == 4:
            return f"0{ddd} {local[:-4]} {local[-4:]}"
        return f"{ddd} {local}"

    def cpf_typed(self, cpf: str, typo_kind: str, tags: list[str]) -> str:
        if self.noise.maybe(typo_kind):
            i = self.rng.randrange(11)
            cpf = cpf[:i] + str((int(cpf[i]) + self.rng.randint(1, 9)) % 10) + cpf[i + 1 :]
            tags.append("cpf_typo")
        if self.rng.random() < 0.6:
            return f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}"
        return cpf

    def email_typed(self, email: str, source: str, tags: list[str]) -> str:
        if source == "fidelidade" and self.noise.maybe("email_typo"):
            local, domain = email.split("@")
            if domain in DOMAIN_TYPOS:
                email = f"{local}@{self.rng.choice(DOMAIN_TYPOS[domain])}"
            else:
                email = f"{self.typo(local)}@{domain}"
            tags.append("email_typo")
        if self.noise.maybe("email_case"):
            email = f" {email.upper()} " if self.rng.random() < 0.5 else email.title()
        return email

    def address_typed(self, person: Person) -> str:
        kind, abbrev, name, number = person.street
        if self.noise.maybe("address_abbrev"):
            kind = abbrev
        if "XV" in name and self.rng.random() < 0.5:
            name = name.replace("XV", "Quinze")
        text = f"{kind} {name}, {number}" if self.rng.random() < 0.7 else f"{kind} {name} {number}"
        if person.complement and self.rng.random() < 0.6:
            text += f" {person.complement}"
        return text

    def birth_typed(self, person: Person, source: str, tags: list[str]) -> str:
        birth = person.birth_date
        if self.noise.maybe("birth_typo"):
            birth = birth.replace(year=birth.year + self.rng.choice([-10, -1, 1, 10]))
            tags.append("birth_typo")
        if source == "fidelidade":
            day, month = birth.day, birth.month
            if day <= 12 and self.noise.maybe("birth_day_month_swap"):
                day, month = month, day
                tags.append("birth_swap")
            return f"{day:02d}/{month:02d}/{birth.year}"
        return birth.isoformat()

    def phone_for(self, person: Person, source: str, tags: list[str]) -> str:
        """Which of the person's numbers a record gives."""
        rng, noise = self.rng, self.noise
        if person.old_number and noise.maybe("phone_old"):
            tags.append("old_number")
            return person.old_number
        if person.landline and source != "whatsapp" and noise.maybe("phone_landline"):
            tags.append("household_landline")
            return person.landline
        if person.housemates and noise.maybe("borrowed_mobile"):
            tags.append("borrowed_mobile")
            return rng.choice(person.housemates).mobiles[0]
        return rng.choice(person.mobiles) if rng.random() < 0.3 else person.mobiles[0]

    def email_for(self, person: Person, source: str, tags: list[str]) -> str | None:
        if person.household_email and self.rng.random() < 0.5:
            tags.append("household_email")
            return person.household_email
        if not person.emails:
            return person.household_email
        if len(person.emails) > 1 and self.noise.maybe("email_secondary"):
            tags.append("secondary_email")
            return self.rng.choice(person.emails[1:])
        return person.emails[0]

    def record(self, person: Person, source: str) -> tuple[list[str | None], list[str]]:
        rng, noise = self.rng, self.noise
        _, p_email, p_phone, p_cpf, p_birth, p_address, _ = SOURCES[source]
        tags: list[str] = []
        email = phone = wa_id = cpf = None
        if rng.random() < p_email:
            email = self.email_for(person, source, tags)
            if email:
                email = self.email_typed(email, source, tags)
        if source == "whatsapp":
            number = person.mobiles[0] if rng.random() < 0.85 else rng.choice(person.mobiles)
            if noise.maybe("wa_no_ninth"):
                number = number[:2] + number[3:]
                tags.append("no_ninth_digit")
            wa_id = f"55{number}"
        elif rng.random() < p_phone:
            phone = self.phone_typed(self.phone_for(person, source, tags), tags)
        if source == "pdv":
            if rng.random() < p_cpf:
                if noise.maybe("cpf_fake"):
                    cpf = rng.choice(FAKE_CPFS)
                    tags.append("fake_cpf")
                elif noise.maybe("cpf_operator"):
                    cpf = self.cpf_typed(rng.choice(self.cashier_cpfs), "cpf_typo", tags)
                    tags.append("operator_cpf")
                else:
                    cpf = self.cpf_typed(person.cpf, "cpf_typo", tags)
            if not cpf and not phone:
                # an identified sale: CPF na nota or the cashback phone
                phone = self.phone_typed(self.phone_for(person, source, tags), tags)
            if noise.maybe("pdv_store_phone"):
                phone = self.phone_typed(rng.choice(self.store_phones), tags)
                tags.append("store_phone")
            if email and noise.maybe("pdv_junk_email"):
                email = rng.choice(JUNK_EMAILS)
                tags.append("junk_email")
        elif rng.random() < p_cpf:
            typo_kind = "cpf_typo_form" if source == "fidelidade" else "cpf_typo"
            cpf = self.cpf_typed(person.cpf, typo_kind, tags)
        if source == "suporte" and not email and not phone:
            email = person.emails[0] if person.emails else None
            if email is None:
                phone = self.phone_typed(person.mobiles[0], tags)
        first, last, full = self.name_fields(person, source, tags)
        birth = self.birth_typed(person, source, tags) if rng.random() < p_birth else None
        address = postcode = None
        if rng.random() < p_address:
            address = self.address_typed(person)
            postcode = person.postcode
            if noise.maybe("postcode_typo"):
                i = rng.randrange(8)
                postcode = postcode[:i] + str(rng.randrange(10)) + postcode[i + 1 :]
                tags.append("postcode_typo")
            if rng.random() < 0.6:
                postcode = f"{postcode[:5]}-{postcode[5:]}"
        city = None
        if source in ("loja_web", "loja_app", "crm", "fidelidade", "pdv") and not noise.maybe(
            "no_city"
        ):
            city = person.city if source != "pdv" or rng.random() < 0.3 else None
        upper = source in ("pdv",) or noise.maybe("upper_case")
        accentless = source in ("pdv", "fidelidade") or noise.maybe("no_accents")
        fields = [first, last, full, city, address]
        fields = [_unaccent(v) if v and accentless else v for v in fields]
        fields = [v.upper() if v and upper else v for v in fields]
        first, last, full, city, address = fields
        if not (email or phone or wa_id or cpf):
            tags.append("no_identifier")
        self.counter += 1
        values = {
            "record_id": f"{source[:3]}{self.counter:07d}",
            "source": source,
            "email": email,
            "phone": phone,
            "wa_id": wa_id,
            "cpf": cpf,
            "first_name": first,
            "last_name": last,
            "full_name": full,
            "birth_date": birth,
            "city": city,
            "postcode": postcode,
            "address": address,
        }
        return [values[c] for c in COLUMNS], tags

    def source_for(self, person: Person) -> str:
        names = list(SOURCES)
        weights = [SOURCES[n][0] for n in names]
        if (AS_OF - person.birth_date).days > 55 * 365:  # older customers: till, form
            weights = [
                w * (2 if n in ("pdv", "fidelidade", "whatsapp") else 0.5)
                for n, w in zip(names, weights, strict=True)
            ]
        if not person.emails and not person.household_email:  # no web account, no newsletter
            weights = [0 if n in EMAIL_SOURCES else w for n, w in zip(names, weights, strict=True)]
        return self.rng.choices(names, weights=weights)[0]


def generate(people: int = DEFAULT_PEOPLE, seed: int = 13) -> Dataset:
    """``people`` customers (about 2.1 records each) and their records, shuffled."""
    gen = Generator(seed)
    persons = gen.households(people)
    rows: list[tuple[str, list[str | None]]] = []
    tags: list[list[str]] = []
    for person in persons:
        for _ in range(_weighted(gen.rng, RECORDS_PER_PERSON)):
            row, record_tags = gen.record(person, gen.source_for(person))
            rows.append((person.person_id, row))
            tags.append(record_tags)
    order = list(range(len(rows)))
    gen.rng.shuffle(order)
    fakes = tuple(c for c in FAKE_CPFS) + tuple(gen.cashier_cpfs)
    return Dataset(
        people=persons,
        rows=[rows[i] for i in order],
        tags=[tags[i] for i in order],
        noise=gen.noise,
        fake_cpfs=fakes,
    )


def write_csv(rows: list[tuple[str, list[str | None]]], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(row for _, row in rows)


if __name__ == "__main__":  # a look at the data: python bench/identity/adversarial.py [N]
    import sys

    data = generate(int(sys.argv[1]) if len(sys.argv) > 1 else 50, seed=1)
    for (person, row), tag in list(zip(data.rows, data.tags, strict=True))[:40]:
        print(person, [v for v in row[1:] if v], tag)
    print(len(data.people), "people", len(data.rows), "records")
