"""Transcript text normalisation and edit-distance scores (CER, WER), pure Python.

Used to compare a user's transcript with what speech recognition heard, so two spellings of the same
speech must normalise to the same string:

* Unicode NFKC, then abbreviations read out on the original casing (``Mr.`` -> ``mister``, ``Dr.`` ->
  ``doctor``, ``St.`` -> ``saint`` before a capitalised word else ``street``, ``&`` -> ``and``...);
* numbers spelled out in English: a plain four-digit number from 1100 to 2099 reads as a year
  (``1813`` -> ``eighteen thirteen``, ``1905`` -> ``nineteen oh five``, ``2005`` -> ``two thousand
  five``), other integers as cardinals without "and" (``42`` -> ``forty two``, ``1,200`` -> ``one
  thousand two hundred``), ordinals (``3rd`` -> ``third``), decimals (``3.5`` -> ``three point five``),
  percentages (``50%`` -> ``fifty percent``), currency (``$5`` -> ``five dollars``), times (``10:30`` ->
  ``ten thirty``);
* casefold, apostrophes dropped (``I'm`` -> ``im``), every other punctuation mark or symbol -> space,
  whitespace collapsed.

:func:`cer` is the Levenshtein distance between the *characters* of the two normalised texts divided
by the reference's length; spaces are kept by default (one space per word boundary, so a split or
merged word costs one edit), ``spaces=False`` removes them first.  :func:`wer` is the same on words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

__all__ = ["cer", "edit_distance", "normalize_text", "number_to_words", "wer", "year_to_words"]

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                      "nine": "ninth", "twelve": "twelfth"}

# Read on the original casing, before punctuation is removed; the value is the spoken form.
_ABBREVIATIONS = {
    "mr": "mister", "mrs": "missus", "ms": "miz", "dr": "doctor", "prof": "professor", "jr": "junior",
    "sr": "senior", "mt": "mount", "vs": "versus", "etc": "et cetera", "approx": "approximately",
    "capt": "captain", "col": "colonel", "gen": "general", "lt": "lieutenant", "sgt": "sergeant",
    "gov": "governor", "rev": "reverend", "hon": "honorable", "ave": "avenue", "rd": "road",
}
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "=": " equals ", "@": " at ", "°": " degrees "}
_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
             "€": ("euro", "euros", "cent", "cents")}


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n or not words:
        words.append(_ONES[n])
    return words


def number_to_words(n: int) -> str:
    """English cardinal of an integer, words separated by spaces, no "and".

    Parameters
    ----------
    n : int

    Returns
    -------
    str
        ``42`` -> ``"forty two"``, ``1200`` -> ``"one thousand two hundred"``, ``-3`` -> ``"minus three"``.
    """
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 1000:
        return " ".join(_below_thousand(n))
    words: list[str] = []
    for value, name in _SCALES:
        if n >= value:
            head, n = divmod(n, value)
            words += [number_to_words(head), name]
    if n:
        words += _below_thousand(n)
    return " ".join(words)


def year_to_words(year: int) -> str:
    """English reading of a year from 1100 to 2099 (pairs of digits).

    ``1813`` -> ``"eighteen thirteen"``, ``1900`` -> ``"nineteen hundred"``, ``1905`` -> ``"nineteen oh
    five"``, ``2000`` -> ``"two thousand"``, ``2005`` -> ``"two thousand five"``, ``2024`` -> ``"twenty
    twenty four"``.  Other values fall back to :func:`number_to_words`.
    """
    if not 1100 <= year <= 2099:
        return number_to_words(year)
    if 2000 <= year <= 2009:
        return number_to_words(year)
    head, tail = divmod(year, 100)
    if tail == 0:
        return f"{number_to_words(head)} hundred"
    if tail < 10:
        return f"{number_to_words(head)} oh {_ONES[tail]}"
    return f"{number_to_words(head)} {number_to_words(tail)}"


def _ordinal(n: int) -> str:
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _digits(text: str) -> str:
    return " ".join(_ONES[int(c)] for c in text)


def _decimal(whole: str, frac: str) -> str:
    return f"{number_to_words(int(whole))} point {_digits(frac)}"


_NUM = r"\d{1,3}(?:,\d{3})+|\d+"
_RE_CURRENCY = re.compile(r"([$£€])\s?(" + _NUM + r")(?:\.(\d{1,2}))?(?!\d)")
_RE_TIME = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_RE_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.I)
_RE_DECIMAL = re.compile(r"(?<![\d.])(\d+)\.(\d+)(?![\d.]*\d)")
_RE_INTEGER = re.compile(r"(?<![\d,])(" + _NUM + r")(?![\d,]*\d)")
_RE_ABBREV = re.compile(r"\b([A-Za-z]{2,6})\.(?=\s|$|[,;:])")
_RE_SAINT_STREET = re.compile(r"\bSt\.(\s+)(?=([A-Z])?)")


def _currency(match: re.Match[str]) -> str:
    one, many, sub_one, sub_many = _CURRENCY[match.group(1)]
    amount = int(match.group(2).replace(",", ""))
    out = f"{number_to_words(amount)} {one if amount == 1 else many}"
    if match.group(3):
        cents = int(match.group(3).ljust(2, "0"))
        if cents:
            out += f" {number_to_words(cents)} {sub_one if cents == 1 else sub_many}"
    return f" {out} "


def _time(match: re.Match[str]) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes == 0:
        return f" {number_to_words(hours)} o'clock "
    tail = f"oh {_ONES[minutes]}" if minutes < 10 else number_to_words(minutes)
    return f" {number_to_words(hours)} {tail} "


def _integer(match: re.Match[str]) -> str:
    text = match.group(1)
    if "," not in text and len(text) == 4 and 1100 <= int(text) <= 2099:
        return f" {year_to_words(int(text))} "
    if len(text) > 1 and text.startswith("0"):
        return f" {_digits(text)} "  # a code ("007"), read digit by digit
    return f" {number_to_words(int(text.replace(',', '')))} "


def _abbreviation(match: re.Match[str]) -> str:
    word = match.group(1)
    spoken = _ABBREVIATIONS.get(word.casefold())
    return f"{spoken} " if spoken else match.group(0)


def _saint_or_street(match: re.Match[str]) -> str:
    return ("saint" if match.group(2) else "street") + match.group(1)


def normalize_text(text: str) -> str:
    """Normalise a transcript for comparison (see the module docstring for every rule).

    Parameters
    ----------
    text : str

    Returns
    -------
    str
        Casefolded words of letters and digits-as-words, separated by single spaces, no punctuation.
    """
    t = unicodedata.normalize("NFKC", text)
    t = t.replace("\u2019", "'").replace("\u2018", "'")
    t = _RE_SAINT_STREET.sub(_saint_or_street, t)
    t = re.sub(r"\bSt\.$", "street", t)
    t = _RE_ABBREV.sub(_abbreviation, t)
    t = re.sub(r"\bNo\.\s*(?=\d)", "number ", t)
    t = _RE_CURRENCY.sub(_currency, t)
    t = _RE_TIME.sub(_time, t)
    t = _RE_ORDINAL.sub(lambda m: f" {_ordinal(int(m.group(1)))} ", t)
    t = _RE_DECIMAL.sub(lambda m: f" {_decimal(m.group(1), m.group(2))} ", t)
    t = _RE_INTEGER.sub(_integer, t)
    for symbol, spoken in _SYMBOLS.items():
        t = t.replace(symbol, spoken)
    t = t.casefold()
    t = re.sub(r"(?<=\w)'(?=\w)", "", t)  # contractions and possessives: "i'm" -> "im"
    t = "".join(c if (c.isalnum() or c.isspace()) else " " for c in t)
    t = unicodedata.normalize("NFKC", t)
    return " ".join(t.split())


def edit_distance(a: Sequence[object], b: Sequence[object]) -> int:
    """Levenshtein distance (unit-cost insertions, deletions, substitutions) between two sequences."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def _rate(reference: Sequence[object], hypothesis: Sequence[object]) -> float:
    if not reference:
        return 0.0 if not hypothesis else 1.0
    return edit_distance(reference, hypothesis) / len(reference)


def cer(reference: str, hypothesis: str, *, spaces: bool = True, normalize: bool = True) -> float:
    """Character error rate of ``hypothesis`` against ``reference``.

    Parameters
    ----------
    reference, hypothesis : str
    spaces : bool
        Keep the single space between words (default) or remove spaces before comparing.
    normalize : bool
        Apply :func:`normalize_text` to both first (default).

    Returns
    -------
    float
        Levenshtein distance / number of reference characters; 0 is identical, can exceed 1 when the
        hypothesis is much longer.  An empty reference gives 0.0 against an empty hypothesis, else 1.0.
    """
    if normalize:
        reference, hypothesis = normalize_text(reference), normalize_text(hypothesis)
    if not spaces:
        reference, hypothesis = reference.replace(" ", ""), hypothesis.replace(" ", "")
    return _rate(reference, hypothesis)


def wer(reference: str, hypothesis: str, *, normalize: bool = True) -> float:
    """Word error rate: Levenshtein distance between word lists / number of reference words.

    Same conventions as :func:`cer` (normalised by default; an empty reference gives 0.0 or 1.0).
    """
    if normalize:
        reference, hypothesis = normalize_text(reference), normalize_text(hypothesis)
    return _rate(reference.split(), hypothesis.split())
