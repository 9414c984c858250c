"""The stage catalog: the four optimization stages, their texts, metrics and exit criteria."""

from __future__ import annotations

import difflib
import operator
import re
import tomllib
from dataclasses import dataclass
from functools import cache

from builder import DATA_DIR
from builder.errors import RegistryError

CATALOG_FILE = DATA_DIR / "stages.toml"
TEXT_DIR = DATA_DIR / "templates" / "stages"

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
#: An ncu metric name, e.g. `sm__throughput.avg.pct_of_peak_sustained_elapsed`.
METRIC_NAME = re.compile(r"\b[a-z0-9]+__[a-z0-9_.]*[a-z0-9]")
#: Words that say nothing about which stage a text is about.
_STOPWORDS = frozenset("a an and the of for to in on with only current stage optimize optimization".split())
#: Endings dropped so that `tuning` and `tune`, `tiles` and `tiling` meet.
_SUFFIXES = ("ations", "ation", "ism", "ing", "es", "s", "e")


@dataclass(frozen=True)
class Condition:
    """One exit condition: `metric op value` on the current kernel's metrics."""

    metric: str  # ncu metric name
    op: str  # one of >=, <=, >, <
    value: float  # threshold

    def holds(self, value: float) -> bool:
        return _OPS[self.op](value, self.value)


@dataclass(frozen=True)
class Stage:
    """One optimization stage."""

    key: str  # e.g. "grid_and_parallel"
    number: int  # 1-based position in the chain
    title: str  # short human title
    variants: tuple[str, ...]  # available text variants; the first is the default
    metrics: tuple[str, ...]  # ncu metrics the stage works with
    exit: tuple[Condition, ...]  # all holding: the stage has little left to gain

    def text(self, variant: str = "default") -> str:
        """The stage text as printed under [OPTIMIZATION STAGE]."""
        if variant not in self.variants:
            raise RegistryError(f"stage '{self.key}' has no variant '{variant}'; known: {', '.join(self.variants)}")
        return (TEXT_DIR / f"{self.key}.{variant}.txt").read_text()

    def exit_met(self, metrics: dict[str, float | None]) -> bool:
        """Whether every exit condition holds on one kernel's metrics; False when one is missing."""
        return all(metrics.get(c.metric) is not None and c.holds(metrics[c.metric]) for c in self.exit)


@dataclass(frozen=True)
class Catalog:
    """The stages in order, and the metrics every prompt prints."""

    base_metrics: tuple[str, ...]  # printed in every prompt
    stages: tuple[Stage, ...]  # in chain order

    def get(self, key: str) -> Stage:
        for stage in self.stages:
            if stage.key == key:
                return stage
        close = difflib.get_close_matches(key, [s.key for s in self.stages], n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise RegistryError(f"unknown stage '{key}'{hint}; known: {', '.join(s.key for s in self.stages)}")

    def prompt_metrics(self, stage: Stage) -> tuple[str, ...]:
        """The metrics a prompt of `stage` prints: the base ones, then the stage's own."""
        return self.base_metrics + tuple(m for m in stage.metrics if m not in self.base_metrics)

    def all_metrics(self) -> tuple[str, ...]:
        """Every metric any prompt prints or any exit criterion reads, each once."""
        names = list(self.base_metrics)
        for stage in self.stages:
            names += [m for m in (*stage.metrics, *(c.metric for c in stage.exit)) if m not in names]
        return tuple(names)

    def previous(self, stage: Stage) -> Stage | None:
        """The stage before `stage` in the chain, or None for the first."""
        return self.stages[stage.number - 2] if stage.number > 1 else None

    def recognise(self, text: str) -> str | None:
        """The key of the stage a stage text of another wording is about, or None when unclear.

        The text's `Focus` line says what the stage is: its words are scored against each
        stage's title and own Focus lines (a word shared by several stages counts for less).
        The ncu metrics the text names, against each stage's own metrics, only decide between
        stages the Focus line leaves tied, or when it has none. A tie or no evidence gives None.
        """
        vocabularies = {s.key: _vocabulary(s) for s in self.stages}
        spread = {w: sum(w in v for v in vocabularies.values()) for v in vocabularies.values() for w in v}
        focus = _words(_focus_line(text))
        named = set(METRIC_NAME.findall(text))
        scores = {
            s.key: (sum(1 / spread[w] for w in focus & vocabularies[s.key]), len(named & set(s.metrics)))
            for s in self.stages
        }
        best = max(scores.values())
        winners = [key for key, score in scores.items() if score == best]
        return winners[0] if best > (0, 0) and len(winners) == 1 else None


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _words(text: str) -> set[str]:
    """The stems of the meaningful words of `text`, lower-cased; `BLOCK_M` counts as `block`."""
    words = re.findall(r"[a-z]+", text.lower())
    return {_stem(w) for w in words if w not in _STOPWORDS and len(w) > 1}


def _focus_line(text: str) -> str:
    """What follows `Focus:` (bold or not) in a stage text, or the line after a `Focus` heading;
    an empty string when there is neither."""
    match = re.search(r"^[^\w\n]*focus[^\w\n]*(?::[ \t]*(.*)|\n\s*(.*))$", text, re.IGNORECASE | re.MULTILINE)
    return (match[1] if match[1] is not None else match[2]) if match else ""


def _vocabulary(stage: Stage) -> set[str]:
    """The words a stage is known by: its title and its texts' Focus lines (not its key:
    `advanced_memory` is about launch tuning more than memory)."""
    words = _words(stage.title)
    for variant in stage.variants:
        words |= _words(_focus_line(stage.text(variant)))
    return words


@cache
def catalog() -> Catalog:
    data = tomllib.loads(CATALOG_FILE.read_text())
    stages = tuple(
        Stage(
            key=s["key"],
            number=i,
            title=s["title"],
            variants=tuple(s["variants"]),
            metrics=tuple(s["metrics"]),
            exit=tuple(Condition(c["metric"], c["op"], float(c["value"])) for c in s["exit"]),
        )
        for i, s in enumerate(data["stage"], start=1)
    )
    return Catalog(base_metrics=tuple(data["base_metrics"]), stages=stages)
