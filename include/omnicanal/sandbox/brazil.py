"""Small hand-written Brazilian reference lists the world generator draws from.

Shipped as plain data (no faker) so a world is reproducible from its seed alone and
the accents, DDDs and CEP ranges that identity resolution must cope with are the
real ones.
"""

from __future__ import annotations

from typing import NamedTuple

FIRST_NAMES: tuple[str, ...] = (
    "João", "José", "Antônio", "Francisco", "Carlos", "Paulo", "Pedro", "Lucas", "Luiz",
    "Marcos", "Luís", "Gabriel", "Rafael", "Daniel", "Marcelo", "Bruno", "Eduardo",
    "Felipe", "Raimundo", "Rodrigo", "Sérgio", "Fábio", "André", "Vinícius", "Otávio",
    "Márcio", "Caio", "Thiago", "Matheus", "Gustavo", "Leandro", "Ícaro", "Inácio",
    "Maria", "Ana", "Francisca", "Antônia", "Adriana", "Juliana", "Márcia", "Fernanda",
    "Patrícia", "Aline", "Sandra", "Camila", "Amanda", "Bruna", "Jéssica", "Letícia",
    "Júlia", "Luciana", "Vanessa", "Mariana", "Gabriela", "Cecília", "Beatriz", "Débora",
    "Lúcia", "Conceição", "Rosângela", "Simone", "Tânia", "Natália", "Luíza", "Vitória",
)  # fmt: skip

SURNAMES: tuple[str, ...] = (
    "Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira",
    "Lima", "Gomes", "Costa", "Ribeiro", "Martins", "Carvalho", "Almeida", "Lopes",
    "Soares", "Fernandes", "Vieira", "Barbosa", "Rocha", "Dias", "Nascimento", "Andrade",
    "Moreira", "Nunes", "Marques", "Machado", "Mendes", "Freitas", "Cardoso", "Ramos",
    "Gonçalves", "Araújo", "Conceição", "Magalhães", "Brandão", "Damasceno", "Falcão",
    "Guimarães", "Assunção", "Simões", "Patrício", "Antunes", "Sampaio", "Figueirêdo",
)  # fmt: skip

# Surnames with the lower-case particle Brazilians keep ("Maria da Conceição").
PARTICLE_SURNAMES: tuple[str, ...] = (
    "da Silva", "dos Santos", "de Oliveira", "da Conceição", "de Souza", "da Costa",
    "de Almeida", "dos Reis", "de Assis", "da Luz",
)  # fmt: skip


class City(NamedTuple):
    """A city with the identifiers that go with it: UF, area code and a CEP range."""

    name: str
    uf: str
    ddd: str
    cep_low: int  # first five digits of the CEP range served
    cep_high: int
    weight: int  # rough share of customers, so São Paulo dominates as it does


CITIES: tuple[City, ...] = (
    City("São Paulo", "SP", "11", 1000, 5999, 30),
    City("Rio de Janeiro", "RJ", "21", 20000, 23799, 14),
    City("Belo Horizonte", "MG", "31", 30000, 31999, 7),
    City("Brasília", "DF", "61", 70000, 72799, 5),
    City("Salvador", "BA", "71", 40000, 42599, 5),
    City("Fortaleza", "CE", "85", 60000, 61599, 4),
    City("Curitiba", "PR", "41", 80000, 82999, 5),
    City("Recife", "PE", "81", 50000, 52999, 4),
    City("Porto Alegre", "RS", "51", 90000, 91999, 4),
    City("Manaus", "AM", "92", 69000, 69099, 2),
    City("Belém", "PA", "91", 66000, 66999, 2),
    City("Goiânia", "GO", "62", 74000, 74899, 3),
    City("Campinas", "SP", "19", 13000, 13139, 3),
    City("Florianópolis", "SC", "48", 88000, 88099, 2),
    City("Vitória", "ES", "27", 29000, 29099, 1),
    City("Natal", "RN", "84", 59000, 59139, 1),
    City("João Pessoa", "PB", "83", 58000, 58099, 1),
    City("Maceió", "AL", "82", 57000, 57099, 1),
    City("São Luís", "MA", "98", 65000, 65109, 1),
    City("Teresina", "PI", "86", 64000, 64099, 1),
    City("Niterói", "RJ", "21", 24000, 24399, 1),
    City("Ribeirão Preto", "SP", "16", 14000, 14114, 1),
    City("Londrina", "PR", "43", 86000, 86099, 1),
    City("Uberlândia", "MG", "34", 38400, 38415, 1),
    City("Joinville", "SC", "47", 89200, 89239, 1),
    City("Campo Grande", "MS", "67", 79000, 79129, 1),
    City("Cuiabá", "MT", "65", 78000, 78109, 1),
    City("Aracaju", "SE", "79", 49000, 49099, 1),
)

STATE_NAMES: dict[str, str] = {
    "AL": "Alagoas", "AM": "Amazonas", "BA": "Bahia", "CE": "Ceará",
    "DF": "Distrito Federal", "ES": "Espírito Santo", "GO": "Goiás", "MA": "Maranhão",
    "MG": "Minas Gerais", "MS": "Mato Grosso do Sul", "MT": "Mato Grosso", "PA": "Pará",
    "PB": "Paraíba", "PE": "Pernambuco", "PI": "Piauí", "PR": "Paraná",
    "RJ": "Rio de Janeiro", "RN": "Rio Grande do Norte", "RS": "Rio Grande do Sul",
    "SC": "Santa Catarina", "SE": "Sergipe", "SP": "São Paulo",
}  # fmt: skip

STREETS: tuple[str, ...] = (
    "Rua das Flores", "Avenida Paulista", "Rua Sete de Setembro", "Rua XV de Novembro",
    "Avenida Brasil", "Rua da Consolação", "Rua Augusta", "Rua Tiradentes",
    "Rua Dom Pedro II", "Avenida Getúlio Vargas", "Rua São João", "Rua Santos Dumont",
    "Rua Barão do Rio Branco", "Rua Marechal Deodoro", "Avenida Presidente Vargas",
    "Rua Duque de Caxias", "Rua José Bonifácio", "Rua Rui Barbosa", "Rua das Palmeiras",
    "Rua dos Andradas", "Travessa do Comércio", "Alameda Santos", "Rua Padre Anchieta",
    "Avenida Atlântica", "Rua Conceição", "Rua Benjamin Constant",
)  # fmt: skip

ADDRESS_COMPLEMENTS: tuple[str, ...] = (
    "Apto 42",
    "Apto 101",
    "Bloco B, Apto 304",
    "Casa 2",
    "Fundos",
    "Sala 12",
    "Apto 1203",
)

EMAIL_DOMAINS: tuple[tuple[str, int], ...] = (
    ("gmail.com", 50),
    ("hotmail.com", 16),
    ("outlook.com", 8),
    ("yahoo.com.br", 9),
    ("uol.com.br", 6),
    ("bol.com.br", 5),
    ("terra.com.br", 3),
    ("icloud.com", 3),
)


class Product(NamedTuple):
    """A catalogue entry; prices are in BRL."""

    title: str
    sku_prefix: str
    price: str


PRODUCTS: tuple[Product, ...] = (
    Product("Camiseta Básica Algodão", "CAM-BAS", "59.90"),
    Product("Calça Jeans Skinny", "CAL-JEA", "189.90"),
    Product("Tênis Casual Couro", "TEN-CAS", "329.00"),
    Product("Vestido Midi Floral", "VES-MID", "219.90"),
    Product("Bolsa Transversal", "BOL-TRA", "149.90"),
    Product("Jaqueta Corta-Vento", "JAQ-COR", "259.90"),
    Product("Bermuda de Sarja", "BER-SAR", "119.90"),
    Product("Blusa de Tricô", "BLU-TRI", "139.90"),
    Product("Sandália Rasteira", "SAN-RAS", "79.90"),
    Product("Boné Aba Curva", "BON-ABA", "69.90"),
    Product("Meia Cano Alto (3 pares)", "MEI-CAN", "39.90"),
    Product("Mochila Executiva", "MOC-EXE", "279.00"),
    Product("Óculos de Sol Aviador", "OCU-AVI", "199.00"),
    Product("Relógio Digital Esportivo", "REL-DIG", "249.90"),
    Product("Perfume Amadeirado 100ml", "PER-AMA", "299.90"),
    Product("Hidratante Corporal 400ml", "HID-COR", "49.90"),
    Product("Garrafa Térmica 500ml", "GAR-TER", "89.90"),
    Product("Fone de Ouvido Bluetooth", "FON-BLU", "159.90"),
    Product("Caneca de Cerâmica", "CAN-CER", "44.90"),
    Product("Jogo de Cama Casal", "JOG-CAM", "229.90"),
    Product("Toalha de Banho Algodão Egípcio", "TOA-BAN", "99.90"),
    Product("Almofada Decorativa", "ALM-DEC", "59.90"),
)

CUSTOMER_NOTES: tuple[str, ...] = (
    "Cliente prefere entrega à tarde.",
    "Pediu nota fiscal com CPF.",
    "Troca realizada em loja física.",
    "Cliente VIP desde a Black Friday.",
)

CUSTOMER_TAGS: tuple[str, ...] = ("vip", "newsletter", "atacado", "black-friday", "loja-fisica")
