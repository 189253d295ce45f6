"""sleepstudy: correlated random intercepts and slopes, Reaction ~ Days + (Days | Subject).

Shows: REML estimates, profile intervals and the posterior (noncentered, LKJ(2)
prior on the correlation) side by side; the correlation is the parameter the
data say least about, and its interval is where the paradigms differ most.
Run: python3 case_studies/sleepstudy.py  (--quick for a short run)
"""
from _common import run

if __name__ == "__main__":
    cmp = run("sleepstudy", "Reaction ~ Days + (Days | Subject)", "sleepstudy")
    t = cmp.table()
    row = t.loc["cor_Days.(Intercept)|Subject"]
    print(f"\nFINDING: correlation: REML {row.estimate:.3f} [{row.lower:.2f}, {row.upper:.2f}] vs posterior median "
          f"{row.post_median:.3f} [{row.eti_lower:.2f}, {row.eti_upper:.2f}]; fixed effects shift by at most "
          f"{t.loc[['(Intercept)', 'Days'], 'shift'].abs().max():.2f} se")
