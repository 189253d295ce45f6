"""The ``lmmcompare`` command line: datasets, fit, compare.

Bad arguments give a one-line error and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import pandas as pd

from .arguments import check_int
from .compare import compare
from .datasets import describe_dataset, list_datasets, load_dataset
from .errors import LmmError
from .freq import lmer
from .frontend import bayes
from .derived.grid import reference_grid
from .spec import ModelSpec
from .spec.formula_checks import plain_text


def _load(data: str):



    if data in list_datasets():
        return load_dataset(data), data
    if os.path.exists(data):
        try:
            frame = pd.read_csv(data)
            sep = _separator(frame)
            if sep:
                frame = _read_separated(data, sep)
        except Exception as exc:  # pandas raises many types for unreadable files
            raise LmmError(f"cannot read --data {data!r} as CSV: {plain_text(str(exc))}") from exc
        return frame, os.path.basename(data)
    raise LmmError(f"--data {data!r} is neither a shipped dataset ({', '.join(list_datasets())}) nor a CSV file")


def _separator(frame) -> str | None:
    """';', tab or '|' when a comma-separated read gave one column whose name holds it."""
    if frame.shape[1] != 1:
        return None
    header = str(frame.columns[0])
    return next((sep for sep in (";", "\t", "|") if sep in header), None)


def _read_separated(path: str, sep: str):
    """Read a ``sep``-separated file, with decimal commas when that gives more numeric columns (R's read.csv2)."""

    frame, decimal = pd.read_csv(path, sep=sep), ""
    if sep == ";":
        commas = pd.read_csv(path, sep=sep, decimal=",")
        if commas.select_dtypes("number").shape[1] > frame.select_dtypes("number").shape[1]:
            frame, decimal = commas, " with decimal commas"
    name = {";": "semicolons", "\t": "tabs", "|": "'|'"}[sep] + decimal
    print(f"lmmcompare: note: {path} is separated by {name}, not commas; read it so "
          f"({frame.shape[1]} columns: {', '.join(map(str, frame.columns[:10]))})", file=sys.stderr)
    return frame


def _check_flags(args) -> None:
    """Every flag of ``compare`` is checked before any data is read or model fitted."""


    check_int("--draws", args.draws, 1)
    check_int("--tune", args.tune, 0)
    check_int("--chains", args.chains, 1)
    if args.seed is not None:
        check_int("--seed", args.seed, 0)
    if args.report:
        folder = os.path.dirname(os.path.abspath(args.report))
        if os.path.isdir(args.report):
            raise LmmError(f"--report {args.report!r} is a folder; give a file name such as "
                           f"{os.path.join(args.report, 'report.html')!r}")
        if not os.path.isdir(folder):
            raise LmmError(f"--report {args.report!r}: the folder {folder!r} does not exist; create it first "
                           "(mkdir -p) or write the report elsewhere")
        if not os.access(folder, os.W_OK):
            raise LmmError(f"--report {args.report!r}: the folder {folder!r} is not writable; write the report "
                           "elsewhere")


def _parser():
    p = argparse.ArgumentParser(prog="lmmcompare", description="One lme4 formula, two paradigms, compared.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("datasets", help="list the shipped datasets")
    f = sub.add_parser("fit", help="REML/ML fit with an lme4-style summary")
    f.add_argument("formula")
    f.add_argument("--data", required=True, help="shipped dataset name or CSV path")
    f.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    c = sub.add_parser("compare", help="frequentist and Bayesian fits side by side, with an HTML report")
    c.add_argument("formula")
    c.add_argument("--data", required=True, help="shipped dataset name or CSV path")
    c.add_argument("--report", help="write the HTML report here")
    c.add_argument("--ml", action="store_true")
    c.add_argument("--ci", default="profile", choices=["profile", "wald", "boot"])
    c.add_argument("--draws", type=int, default=1000)
    c.add_argument("--tune", type=int, default=1000)
    c.add_argument("--chains", type=int, default=4)
    c.add_argument("--seed", type=int, default=None)
    c.add_argument("--parameterization", default="marginal", choices=["marginal", "auto", "noncentered", "centered"])
    c.add_argument("--emmeans", metavar="SPEC", help="marginal means of these factors and their pairwise "
                   "differences, side by side (e.g. recipe, or 'recipe | temperature')")
    c.add_argument("--r2", action="store_true", help="R² and ICC of both fits, side by side")
    for command in (f, c):
        command.add_argument("--weights", help="column of prior weights (residual variance sigma^2 / w)")
        command.add_argument("--offset", help="column added to the linear predictor")
        command.add_argument("--subset", help="rows to use, a pandas query such as 'Days >= 2'")
        command.add_argument("--sigma-by", dest="sigma_by",
                             help="factor column: one residual sd per level (nlme's varIdent, brms' sigma ~ f)")
    return p


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "datasets":

            for name in list_datasets():
                print(f"{name:12s} {describe_dataset(name)}")
            return 0

        if args.command == "compare":
            _check_flags(args)
        frame, name = _load(args.data)
        spec = ModelSpec.from_formula(args.formula, frame, weights=args.weights, offset=args.offset,
                                      subset=args.subset, sigma_by=args.sigma_by)
        spec = dataclasses.replace(spec, data_name=name)
        if args.command == "fit":
            print(lmer(spec, reml=not args.ml).summary())
            return 0
        if args.emmeans:   # a specs that names no factor fails here, before anything is fitted
            reference_grid(spec, args.emmeans)

        print(f"fitting {args.formula} by {'ML' if args.ml else 'REML'} ...", file=sys.stderr)
        freq = lmer(spec, reml=not args.ml)
        print("sampling the Bayesian model ...", file=sys.stderr)
        post = bayes(spec, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                     parameterization=args.parameterization, progressbar=True,
                     reml_fit=None if args.ml else freq)  # auto's choice reads the REML fit: the one just made
        cmp = compare(freq, post)
        print(cmp.to_markdown(ci=args.ci, emmeans=args.emmeans, r2=args.r2))
        if args.report:
            path = cmp.report(args.report, ci=args.ci, emmeans=args.emmeans, r2=args.r2)
            print(f"report written to {path}", file=sys.stderr)
        return 0
    except LmmError as exc:
        print(f"lmmcompare: error: {plain_text(str(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
