"""The linear algebra of the LMM that both engines stand on.

theta <-> Lambda (:mod:`.relcovar`), the cross-product blocks of [Z X y]
(:mod:`.blocks`), the blocked Cholesky factor L(theta) (:mod:`.factor`; its trailing
block stored in blocks for nested designs, :mod:`.block_pattern`, :mod:`.trailing`), modes
and beta by triangular solves (:mod:`.solve`), the profiled criterion's
gradient pieces (:mod:`.gradient`), the marginal log-likelihood of
(beta, sigma, theta) with its gradient and exact conditional draws of b
(:mod:`.likelihood`), and the standardised random-effects columns
(:mod:`.standardize`).  It imports nothing from :mod:`lmmcompare.freq` or
:mod:`lmmcompare.bayesian`.
"""
