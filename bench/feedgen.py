"""Generated news feeds for the benchmarks: RSS 2.0 documents in six languages, written here.

Deterministic for a seed. Three profiles: "summary" (short items, as most news feeds carry),
"full" (whole articles of realistic length: a median of ~400 words, one in twenty over 2,000)
and "flood" (a hot topic: short English items, each restating four starter narratives).
The Cyrillic languages matter: MiniLM's tokenizer spends about six tokens on a Russian word.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import cache
from html import escape

# Everyday news vocabulary: weather, sport, culture, markets, science, transport. Word salad
# from political words would match the starter narratives far more often than real news does.
_WORDS = {
    "en": """weather rain forecast weekend city council park library museum exhibition concert
        festival football match team coach season league goal players stadium market shares
        company profits quarter bank interest rates housing prices train station airport flights
        passengers traffic bridge road repairs hospital doctors patients study researchers
        university students teachers school science space telescope climate river forest farmers
        harvest restaurant chef recipe film director actor award book author music band album
        tourism hotel visitors summer winter snow temperature electricity water supply company""",
    "ru": """погода дождь прогноз выходные город совет парк библиотека музей выставка концерт
        фестиваль футбол матч команда тренер сезон лига гол игроки стадион рынок акции компания
        прибыль квартал банк ставки жильё цены поезд вокзал аэропорт рейсы пассажиры движение
        мост дорога ремонт больница врачи пациенты исследование учёные университет студенты
        учителя школа наука космос телескоп климат река лес фермеры урожай ресторан повар рецепт
        фильм режиссёр актёр премия книга автор музыка группа альбом туризм гостиница гости лето
        зима снег температура электричество вода снабжение""",
    "uk": """погода дощ прогноз вихідні місто рада парк бібліотека музей виставка концерт фестиваль
        футбол матч команда тренер сезон ліга гол гравці стадіон ринок компанія прибуток банк
        житло ціни потяг вокзал аеропорт рейси пасажири міст дорога ремонт лікарня лікарі
        пацієнти дослідження науковці університет студенти вчителі школа наука клімат річка ліс
        фермери урожай ресторан фільм режисер актор премія книга автор музика гурт туризм зима""",
    "de": """Wetter Regen Vorhersage Wochenende Stadt Rat Park Bibliothek Museum Ausstellung Konzert
        Festival Fußball Spiel Mannschaft Trainer Saison Liga Tor Spieler Stadion Markt Aktien
        Unternehmen Gewinn Quartal Bank Zinsen Wohnungen Preise Zug Bahnhof Flughafen Flüge
        Fahrgäste Verkehr Brücke Straße Krankenhaus Ärzte Patienten Studie Forscher Universität
        Studenten Lehrer Schule Wissenschaft Klima Fluss Wald Bauern Ernte Restaurant Film""",
    "fr": """météo pluie prévisions week-end ville conseil parc bibliothèque musée exposition concert
        festival football match équipe entraîneur saison ligue but joueurs stade marché actions
        entreprise bénéfices trimestre banque taux logement prix train gare aéroport vols
        passagers circulation pont route hôpital médecins patients étude chercheurs université
        étudiants enseignants école science climat rivière forêt agriculteurs récolte film""",
    "es": """tiempo lluvia pronóstico fin de semana ciudad consejo parque biblioteca museo exposición
        concierto festival fútbol partido equipo entrenador temporada liga gol jugadores estadio
        mercado acciones empresa beneficios trimestre banco tipos vivienda precios tren estación
        aeropuerto vuelos pasajeros tráfico puente carretera hospital médicos pacientes estudio
        investigadores universidad estudiantes profesores escuela ciencia clima río bosque""",
}
# Russian-language outlets dominate what the monitor watches, so Cyrillic is weighted up.
LANGUAGE_WEIGHTS = {"en": 4, "ru": 3, "uk": 1, "de": 1, "fr": 1, "es": 1}
_VOCABULARY = {lang: words.split() for lang, words in _WORDS.items()}
_CONNECTIVES = {"en": ("and", "of", "the", "in"), "ru": ("и", "в", "на", "по"),
                "uk": ("і", "в", "на", "до"), "de": ("und", "der", "die", "in"),
                "fr": ("et", "de", "la", "le"), "es": ("y", "de", "la", "el")}


@dataclass(frozen=True)
class Item:
    """One generated article."""

    guid: str
    link: str
    title: str
    paragraphs: tuple[str, ...]
    published: datetime


@dataclass(frozen=True)
class GeneratedFeed:
    """One generated feed: its language and items, newest first."""

    index: int
    language: str
    items: tuple[Item, ...]

    def rss(self) -> bytes:
        """The feed as an RSS 2.0 document, UTF-8, HTML bodies escaped in <description>."""
        parts = [
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
            f"<title>Generated feed {self.index}</title><link>https://site{self.index}.example/</link>",
            f"<description>Benchmark feed</description><language>{self.language}</language>",
        ]
        parts += [_item_xml(item) for item in self.items]
        parts.append("</channel></rss>\n")
        return "".join(parts).encode("utf-8")

    def word_count(self) -> int:
        return sum(len(p.split()) for item in self.items for p in item.paragraphs)


def generate_feeds(count: int, items: int, profile: str, seed: int = 1) -> list[GeneratedFeed]:
    """`count` feeds of `items` items each; profile "summary", "full" or "flood"."""
    if profile not in {"summary", "full", "flood"}:
        raise ValueError(f"unknown profile {profile!r}")
    rng = random.Random(seed)
    languages = [lang for lang, weight in LANGUAGE_WEIGHTS.items() for _ in range(weight)]
    now = datetime.now(UTC).replace(microsecond=0)
    if profile == "flood":
        languages = ["en"]
    return [_feed(rng, index, rng.choice(languages), items, profile, now) for index in range(count)]


def _feed(
    rng: random.Random, index: int, lang: str, items: int, profile: str, now: datetime
) -> GeneratedFeed:
    made = []
    for n in range(items):
        words = _article_length(rng) if profile == "full" else _summary_length(rng)
        paragraphs = _paragraphs(rng, lang, words)
        if profile == "flood":
            paragraphs[0] = " ".join([paragraphs[0], *rng.sample(_claims(), 4)])
        made.append(Item(
            guid=f"site{index}-{n}", link=f"https://site{index}.example/{lang}/news/{n}.html",
            title=_sentence(rng, lang, rng.randint(6, 12), end=""),
            paragraphs=tuple(paragraphs),
            # Flood items are three days old: no alert is sent, so `poll --once` times the matching
            # and the evidence, not the wait for Slack's one-message-a-second pacing.
            published=now - timedelta(days=3 if profile == "flood" else 0, minutes=37 * n + index % 30),
        ))
    return GeneratedFeed(index, lang, tuple(made))


@cache
def _claims() -> list[str]:
    """The starter narratives' claims, in English, as a flood of articles repeats them."""
    from monitor.matching.narrative_files import STARTER_NARRATIVES, read_narratives

    return [n.title for n in read_narratives(STARTER_NARRATIVES).narratives]


def _summary_length(rng: random.Random) -> int:
    return rng.randint(30, 120)


def _article_length(rng: random.Random) -> int:
    """Words in a full article: log-normal around 400 words, one in twenty 2,000 to 6,000."""
    if rng.random() < 0.05:
        return rng.randint(2000, 6000)
    return max(60, min(1800, int(rng.lognormvariate(6.0, 0.55))))


def _paragraphs(rng: random.Random, lang: str, words: int) -> list[str]:
    paragraphs: list[str] = []
    while words > 0:
        sentences = []
        for _ in range(rng.randint(2, 5)):
            length = min(words, rng.randint(8, 28))
            if length <= 0:
                break
            sentences.append(_sentence(rng, lang, length, end=rng.choice(".....!?")))
            words -= length
        paragraphs.append(" ".join(sentences))
    return paragraphs


def _sentence(rng: random.Random, lang: str, length: int, end: str) -> str:
    vocabulary, connectives = _VOCABULARY[lang], _CONNECTIVES[lang]
    words = [rng.choice(connectives) if rng.random() < 0.25 else rng.choice(vocabulary)
             for _ in range(length)]
    if rng.random() < 0.15:
        words.insert(rng.randrange(len(words) + 1), f"{rng.randint(2, 99)}.{rng.randint(1, 9)}%")
    first = words[0]
    return " ".join([first[:1].upper() + first[1:], *words[1:]]) + end


def _item_xml(item: Item) -> str:
    html = "".join(f"<p>{escape(p, quote=False)}</p>" for p in item.paragraphs)
    return (
        f"<item><guid isPermaLink=\"false\">{item.guid}</guid><link>{item.link}</link>"
        f"<title>{escape(item.title, quote=False)}</title>"
        f"<description>{escape(html, quote=False)}</description>"
        f"<pubDate>{format_datetime(item.published, usegmt=True)}</pubDate></item>"
    )
