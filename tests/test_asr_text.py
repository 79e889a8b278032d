"""prep.text: transcript normalisation, spelled-out numbers and abbreviations, CER and WER (pure Python)."""

from __future__ import annotations

import pytest

from prep.text import cer, edit_distance, normalize_text, number_to_words, wer, year_to_words


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"), (7, "seven"), (13, "thirteen"), (20, "twenty"), (42, "forty two"), (100, "one hundred"),
        (101, "one hundred one"), (999, "nine hundred ninety nine"), (1000, "one thousand"),
        (1200, "one thousand two hundred"), (1_000_000, "one million"),
        (2_500_017, "two million five hundred thousand seventeen"), (-3, "minus three"),
    ],
)
def test_cardinals(n, words):
    assert number_to_words(n) == words


@pytest.mark.parametrize(
    ("year", "words"),
    [
        (1813, "eighteen thirteen"), (1900, "nineteen hundred"), (1905, "nineteen oh five"),
        (1999, "nineteen ninety nine"), (2000, "two thousand"), (2005, "two thousand five"),
        (2010, "twenty ten"), (2024, "twenty twenty four"), (1100, "eleven hundred"),
        (3000, "three thousand"),  # outside 1100-2099: a cardinal
    ],
)
def test_years(year, words):
    assert year_to_words(year) == words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("In 1813.", "in eighteen thirteen"),
        ("IN EIGHTEEN THIRTEEN", "in eighteen thirteen"),
        ("He is 42 today!", "he is forty two today"),
        ("the 3rd, 21st and 12th", "the third twenty first and twelfth"),
        ("It grew 3.5%", "it grew three point five percent"),
        ("Mr. Smith & Dr. Jones", "mister smith and doctor jones"),
        ("St. Paul lives on Main St.", "saint paul lives on main street"),
        ("Mrs. Brown, Prof. Green etc.", "missus brown professor green et cetera"),
        ("$5.50 and £1", "five dollars fifty cents and one pound"),
        ("at 10:30 or 7:05 or 9:00", "at ten thirty or seven oh five or nine oclock"),
        ("1,200 people", "one thousand two hundred people"),
        ("I'm glad — isn't it?", "im glad isnt it"),
        ("God bless \u2018em", "god bless em"),
        ("  Twenty-one\tdays\n", "twenty one days"),
        ("ＦＵＬＬ width ﬁne", "full width fine"),  # NFKC
        ("Straße", "strasse"),  # casefold
        ("No. 7", "number seven"),
        ("", ""),
    ],
)
def test_normalize(text, expected):
    assert normalize_text(text) == expected


def test_number_and_words_compare_equal():
    assert cer("In 1813", "in eighteen thirteen") == 0.0
    assert wer("Mr. Smith paid $5.", "mister smith paid five dollars") == 0.0


@pytest.mark.parametrize(
    ("a", "b", "d"),
    [("", "", 0), ("abc", "", 3), ("", "ab", 2), ("kitten", "sitting", 3), ("flaw", "lawn", 2), ("abc", "abc", 0)],
)
def test_edit_distance(a, b, d):
    assert edit_distance(a, b) == d
    assert edit_distance(b, a) == d


def test_cer_and_wer_values():
    # "the cat sat" vs "the bat sat": 1 substitution / 11 characters; 1 of 3 words.
    assert cer("the cat sat", "the bat sat") == pytest.approx(1 / 11)
    assert wer("the cat sat", "the bat sat") == pytest.approx(1 / 3)
    # A merged word costs one edit (the space) with spaces kept, none without.
    assert cer("to day", "today") == pytest.approx(1 / 6)
    assert cer("to day", "today", spaces=False) == 0.0
    # Deletions of whole words.
    assert wer("a b c d", "a d") == pytest.approx(2 / 4)
    # Empty reference.
    assert cer("", "") == 0.0 and cer("", "words") == 1.0 and wer("", "") == 0.0
    # Normalisation on by default, off on request.
    assert cer("Hello, World!", "hello world") == 0.0
    assert cer("Hello", "hello", normalize=False) == pytest.approx(1 / 5)
