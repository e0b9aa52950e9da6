"""Ad ranking in real time: the model and state behind ``POST /ads/rank``.

:class:`AdRanker` holds the registered ads model (the serving alias of
``ads.registered_model``) and the latest state of ``gold.ad_state``, ``gold.ad_viewers``
and ``gold.ad_items``, with the budget multipliers of the ``serving.ad_plan`` of the
state's run date, as an :class:`~shoplake.ads.scoring.AdState`; a request is scored
exactly as the nightly ``serving.ad_scores`` rows are (one call of the bundle for all
the placement's ads), then the candidates are ranked by ranking value (the expected
value as the plan weighs it; the expected value itself without a plan of that date,
and the answer's ``plan_run_date`` is then null) and the top ones explained. When a
table (the plan's among them) gets a new Delta version or the alias moves, the state
is rebuilt (a new ad's text is then encoded once, for a model that reads text); both
checks run at most every ``check_every_s`` seconds, and a failed reload keeps what was
loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field

from shoplake.ads import schemas as S
from shoplake.ads.scoring import HOUR, AdState
from shoplake.serve.holder import ModelWithState, RegisteredModel

log = logging.getLogger(__name__)

_ID = {"min_length": 1, "max_length": 256}
#: Candidates a request may list at most.
MAX_CANDIDATES = 10_000


class RankIn(BaseModel):
    """One ranking request, as ``POST /ads/rank`` takes it (unknown fields are refused)."""

    model_config = ConfigDict(extra="forbid")
    user_id: str | None = Field(None, **_ID, description="The viewer; null or absent: an unknown viewer.")
    placement: str = Field(..., **_ID, description="Where the ad is shown (a placement of the log).")
    candidates: list[Annotated[str, Field(**_ID)]] | None = Field(
        None, min_length=1, max_length=MAX_CANDIDATES, description="Ad item ids to rank (default: every ad of the state)."
    )
    k: int | None = Field(None, ge=1, le=MAX_CANDIDATES, description="Ads to return at most (default ads.rank_k).")
    hour: int = Field(HOUR, ge=0, le=23, description="Hour of day of the impression, UTC (default 0, as the stored scores).")


@dataclass(frozen=True)
class _Served:
    """A model and the state built for it, swapped in together."""

    bundle: Any
    info: Any
    state: AdState
    versions: dict[str, int]


def _plan_date(state: AdState) -> str | None:
    """The run date of the plan the state ranks by (None: none)."""
    return state.plan.run_date.isoformat() if state.plan is not None else None


class AdRanker(ModelWithState):
    """The ads model and the ad state of one replica.

    Args:
        cfg: Configuration (registry, ``ads``, ``text_encoder``).
        lake: The lake holding the state tables.
        check_every_s: Seconds between checks for new table versions or a new model version.
        encode: Texts to embeddings for new ads (default the configured text encoder).
    """

    def __init__(self, cfg, lake, check_every_s: float = 30.0, encode=None):
        from shoplake.ads.bundle import AdsBundle

        super().__init__(check_every_s)
        self.cfg, self.lake = cfg, lake
        self._encode = encode or self._text_encoder
        self.served: _Served | None = None
        # The ranker decides when to check (with the tables), so the model checks on each refresh.
        self.model = RegisteredModel(
            cfg, cfg.ads.registered_model, AdsBundle.load, "ads", check_every_s=0, describe=lambda b: {"kind": b.model.kind}
        )
        self.refresh()

    def _text_encoder(self, texts):
        from shoplake.text.encoder import encode_texts

        return encode_texts(texts, self.cfg.text_encoder)

    def _refresh_state(self) -> str | None:
        from shoplake.ads.score import MissingAdStateError, read_plan, read_state
        from shoplake.ads.scoring import ad_text

        bundle, info = self.model.bundle, self.model.info
        if bundle is None:
            return None  # the model's problem says why
        try:
            versions = {spec.full_name: self.lake.version(spec) for spec in (S.AD_STATE, S.AD_VIEWERS, S.AD_ITEMS, S.AD_PLAN)}
            served = self.served
            if served is not None and served.versions == versions and served.info.version == info.version:
                return None
            state_rows, viewers, items, run_date, read = read_state(self.lake)
            plan_version = versions[S.AD_PLAN.full_name]
            plan = read_plan(self.lake, run_date, plan_version)
            state = AdState(state_rows, viewers, ad_text(bundle, items, self._encode), run_date, plan)
            self.served = _Served(bundle, info, state, {**read, S.AD_PLAN.full_name: plan_version})
            ranked = "by expected value" if plan is None else f"as the plan of {plan.run_date} weighs them"
            log.info("ads state of %s (%s): %d viewers, %d ads in %d placements, model %s version %s, ranked %s", run_date,
                     self.served.versions, len(state.viewer_ids), len(state.ads), len(state.placements), info.name, info.version,
                     ranked)  # fmt: skip
        except MissingAdStateError as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - a broken reload must not take the endpoint down; keep what was loaded
            log.exception("could not load the ads state")
            return f"could not load the ads state: {exc}"
        return None

    def status(self) -> dict[str, Any]:
        """Which model and which state are loaded (or why not)."""
        served = self.served
        out: dict[str, Any] = {"loaded": served is not None}
        if served is not None:
            state = served.state
            out.update(name=served.info.name, version=served.info.version, kind=served.bundle.model.kind,
                       run_date=state.run_date.isoformat(), plan_run_date=_plan_date(state), viewers=len(state.viewer_ids),
                       ads=len(state.ads), placements=sorted(state.placements))  # fmt: skip
        if self.problem:
            out["detail"] = self.problem
        return out

    def rank(self, request: RankIn) -> dict[str, Any]:
        """The candidates of ``request`` ranked by ranking value for its viewer and placement, the top ``k`` explained.

        Raises:
            RuntimeError: No model or no state is loaded (the message says why).
            HTTPException: 422 for a placement or candidate ad the state does not hold.
        """
        self.refresh_if_due()
        served = self.served
        if served is None:
            raise RuntimeError(self.problem or "the ad ranker is not loaded")
        state, bundle = served.state, served.bundle
        ads = state.placements.get(request.placement)
        day = state.run_date.isoformat()
        if ads is None:
            raise HTTPException(
                status_code=422,
                detail=f"field placement: unknown placement {request.placement!r}; the state of {day} has "
                f"{', '.join(sorted(state.placements)) or 'none'}",
            )
        if request.candidates is None:
            rows = np.arange(len(ads))
        else:
            wanted = list(dict.fromkeys(request.candidates))
            unknown = [c for c in wanted if c not in ads.index]
            if unknown:
                shown = ", ".join(repr(c) for c in unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
                raise HTTPException(
                    status_code=422, detail=f"field candidates: unknown ad(s) {shown}: not advertised in the state of {day}"
                )
            rows = np.array(sorted(r for c in wanted for r in ads.index[c]), dtype=np.int64)
        viewer = state.viewer(request.user_id)
        scores, value, ranking = state.score(bundle, viewer, request.placement, request.hour)
        k = request.k or self.cfg.ads.rank_k
        top = rows[np.argsort(-ranking[rows], kind="stable")][:k]
        reasons = state.reasons(bundle, viewer, request.placement, top, value[top], request.hour)
        return {
            "user_id": request.user_id, "known_viewer": viewer != state.unknown, "placement": request.placement,
            "hour": request.hour, "run_date": day, S.PLAN_RUN_DATE: _plan_date(state), "model_name": bundle.model.kind,
            "model_version": served.info.version,
            "ads": [
                {
                    "item_id": str(ads.items[r]), "campaign_id": str(ads.campaigns[r]), S.P_CTR: float(scores.p_ctr[r]),
                    S.P_CVR: float(scores.p_cvr[r]), S.P_CTCVR: float(scores.p_ctcvr[r]), S.EXPECTED_VALUE: float(value[r]),
                    S.RANKING_VALUE: float(ranking[r]),
                    S.BUDGET_MULTIPLIER: None if np.isnan(ads.multiplier[r]) else float(ads.multiplier[r]),
                    "reasons": [{"feature": f, "contribution": v} for f, v in why],
                }
                for r, why in zip(top.tolist(), reasons)
            ],
        }  # fmt: skip
