"""Small matrix products as elementwise multiply-and-sum.

Where PyTensor cannot link a BLAS library (its usual state after a pip
install), its ``Gemv``/``Dot22`` Ops run in Python: about 17 us per call on
a 2-vector, and the marginal model's gradient had six of them (100 of its
263 us on sleepstudy).  For the small inner dimensions of these models
(fixed effects, a term's columns) a broadcast multiply and a sum compile to C
either way, with or without BLAS.
"""
from __future__ import annotations


def matvec(M, v):
    """``M @ v`` for a matrix ``M`` (rows x k) and a vector ``v`` (k) with small k."""
    return (M * v[None, :]).sum(axis=1)


def vecdot(u, v):
    """``u @ v`` for two vectors."""
    return (u * v).sum()


def matmul(a, b):
    """``a @ b`` for ``a`` (m x k) and ``b`` (k x r) with small k and r."""
    return (a[:, :, None] * b[None, :, :]).sum(axis=1)
