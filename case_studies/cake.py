"""cake: a 3 x 6 factorial (recipe x baking temperature) with 15 replicates per recipe.

angle ~ recipe * temperature + (1 | recipe:replicate), the split-plot model of
Cochran & Cox.  What a paper reports from it, in both paradigms side by side: the
estimated marginal means of recipe and of temperature (emmeans' grid, Kenward-Roger
df) and their pairwise contrasts (Tukey), R² and the ICC (performance's), and
predictions for a new replicate (lme4's se.fit beside brms' posterior_epred).
Run: python3 case_studies/cake.py  (--quick: 2 chains x (300 + 300))
"""
import warnings

import pandas as pd

import lmmcompare as lc
from _common import run

FORMULA = "angle ~ recipe * temperature + (1 | recipe:replicate)"

if __name__ == "__main__":
    pd.set_option("display.width", 160)
    cmp = run("cake", FORMULA, "cake", report_options={"emmeans": "recipe", "r2": True})
    temperature = cmp.emmeans("temperature")
    print("\nMarginal means of temperature, both paradigms:\n", temperature.round(3))
    polynomial = lc.emmeans(cmp.freq, "temperature").contrast("poly")
    print("\nPolynomial contrasts of temperature (emmeans' poly, frequentist):\n", polynomial.round(4))
    new = pd.DataFrame({"recipe": pd.Categorical(["A"] * 6, categories=["A", "B", "C"]),
                        "temperature": lc.load_dataset("cake")["temperature"].cat.categories,
                        "replicate": ["new"] * 6})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predicted = cmp.predict(new, allow_new_levels=True, seed=1)
    print("\nA new replicate of recipe A (frequentist: b = 0 and se given theta; Bayesian: b drawn "
          "from N(0, sd^2)):\n", predicted.round(3))
    pairs, r2 = cmp.pairs("recipe"), cmp.r2()
    widest = (predicted["eti_upper"] - predicted["eti_lower"]) / (predicted["upper"] - predicted["lower"])
    print(f"\nFINDING: recipe means differ by at most {pairs['estimate'].abs().max():.2f} degrees (Tukey p >= "
          f"{pairs['p'].min():.2f}; posterior pd <= {pairs['pd'].max():.2f}) while temperature's linear trend is "
          f"{polynomial.loc['linear', 'estimate']:.1f} (p = {polynomial.loc['linear', 'p']:.1e}); "
          f"R2 marginal {r2.loc['R2 marginal', 'estimate']:.3f} vs posterior median "
          f"{r2.loc['R2 marginal', 'post_median']:.3f}, conditional {r2.loc['R2 conditional', 'estimate']:.3f} vs "
          f"{r2.loc['R2 conditional', 'post_median']:.3f}; a new replicate's Bayesian interval is "
          f"{widest.mean():.1f}x the frequentist one (which treats its effect as known to be 0)")
