"""A BayesFit as data in a saved file, and back (the file format is :mod:`lmmcompare.archive`).

The draws (every group of ``idata``: posterior, sample_stats, log_likelihood,
observed_data, posterior_predictive) are netCDF members (:mod:`lmmcompare.archive.netcdf`);
the priors are their family names and numbers, rebuilt as :class:`~.priors.Prior`
objects; the spec is rebuilt from its formula and model frame.  Nothing is compiled or
sampled on reading: PyMC is not even imported.
"""
from __future__ import annotations

from ..archive.netcdf import decode_dataset, encode_dataset
from .priors import Prior, PriorSet

_PRIOR_DICTS = ("fixed", "sds", "cors")


def _prior(prior):
    return None if prior is None else (prior.family, prior.params)


def prior_set_content(priors: PriorSet) -> dict:
    """Every prior as ``(family, parameters)``, by the names of :class:`PriorSet`."""
    out = {"intercept": _prior(priors.intercept), "sigma": _prior(priors.sigma),
           "user": priors.user, "from_user": priors.from_user}
    out.update({name: {k: _prior(v) for k, v in getattr(priors, name).items()} for name in _PRIOR_DICTS})
    return out


def prior_set_from_content(content: dict) -> PriorSet:
    def prior(value):
        return None if value is None else Prior(value[0], value[1])

    return PriorSet(intercept=prior(content["intercept"]), sigma=prior(content["sigma"]),
                    user=content["user"], from_user=content["from_user"],
                    **{name: {k: prior(v) for k, v in content[name].items()} for name in _PRIOR_DICTS})


def bayes_fit_content(writer, fit) -> dict:
    """The JSON tree of a ``BayesFit`` (draws and arrays as members of ``writer``)."""
    groups = [[name, encode_dataset(writer, fit.idata[name], f"idata.{name}")] for name in fit.idata.groups()]
    return {"idata": {"groups": groups, "attrs": writer.encode(dict(fit.idata.attrs), "idata.attrs")},
            "fields": writer.encode({"spec": fit.spec, "priors": prior_set_content(fit.priors),
                                     "parameterization": fit.parameterization, "sampler": fit.sampler,
                                     "seed": fit.seed, "seconds": fit.seconds, "forms": fit.forms}, "the fit")}


def bayes_fit_fields(reader, node) -> dict:
    """The keyword arguments of ``BayesFit`` from :func:`bayes_fit_content`'s tree."""
    import arviz as az

    fields = reader.decode(node["fields"])
    groups = {name: decode_dataset(reader, group) for name, group in node["idata"]["groups"]}
    idata = az.InferenceData(attrs=reader.decode(node["idata"]["attrs"]), **groups)
    return {**fields, "priors": prior_set_from_content(fields["priors"]), "idata": idata}
