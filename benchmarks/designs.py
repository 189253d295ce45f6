"""Simulated designs the benchmarks share (seeded, so every run times the same data)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def maximal_crossed(seed: int = 0, subjects: int = 56, items: int = 32) -> pd.DataFrame:
    """56 subjects x 32 items (or ``subjects x items``), three two-level factors (+-0.5) varying within
    both, one row per cell less one.

    ``y ~ a + b + c + (1 + a + b + c | subj) + (1 + a + b + c | item)``: 1,791 rows
    and 20 covariance parameters.  The slope sds (0.3, 0.15, 0.05 for subjects,
    0.2, 0.1, 0.0 for items) leave each 4 x 4 covariance near or on the
    boundary, so the REML fit is singular, as in many psycholinguistic data sets.
    """
    rng = np.random.default_rng(seed)
    subj, item = np.meshgrid(np.arange(subjects), np.arange(items), indexing="ij")
    subj, item = subj.ravel(), item.ravel()
    # counterbalanced: each factor flips within subject and within item
    a = ((subj + item) % 2) - 0.5
    b = ((subj // 2 + item) % 2) - 0.5
    c = ((subj + item // 2) % 2) - 0.5
    X = np.column_stack([np.ones_like(a), a, b, c])

    def effects(levels, sds, rho):
        R = np.full((4, 4), rho) + (1 - rho) * np.eye(4)
        S = np.outer(sds, sds) * R
        return rng.multivariate_normal(np.zeros(4), S, size=levels)

    bs = effects(subjects, np.array([1.0, 0.3, 0.15, 0.05]), 0.4)
    bi = effects(items, np.array([0.6, 0.2, 0.1, 0.0]), 0.3)
    beta = np.array([5.0, 0.4, -0.2, 0.1])
    y = X @ beta + np.sum(X * bs[subj], axis=1) + np.sum(X * bi[item], axis=1) + rng.normal(scale=1.0, size=a.size)
    frame = pd.DataFrame({"y": y, "a": a, "b": b, "c": c, "subj": [f"s{s:03d}" for s in subj],
                          "item": [f"i{i:03d}" for i in item]})
    return frame.drop(index=frame.index[rng.integers(len(frame))]).reset_index(drop=True)


MAXIMAL_FORMULA = "y ~ a + b + c + (1 + a + b + c | subj) + (1 + a + b + c | item)"


def simulated_slopes(n: int = 7_000, groups: int = 160, seed: int = 0) -> pd.DataFrame:
    """``y = 2 + 0.5 x + b0_g + b1_g x + e``, sd(b0) = 1, sd(b1) = 0.5, corr 0.3, sigma 1.5: the issue's 7,000-row model."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    x = rng.normal(size=n)
    cov = np.array([[1.0, 0.3 * 0.5], [0.3 * 0.5, 0.25]])
    b = rng.multivariate_normal([0, 0], cov, size=groups)
    y = 2 + 0.5 * x + b[g, 0] + b[g, 1] * x + rng.normal(scale=1.5, size=n)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical([f"g{k:03d}" for k in g])})


def nested_schools(n: int = 200_000, schools: int = 2_000, classes: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Pupils in classes in schools (issue 21): ``y ~ x + (1 | school/cls)``, ``classes / schools`` classes per school.

    ``y = 1 + 0.5 x + b_school + b_class + e`` with sd(b_school) = 1, sd(b_class) = 0.5, sigma 1;
    every pupil in a random class (so ``n / classes`` pupils per class on average).
    """
    rng = np.random.default_rng(seed)
    cls = rng.integers(0, classes, n)
    school = cls // (classes // schools)
    x = rng.normal(size=n)
    y = (1 + 0.5 * x + rng.normal(size=schools)[school] + 0.5 * rng.normal(size=classes)[cls]
         + rng.normal(size=n))
    return pd.DataFrame({"y": y, "x": x, "school": pd.Categorical(school), "cls": pd.Categorical(cls % (classes // schools))})


NESTED_FORMULA = "y ~ x + (1 | school/cls)"


def crossed_large(n: int = 300_000, subjects: int = 20_000, items: int = 2_000, seed: int = 0) -> pd.DataFrame:
    """Two large crossed factors (issue 21): ``y ~ x + (1 | subj) + (1 | item)``, each row a random
    (subject, item) pair; ``y = 1 + 0.5 x + b_subj + b_item + e`` with sd(b_subj) = 0.8, sd(b_item) = 0.5, sigma 1."""
    rng = np.random.default_rng(seed)
    subj, item = rng.integers(0, subjects, n), rng.integers(0, items, n)
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + 0.8 * rng.normal(size=subjects)[subj] + 0.5 * rng.normal(size=items)[item] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "subj": pd.Categorical(subj), "item": pd.Categorical(item)})


CROSSED_FORMULA = "y ~ x + (1 | subj) + (1 | item)"
