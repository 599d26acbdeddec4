"""Text handling for feedback theming: cleaning, redaction, language flag, tokens, duplicates.

Two versions of each text are kept apart:

- the *display* text (`clean_text`): URLs, @handles and e-mail signatures removed, whitespace
  collapsed, everything else (HTML included) kept as the customer wrote it. Quotes come from it;
  escaping happens when the readout is rendered, never here.
- the *analysis* text (`analysis_text`): the display text without HTML tags or script bodies and
  cut to a maximum length, which is what gets counted, vectorised and scored.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from sklearn.feature_extraction.text import (
    ENGLISH_STOP_WORDS,
    CountVectorizer,
    TfidfTransformer,
)
from sklearn.preprocessing import normalize

MAX_ANALYSIS_CHARS = 2000  # longer texts are cut before vectorising (and flagged)
QUOTE_CHARS = 280  # quotes longer than this are shortened at a word boundary

# --- Cleaning ----------------------------------------------------------------------------------

_URL = re.compile(r"(?:\b(?:https?|ftp)://|\bwww\.)[^\s<>\"']+", re.IGNORECASE)
# An @handle is an @ that does not follow a word character or a dot (that would be an e-mail),
# with an optional "cc"/"/cc"/"ping" in front of it.
_HANDLE = re.compile(
    r"(?:(?<![\w.])(?:/?cc:?|ping)\s+)?(?<![\w.@])@[A-Za-z0-9_][A-Za-z0-9_.-]*[A-Za-z0-9_]?",
    re.IGNORECASE,
)
_SIGNATURE_LINE = re.compile(r"(?:^|\n)[ \t]*--[ \t]*(?:\n|$)[\s\S]*$")
_SIGNATURE_PHRASE = re.compile(
    r"(?:^|\s)[-–—\s]*(?:sent from my [\w ]{2,30}|sent from (?:mail|outlook|yahoo mail|gmail)"
    r"(?: for [\w ]{2,20})?|get outlook for [\w ]{2,20}|sent via [\w ]{2,20}|"
    r"sent with [\w ]{2,20})[.!]?\s*$",
    re.IGNORECASE,
)
_SPACE = re.compile(r"\s+")
_EMPTY_AFTER_CLEANING = re.compile(r"^[\W_]*$")

_SCRIPT = re.compile(r"<(script|style)\b[^>]*>[\s\S]*?(?:</\1\s*>|$)", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_HAS_HTML = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>|&[a-z]+;|&#\d+;")
_HAS_SCRIPT = re.compile(r"<\s*script\b", re.IGNORECASE)


def clean_text(text: object) -> str:
    """The display text: no URLs, @handles or signatures, whitespace collapsed; HTML kept as text.

    Missing values become "". Signatures are a "--" line and everything after it, or a trailing
    "Sent from my iPhone" / "Get Outlook for Android" style line.
    """
    if text is None or (isinstance(text, float) and np.isnan(text)) or text is pd.NA:
        return ""
    out = str(text).replace("\r\n", "\n").replace("\r", "\n")
    lower = out.lower()
    if "--" in out:
        out = _SIGNATURE_LINE.sub("", out)
    if "sent " in lower or "outlook" in lower:
        for _ in range(2):  # "Sent from my iPhone" may follow a "--" already removed, or repeat
            out = _SIGNATURE_PHRASE.sub("", out)
    if "://" in out or "www." in lower:
        out = _URL.sub(" ", out)
    if "@" in out:
        out = _HANDLE.sub(" ", out)
    out = _SPACE.sub(" ", out).strip()
    out = re.sub(r"\s+([,.!?;:])", r"\1", out)
    out = re.sub(r"\(\s*\)", "", out).strip()
    return "" if _EMPTY_AFTER_CLEANING.match(out) else out


def analysis_text(display: str) -> str:
    """The text that is scored: HTML tags and script bodies removed, entities decoded, cut."""
    out = display
    if "<" in out:
        out = _SCRIPT.sub(" ", out)
        out = _TAG.sub(" ", out)
    if "&" in out:
        out = html.unescape(out)
        out = _SPACE.sub(" ", out).strip()
    if len(out) > MAX_ANALYSIS_CHARS:
        out = out[:MAX_ANALYSIS_CHARS].rsplit(" ", 1)[0]
    return out


def has_html(text: str) -> bool:
    """Whether the text contains HTML tags or entities."""
    return bool(_HAS_HTML.search(text))


def has_script(text: str) -> bool:
    """Whether the text contains a <script> tag."""
    return bool(_HAS_SCRIPT.search(text))


# --- Redaction ---------------------------------------------------------------------------------

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_PHONE = re.compile(r"(?<![\w])(?:\+|00)?\d[\d\s().\-/]{5,}\d(?![\w])|\(\d{2,4}\)[\d\s.\-]{5,}\d")
_DATE_LIKE = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}$|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$")


def redact(text: str) -> str:
    """Hide e-mail addresses, IBANs, card numbers and phone numbers: "[email]", "[phone]", ...

    Runs of digits shorter than 7 digits (prices, years, counts) and dates are left alone.
    """
    out = _EMAIL.sub("[email]", text)
    out = _IBAN.sub("[iban]", out)
    out = _CARD.sub(
        lambda m: "[card number]" if sum(c.isdigit() for c in m.group()) >= 13 else m.group(), out
    )

    def phone(match: re.Match) -> str:
        value = match.group()
        digits = sum(c.isdigit() for c in value)
        if digits < 7 or _DATE_LIKE.match(value.strip()):
            return value
        return "[phone]"

    return _PHONE.sub(phone, out)


def shorten(text: str, limit: int = QUOTE_CHARS) -> str:
    """The text cut at a word boundary with an ellipsis when longer than `limit` characters."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:-") + " …"


# --- Tokens and language -----------------------------------------------------------------------

_TOKEN = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\d+", re.UNICODE)
# Kept although sklearn lists them as stop words: they carry the meaning of feedback.
_KEEP = {"not", "no", "nor", "cannot", "never", "nothing", "without", "again", "down", "off", "up"}
STOP_WORDS = frozenset(
    (set(ENGLISH_STOP_WORDS) - _KEEP)
    | {"i'm", "it's", "don't", "can't", "we're", "i've", "doesn't", "didn't", "isn't", "won't"}
    | {"hi", "hey", "hello", "thanks", "thank", "thx", "please", "pls", "just", "really", "like"}
    | {"ve", "ll", "re", "s", "t", "d", "m"}
)
_ENGLISH_FUNCTION = (
    frozenset(ENGLISH_STOP_WORDS) - {"de", "co", "con", "un", "eg", "ie", "etc", "ltd", "inc"}
) | {"i'm", "it's", "don't", "can't", "doesn't"}
_FOREIGN_FUNCTION = (
    frozenset(
        " ".join(  # Spanish, French, German, Portuguese, Italian and Dutch function words
            [
                "el la los las del de y que en un una es por con para se lo su al pero muy está",
                "esta son como más cuando porque también nos le les des du et est une pas pour",
                "dans sur au aux avec qui ce cette ne je vous nous il elle sont mais très être",
                "ont der die das und ist nicht ein eine mit den dem zu von sich auf für auch wir",
                "ich sie es bei nach wird sind noch aber immer jeden nur oder não uma com os é",
                "em ao mais muito che della di è per sono non gli het een van ik niet zijn voor",
                "maar ook wij dat bij heel",
            ]
        ).split()
    )
    - _ENGLISH_FUNCTION
)


def tokens(text: str) -> list[str]:
    """Lower-case word tokens (letters, apostrophes inside words, or digits)."""
    return _TOKEN.findall(text.lower())


def language_flag(text: str, words: list[str] | None = None) -> str:
    """ "en", "non_en" or "unknown" (too short to tell), from the share of function words.

    A cheap check, not a language identifier: a text is flagged non-English when it has at least
    three words and more foreign than English function words, or mostly non-Latin letters.
    """
    ascii_only = text.isascii()
    if not ascii_only:
        letters = [c for c in text if c.isalpha()]
        if len(letters) >= 10 and sum(1 for c in letters if ord(c) > 0x24F) / len(letters) > 0.5:
            return "non_en"
    words = tokens(text) if words is None else words
    if len(words) < 3:
        return "unknown"
    english = sum(1 for w in words if w in _ENGLISH_FUNCTION)
    foreign = sum(1 for w in words if w in _FOREIGN_FUNCTION)
    if foreign > english and foreign >= 1:
        return "non_en"
    accented = 0 if ascii_only else sum(1 for c in text if c.isalpha() and not c.isascii())
    if english == 0 and len(words) >= 4 and accented >= 2:
        return "non_en"
    return "en"


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """A light English suffix stripper (plurals, -ing, -ed, -ly), so that variants share a term."""
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix, replacement, keep in (
        ("ies", "y", 3),
        ("sses", "ss", 3),
        ("ing", "", 3),
        ("edly", "", 3),
        ("ed", "", 3),
        ("ly", "", 4),
        ("es", "", 4),
        ("s", "", 3),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= keep and not word.endswith("ss"):
            word = word[: len(word) - len(suffix)] + replacement
            break
    if len(word) > 4 and word[-1] == word[-2] and word[-1] not in "lsz":
        word = word[:-1]
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]
    return word


def content_tokens(text: str) -> list[str]:
    """Tokens without stop words (kept in the original form, for labels and char n-grams)."""
    return [t for t in tokens(text) if t not in STOP_WORDS and len(t) > 1]


def phrase_terms(words: list[str]) -> list[str]:
    """Unigrams and bigrams of content words (bigrams only of words adjacent in the text)."""
    terms = [w for w in words if w not in STOP_WORDS and len(w) > 1 and not w.isdigit()]
    bigrams = [
        f"{a} {b}"
        for a, b in zip(words, words[1:], strict=False)
        if a not in STOP_WORDS
        and b not in STOP_WORDS
        and len(a) > 1
        and len(b) > 1
        and not a.isdigit()
        and not b.isdigit()
    ]
    return terms + bigrams


# --- Sparse features ---------------------------------------------------------------------------


def _stem_terms(words: list[str]) -> list[str]:
    stems = [stem(w) for w in words]
    return stems + [f"{a} {b}" for a, b in zip(stems, stems[1:], strict=False)]


@dataclass
class SparseFeatures:
    """tf-idf of character 3-4-grams of the content words plus stemmed word uni- and bigrams.

    Rows are L2-normalised; `chars` alone (also normalised) is used to compare texts for
    near-duplicates and for choosing quotes that are not near-duplicates of each other.
    """

    matrix: sparse.csr_matrix
    chars: sparse.csr_matrix

    @classmethod
    def build(cls, token_lists: list[list[str]]) -> SparseFeatures:
        """Fit on the tokens of the analysis texts (`tokens`); every term that occurs is kept.

        Character n-grams never cross a word boundary (as sklearn's "char_wb"), so a text's
        n-gram counts are its word counts times each distinct word's n-gram counts: the n-grams
        are extracted once per vocabulary word, not once per occurrence.
        """
        content = [
            [t for t in words if t not in STOP_WORDS and len(t) > 1] for words in token_lists
        ]
        words_of = CountVectorizer(analyzer=_identity, dtype=np.float32)
        stems_of = CountVectorizer(analyzer=_identity, dtype=np.float32)
        try:
            doc_words = words_of.fit_transform(content)
            vocabulary = words_of.get_feature_names_out()
            grams = CountVectorizer(analyzer="char_wb", ngram_range=(3, 4), dtype=np.float32)
            char_counts = (doc_words @ grams.fit_transform(vocabulary)).tocsr()
            chars = TfidfTransformer(sublinear_tf=True).fit_transform(char_counts).tocsr()
            stem_counts = stems_of.fit_transform([_stem_terms(w) for w in content])
            words = TfidfTransformer(sublinear_tf=True).fit_transform(stem_counts).tocsr()
        except ValueError:  # no document has any content word
            empty = sparse.csr_matrix((len(token_lists), 1), dtype=np.float32)
            return cls(matrix=empty, chars=empty)
        matrix = normalize(sparse.hstack([chars, words], format="csr"))
        return cls(matrix=matrix.astype(np.float32), chars=chars.astype(np.float32))


def _identity(value: list[str]) -> list[str]:
    return value


# --- Duplicates --------------------------------------------------------------------------------

_NORMALISE = re.compile(r"[\W_]+", re.UNICODE)


def normalised_key(text: str) -> str:
    """Text compared for exact duplicates: lower case, punctuation and spacing ignored."""
    return _NORMALISE.sub(" ", text.lower()).strip()


@dataclass
class Duplicates:
    """For each item the position of the item it duplicates (itself when it is kept)."""

    representative: np.ndarray  # int positions
    kind: np.ndarray  # "" kept, "exact" or "near"

    @property
    def kept(self) -> np.ndarray:
        """Boolean mask of the items that stay (one per group)."""
        return self.representative == np.arange(len(self.representative))

    @property
    def exact_collapsed(self) -> int:
        """Items removed as exact copies of another item."""
        return int((self.kind == "exact").sum())

    @property
    def near_collapsed(self) -> int:
        """Items removed as near copies of another item."""
        return int((self.kind == "near").sum())


def find_duplicates(
    keys: list[str],
    voices: np.ndarray | None,
    chars: sparse.csr_matrix,
    *,
    near_threshold: float = 0.9,
    seed: int = 0,
    bits: int = 128,
    band_bits: int = 8,
    window: int = 30,
) -> Duplicates:
    """Exact and near-duplicate groups among items in their canonical order (first is kept).

    Items are only compared within the same voice (the same user when a user column exists,
    else all items form one voice). Exact duplicates share `keys`. Near duplicates have a
    cosine similarity of at least `near_threshold` between their character n-gram vectors;
    candidate pairs come from locality-sensitive hashing (random hyperplanes, banded), each
    bucket compared within a sliding window, so the cost stays near-linear.
    """
    n = len(keys)
    if n == 0:
        return Duplicates(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object))
    voice = np.zeros(n, dtype=np.int64) if voices is None else pd.factorize(voices)[0]
    exact_codes = pd.factorize(pd.Series(keys) + "\x00" + pd.Series(voice).astype(str))[0]
    first_of_code = pd.Series(np.arange(n)).groupby(exact_codes).transform("min").to_numpy()
    representative = first_of_code.copy()
    kind = np.where(representative != np.arange(n), "exact", "").astype(object)

    unique = np.flatnonzero(representative == np.arange(n))
    if near_threshold < 1.0 and len(unique) > 1 and chars.shape[1] > 1:
        pairs = _near_pairs(
            chars[unique], voice[unique], near_threshold, seed, bits, band_bits, window
        )
        if len(pairs):
            graph = sparse.coo_matrix(
                (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(unique),) * 2
            )
            _, component = connected_components(graph, directed=False)
            first = pd.Series(np.arange(len(unique))).groupby(component).transform("min")
            group_rep = unique[first.to_numpy()]
            moved = group_rep != unique
            representative[unique[moved]] = group_rep[moved]
            kind[unique[moved]] = "near"
            # exact copies of a near duplicate point at the group's representative
            representative = representative[representative]
    return Duplicates(representative, kind)


def _near_pairs(
    vectors: sparse.csr_matrix,
    voice: np.ndarray,
    threshold: float,
    seed: int,
    bits: int,
    band_bits: int,
    window: int,
) -> np.ndarray:
    """Pairs (i, j), i < j, of rows with cosine >= threshold, found through banded SimHash."""
    n = vectors.shape[0]
    rng = np.random.default_rng(seed)
    planes = rng.standard_normal((vectors.shape[1], bits)).astype(np.float32)
    signs = np.asarray(vectors @ planes) > 0
    weights = 1 << np.arange(band_bits, dtype=np.int64)
    candidates = []
    nonzero = np.diff(vectors.indptr) > 0
    for band in range(bits // band_bits):
        code = signs[:, band * band_bits : (band + 1) * band_bits].astype(np.int64) @ weights
        bucket = voice * (1 << band_bits) + code
        order = np.lexsort((np.arange(n), bucket))
        b_sorted = bucket[order]
        for offset in range(1, window + 1):
            same = b_sorted[offset:] == b_sorted[:-offset]
            if not same.any():
                break
            candidates.append(np.stack([order[:-offset][same], order[offset:][same]], axis=1))
    if not candidates:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.unique(np.sort(np.concatenate(candidates), axis=1), axis=0)
    pairs = pairs[nonzero[pairs[:, 0]] & nonzero[pairs[:, 1]]]
    keep = []
    for start in range(0, len(pairs), 200_000):
        chunk = pairs[start : start + 200_000]
        sims = np.asarray(vectors[chunk[:, 0]].multiply(vectors[chunk[:, 1]]).sum(axis=1)).ravel()
        keep.append(chunk[sims >= threshold - 1e-6])
    return np.concatenate(keep) if keep else np.zeros((0, 2), dtype=np.int64)
