"""The servable ads bundle: a trained model, its two calibrators and the ad items' text embeddings.

On disk an :class:`AdsBundle` is a folder: ``bundle.json`` (kind, calibrators, run date,
metrics, metadata), ``model/`` (the model's own files) and ``item_text.npz`` (the text
encoder's embedding of every ad item the run knew, so known ads are scored without the
encoder; a new ad's text is encoded when it is scored).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shoplake.ads.data import AdData
from shoplake.ads.metrics import Calibrator
from shoplake.ads.models import load_model
from shoplake.bundle import BUNDLE_FILE

_ITEM_TEXT = "item_text.npz"


@dataclass
class Scores:
    """Calibrated probabilities of impressions: click, conversion after a click, and both."""

    p_ctr: np.ndarray
    p_cvr: np.ndarray
    p_ctcvr: np.ndarray


@dataclass
class AdsBundle:
    """A trained ad model with its calibrators: the unit that is registered, scored and served.

    Attributes:
        model: One of :mod:`shoplake.ads.models`' models.
        ctr_calibrator: Maps the raw pCTR to the calibrated one (fitted on validation clicks).
        ctcvr_calibrator: Maps the raw pCTR x pCVR to the calibrated pCTCVR (validation conversions).
        item_text: Ad item id to its text embedding.
        metadata: ``run_date``, ``model_name``, ``metrics`` and anything JSON-able.
    """

    model: Any
    ctr_calibrator: Calibrator
    ctcvr_calibrator: Calibrator
    item_text: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def info(self) -> dict:
        return {"kind": "ads", "model": self.model.kind, **self.metadata}

    def score(self, data: AdData) -> Scores:
        """Calibrated pCTR, pCVR (after a click, ``pCTCVR / pCTR`` capped at 1) and pCTCVR of impressions."""
        raw_ctr, raw_cvr = self.model.predict(data)
        return calibrated(raw_ctr, raw_cvr, self.ctr_calibrator, self.ctcvr_calibrator)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(folder / "model")
        ids = sorted(self.item_text)
        matrix = np.stack([self.item_text[i] for i in ids]) if ids else np.zeros((0, 0), np.float32)
        np.savez(folder / _ITEM_TEXT, ids=np.array(ids, dtype=str), embeddings=matrix)
        doc = {**self.info, "ctr_calibrator": self.ctr_calibrator.to_dict(), "ctcvr_calibrator": self.ctcvr_calibrator.to_dict()}
        (folder / BUNDLE_FILE).write_text(json.dumps(doc, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> AdsBundle:
        folder = Path(folder)
        doc = json.loads((folder / BUNDLE_FILE).read_text())
        texts = np.load(folder / _ITEM_TEXT)
        item_text = {str(i): row.astype(np.float32) for i, row in zip(texts["ids"], texts["embeddings"])}
        meta = {k: v for k, v in doc.items() if k not in ("kind", "model", "ctr_calibrator", "ctcvr_calibrator")}
        return cls(load_model(folder / "model"), Calibrator.from_dict(doc["ctr_calibrator"]), Calibrator.from_dict(doc["ctcvr_calibrator"]),
                   item_text, meta)  # fmt: skip


def calibrated(raw_ctr: np.ndarray, raw_cvr: np.ndarray, ctr_calibrator: Calibrator, ctcvr_calibrator: Calibrator) -> Scores:
    """Calibrated scores of raw ones: pCTR and pCTCVR through their calibrators, pCVR as their ratio (at most 1)."""
    p_ctr = np.clip(ctr_calibrator(raw_ctr), 1e-6, 1 - 1e-6)
    p_ctcvr = np.minimum(np.clip(ctcvr_calibrator(raw_ctr * raw_cvr), 1e-9, 1 - 1e-6), p_ctr)
    return Scores(p_ctr, np.minimum(p_ctcvr / p_ctr, 1.0), p_ctcvr)
