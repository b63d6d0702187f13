"""Cross-lingual matching: recall and false alerts per language pair, at the shipped defaults.

    HF_HUB_OFFLINE=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/crosslingual.py [--summary]

Narratives: the 30 of bench/data/crosslingual.yaml (24 English, 6 in ru/uk/de/fr/es; half
`split: train`, half `split: dev`), each with two retellings in each of en/ru/uk/de/fr/es and
same-topic hard negatives (debunks, neutral reports). Only the title is embedded, as the
pipeline embeds a narrative without examples; `--summary` adds the summary as an example.
Negatives: the real news of ../shared/data/feeds (feeder-captures, miniflux-testdata), split in
two halves by feed file (precision_data.load_news): half A calibrates the multilingual route
(the `background` of build_scorer, as stored passages do in the pipeline), half B is reported.

Everything goes through the pipeline's Scorer with the default DualEmbedder (MiniLM and the
multilingual USE). Printed: per (narrative language, article language) and per split, recall
at alert and at watch on the retelling's own narrative and retellings alerting on another
narrative; hard negatives alerting; news alerting per language; a sweep of the multilingual
route's alert z (the CrossCalibration constants), train and dev side by side; recall at
precision 0.9 per article language (bench/language_precision.py); the seed case of issue 14
(in English, Russian and Ukrainian) and a Russian and a Ukrainian weather report against the
starter narratives; and the embedding cost of the pair against MiniLM alone. Vectors are
cached per model under bench/.cache.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import language_precision
import numpy as np
import yaml
from precision_data import CHOOSE, REPORT, News, background_sample, cached_embedders, load_news

from monitor.config import MatchingSection
from monitor.matching.embedders import DEFAULT_MODEL, Embedder
from monitor.matching.evaluation import build_scorer
from monitor.matching.index import Thresholds
from monitor.matching.languages import detect_each
from monitor.matching.multilingual import DualEmbedder, UseEmbedder
from monitor.matching.narrative_files import STARTER_NARRATIVES, read_narratives
from monitor.matching.routes import CrossCalibration
from monitor.matching.scoring import DEFAULT_FUSION, MULTILINGUAL, EmbeddedText, Scorer
from monitor.matching.stage import make_embedder
from monitor.types import Narrative

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
DATA = HERE / "data" / "crosslingual.yaml"
DEFAULTS = MatchingSection()
FLOOR = 0.30  # every candidate scoring this much is kept; tiers are decided afterwards
LANGUAGES = ("en", "ru", "uk", "de", "fr", "es")
SEED = ("Almaty unrest bears all the hallmarks of a Western-backed colour revolution. Analysts say the "
        "riots in Kazakhstan were orchestrated from abroad. Western NGOs prepared the ground for a coup.")
PROBES = {
    "seed case (en)": SEED,
    "seed case (ru)": "Беспорядки в Алматы несут все признаки поддержанной Западом цветной революции. "
    "Аналитики говорят, что погромы в Казахстане были организованы из-за рубежа. Западные НКО "
    "подготовили почву для переворота.",
    "weather report (ru)": "Синоптики обещают москвичам облачные выходные с прояснениями. Днём воздух "
    "прогреется до плюс пяти градусов, ночью ожидаются заморозки до минус трёх. В воскресенье местами "
    "пройдёт небольшой дождь, ветер северо-западный, пять-десять метров в секунду.",
    "seed case (uk)": "Заворушення в Алмати мають усі ознаки підтриманої Заходом кольорової революції. "
    "Аналітики кажуть, що погроми в Казахстані організували з-за кордону. Західні НУО підготували "
    "ґрунт для перевороту.",
    "weather report (uk)": "Синоптики обіцяють киянам хмарні вихідні з проясненнями. Удень повітря "
    "прогріється до плюс п'яти градусів, уночі очікуються заморозки до мінус трьох. У неділю місцями "
    "пройде невеликий дощ, вітер північно-західний, п'ять-десять метрів за секунду.",
}

Found = dict[str, tuple[float, str]]  # narrative id -> (score, route), every candidate >= FLOOR


@dataclass(frozen=True)
class Item:
    """A retelling or hard negative of one narrative, in one language."""

    kind: str  # "retelling" or "hard"
    narrative: str
    split: str
    narrative_language: str
    language: str
    text: str


@dataclass(frozen=True)
class Tiers:
    """Alert and watch thresholds of each route, on the score scale."""

    alert: float
    watch: float
    cross_alert: float
    cross_watch: float

    def raised(self, found: Found, alert: bool) -> set[str]:
        def bar(route: str) -> float:
            if route == MULTILINGUAL:
                return self.cross_alert if alert else self.cross_watch
            return self.alert if alert else self.watch
        return {n for n, (score, route) in found.items() if score >= bar(route) - 1e-9}


def main() -> None:
    args = _arguments()
    primary, dual = cached_embedders(args.model, args.cache)
    narratives, items = _load(DATA, args.summary)
    news = load_news(SHARED / "feeds")
    print(f"{len(narratives)} narratives ({DATA.name}; texts: title{' + summary' if args.summary else ''}), "
          f"{len(items)} retellings and hard negatives; {len(news.entries)} news entries "
          f"(half A {len(news.half(CHOOSE))} calibrates, half B {len(news.half(REPORT))} reported)")
    started = time.perf_counter()
    # MiniLM's vectors of these news entries are on disk (bench/precision.py): English passages,
    # cut the same way by the pair, are then not embedded again.
    primary_only = build_scorer(primary, narratives, Thresholds(FLOOR, FLOOR), DEFAULTS.max_passages,
                                DEFAULTS.passage_tokens, DEFAULT_FUSION)
    primary_only.embed_texts(news.entries)
    scorer, background, embedded = _calibrated(dual, narratives, news)
    items_found = _found(scorer, scorer.embed_texts([("", item.text) for item in items]))
    news_found = _found(scorer, embedded)
    print(f"scored in {time.perf_counter() - started:.0f} s; "
          f"background: {len(background[0])} passages of half A")
    shipped = _shipped()
    for split in ("train", "dev"):
        _report_pairs(split, items, items_found, shipped)
    _report_negatives(items, items_found, news, news_found, shipped)
    _sweep(items, items_found, news, news_found)
    language_precision.report(items, items_found, news_found, (news.half(CHOOSE), news.half(REPORT)),
                              LANGUAGES)
    _probes(primary, dual, background)
    held_out = [p for i in news.half(REPORT) for p in embedded[i].passages]
    step = max(1, len(held_out) // args.cost_passages)
    _cost(args.model, held_out[::step][: args.cost_passages], args.rounds)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--summary", action="store_true", help="embed each summary as an example too")
    parser.add_argument("--cost-passages", type=int, default=128, help="passages embedded per timing round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="timing rounds (MiniLM and the pair interleaved)")
    parser.add_argument("--cache", type=Path, default=HERE / ".cache")
    parser.add_argument("--no-cache", dest="cache", action="store_const", const=None)
    return parser.parse_args()


def _load(path: Path, summary: bool) -> tuple[list[Narrative], list[Item]]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))["narratives"]
    narratives = [Narrative(id=n["id"], title=n["title"], summary=n["summary"],
                            examples=(n["summary"],) if summary else ()) for n in raw]
    items = [Item(kind, n["id"], n["split"], n["language"], language, text)
             for n in raw for kind, key in (("retelling", "retellings"), ("hard", "hard_negatives"))
             for language, texts in n[key].items() for text in texts]
    return narratives, items


def _calibrated(
    dual: DualEmbedder, narratives: list[Narrative], news: News
) -> tuple[Scorer, tuple[np.ndarray, list[str]], list[EmbeddedText]]:
    """The scorer calibrated on (a sample of) the passages of half A; the news embedded."""
    floor = Thresholds(FLOOR, FLOOR)
    prior = build_scorer(dual, narratives, floor, DEFAULTS.max_passages, DEFAULTS.passage_tokens,
                         DEFAULT_FUSION)
    # All entries in one batch, so the vectors are cached under the key bench/precision.py uses too.
    embedded = prior.embed_texts(news.entries)
    background = background_sample([embedded[i] for i in news.half(CHOOSE)])
    scorer = build_scorer(dual, narratives, floor, DEFAULTS.max_passages, DEFAULTS.passage_tokens,
                          DEFAULT_FUSION, *background)
    return scorer, background, embedded


def _found(scorer: Scorer, embedded: list[EmbeddedText]) -> list[Found]:
    return [{s.narrative_id: (s.score, s.route) for s in scores}
            for scores in scorer.matches_each(embedded, evidence=False)]


def _shipped(z_alert: float | None = None, z_watch: float | None = None) -> Tiers:
    """The shipped thresholds; with z values, the multilingual route's tiers at those z instead."""
    cal = CrossCalibration()
    alert, watch = DEFAULTS.alert_threshold, DEFAULTS.watch_threshold
    return Tiers(alert, watch,
                 alert if z_alert is None else cal.scale * z_alert + cal.offset,
                 watch if z_watch is None else cal.scale * z_watch + cal.offset)


def _rate(flags: list[bool]) -> str:
    return f"{np.mean(flags):5.2f}" if flags else "    -"


def _report_pairs(split: str, items: list[Item], found: list[Found], tiers: Tiers) -> None:
    print(f"\n== retellings of `split: {split}` narratives (alert {tiers.alert}, watch {tiers.watch}; "
          f"multilingual z {_z(tiers.cross_alert):.1f} / {_z(tiers.cross_watch):.1f})")
    print("narrative  article    n  alert  watch  wrong-narrative-alert")
    rows = [("en", a) for a in LANGUAGES] + [("xx", a) for a in ("en", "same", "other")]
    for narrative_language, article in rows:
        chosen = [(item, f) for item, f in zip(items, found, strict=True) if item.kind == "retelling"
                  and item.split == split and _pair(item) == (narrative_language, article)]
        if chosen:
            _pair_line(narrative_language, article, chosen, tiers)
    every = [(item, f) for item, f in zip(items, found, strict=True) if item.kind == "retelling"
             and item.split == split]
    _pair_line("all", "all", every, tiers)
    cross = [(item, f) for item, f in every if _pair(item) != ("en", "en")]
    _pair_line("all", "not en-en", cross, tiers)


def _pair(item: Item) -> tuple[str, str]:
    """("en", article language) for English narratives; ("xx", en|same|other) for the others."""
    if item.narrative_language == "en":
        return "en", item.language
    if item.language == "en":
        return "xx", "en"
    return "xx", "same" if item.language == item.narrative_language else "other"


def _pair_line(narrative: str, article: str, chosen: list[tuple[Item, Found]], tiers: Tiers) -> None:
    alert = [item.narrative in tiers.raised(f, True) for item, f in chosen]
    watch = [item.narrative in tiers.raised(f, False) for item, f in chosen]
    wrong = [bool(tiers.raised(f, True) - {item.narrative}) for item, f in chosen]
    print(f"{narrative:9s}  {article:9s} {len(chosen):3d}  {_rate(alert)}  {_rate(watch)}  {_rate(wrong)}")


def _report_negatives(items: list[Item], found: list[Found], news: News, news_found: list[Found],
                      tiers: Tiers) -> None:
    print("\n== hard negatives (same topic, no claim), all 30 narratives; article language: n, "
          "alert on own narrative, alert on any, watch on any")
    for language in LANGUAGES:
        chosen = [(item, f) for item, f in zip(items, found, strict=True)
                  if item.kind == "hard" and item.language == language]
        own = [item.narrative in tiers.raised(f, True) for item, f in chosen]
        alert = [bool(tiers.raised(f, True)) for _, f in chosen]
        watch = [bool(tiers.raised(f, False)) for _, f in chosen]
        print(f"  {language}  {len(chosen):3d}  {_rate(own)}  {_rate(alert)}  {_rate(watch)}")
    print("\n== real news alerting (any narrative): half, language, entries, alert rate, watch rate")
    for half in (REPORT, CHOOSE):
        for language in ("ru", "uk", "other", "all"):
            rows = [news_found[i] for i in news.half(half) if language in ("all", news.languages[i])]
            label = "B (held out)" if half == REPORT else "A (calibrated on)"
            print(f"  {label:17s} {language:5s} {len(rows):4d}  "
                  f"{_share(rows, tiers, True)}  {_share(rows, tiers, False)}")


def _share(found: list[Found], tiers: Tiers, alert: bool) -> str:
    if not found:
        return "     -"
    hits = sum(bool(tiers.raised(f, alert)) for f in found)
    return f"{hits / len(found):6.4f} ({hits})"


def _z(score: float) -> float:
    cal = CrossCalibration()
    return (score - cal.offset) / cal.scale


def _sweep(items: list[Item], found: list[Found], news: News, news_found: list[Found]) -> None:
    """Recall of cross-lingual retellings and news alerting at other alert z of the multilingual route."""
    print("\n== multilingual route: alert at other z (scale 0.12, offset -0.02 give the shipped 6.0)")
    print("   z  score | train: recall-not-en-en wrong hard-any news-A-alert"
          " | dev: recall wrong hard-any news-B-alert")
    for z in np.arange(4.0, 8.01, 0.5):
        tiers = _shipped(float(z), None)
        cells = []
        for split, half in (("train", CHOOSE), ("dev", REPORT)):
            cross = [(i, f) for i, f in zip(items, found, strict=True)
                     if i.split == split and i.kind == "retelling" and _pair(i) != ("en", "en")]
            hard = [f for i, f in zip(items, found, strict=True) if i.split == split and i.kind == "hard"]
            rows = [news_found[i] for i in news.half(half)]
            cells.append(f"{_rate([i.narrative in tiers.raised(f, True) for i, f in cross])} "
                         f"{_rate([bool(tiers.raised(f, True) - {i.narrative}) for i, f in cross])} "
                         f"{_rate([bool(tiers.raised(f, True)) for f in hard])} {_share(rows, tiers, True)}")
        print(f"  {z:3.1f}  {tiers.cross_alert:.2f} | " + " | ".join(cells))


def _probes(primary: Embedder, dual: DualEmbedder, background: tuple[np.ndarray, list[str]]) -> None:
    starter = list(read_narratives(STARTER_NARRATIVES).narratives)
    shipped = Thresholds(DEFAULTS.alert_threshold, DEFAULTS.watch_threshold)
    scorers = {
        "MiniLM alone": build_scorer(primary, starter, shipped, DEFAULTS.max_passages,
                                     DEFAULTS.passage_tokens, DEFAULT_FUSION),
        "MiniLM + USE (default)": build_scorer(dual, starter, shipped, DEFAULTS.max_passages,
                                               DEFAULTS.passage_tokens, DEFAULT_FUSION, *background),
    }
    print(f"\n== probes against the {len(starter)} starter narratives ({STARTER_NARRATIVES.name}), "
          "shipped thresholds")
    for name, text in PROBES.items():
        for label, scorer in scorers.items():
            top = scorer.top(scorer.embed_texts([("", text)])[0], 3, evidence=False)
            ranked = ", ".join(f"{s.narrative_id} {s.score:.3f} {s.tier.value if s.tier else '-'} ({s.route})"
                               for s in top)
            print(f"  {name:20s} {label:22s} {ranked}")


def _cost(model: str, passages: list[str], rounds: int) -> None:
    """Seconds to embed the same passages with MiniLM alone and with the pair, interleaved, uncached."""
    minilm = make_embedder(model, None, None)
    dual = DualEmbedder(minilm, UseEmbedder())
    for embedder in (minilm, dual):
        embedder.embed(passages[:8], "query")  # load the models
    times: dict[str, list[float]] = {"minilm": [], "dual": [], "detect": []}
    for _ in range(rounds):
        for name, run in (("minilm", lambda: minilm.embed(passages, "query")),
                          ("dual", lambda: dual.embed(passages, "query")),
                          ("detect", lambda: detect_each(passages))):
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n== cost: {len(passages)} news passages, {rounds} interleaved rounds, median seconds")
    print(f"  MiniLM alone {medians['minilm']:.2f} s ({len(passages) / medians['minilm']:.1f}/s); "
          f"MiniLM + USE {medians['dual']:.2f} s ({len(passages) / medians['dual']:.1f}/s); "
          f"ratio {medians['dual'] / medians['minilm']:.2f}; language detection {medians['detect']:.3f} s")
    print(f"  rounds (s): MiniLM {', '.join(f'{t:.2f}' for t in times['minilm'])}; "
          f"pair {', '.join(f'{t:.2f}' for t in times['dual'])}")


if __name__ == "__main__":
    main()
