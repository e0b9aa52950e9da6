"""Fraud models: the rules baseline and their shared parts (:mod:`.base`), gradient-boosted trees (:mod:`.gbt`), a tabular network (:mod:`.tabular`).

Every model reads the feature columns it was trained on (float64, in that order): the
transaction features of :data:`shoplake.fraud.declarations.FEATURE_NAMES`, then those of
the shop's own payment fields or feature table when configured; it gives each payment a
fraud score; both trained models explain a score by per-feature
contributions to its log-odds, which :class:`shoplake.fraud.bundle.FraudBundle` turns
into the reasons shown with a decision.
"""
