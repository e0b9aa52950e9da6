"""Answers to customer-service messages: pick a past agent answer and fill in entities.

:class:`AnswerStore` keeps one template per answered ticket: the agent's resolution
with the ticket's entities turned into placeholders (:func:`answer_template`). For a
message of a predicted intent it picks the most similar ticket of that intent whose
placeholders the message's entities (:func:`extract_entities`) can fill. Placeholders
stand for noun phrases: ``{order_id}`` becomes ``order o00012345`` or ``your order``.
"""

from __future__ import annotations

import logging
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from shoplake import columns as C

log = logging.getLogger(__name__)

ENTITY_TYPES: tuple[str, ...] = ("order_id", "invoice_id", "amount", "email")
GENERIC_PHRASES: dict[str, str] = {
    "order_id": "your order",
    "invoice_id": "your invoice",
    "amount": "the amount",
    "email": "your e-mail address",
}
TEMPLATE = "template"
ANSWERS_FILE = "answers.parquet"
EMBEDDINGS_FILE = "answer_embeddings.npy"
MIN_VALUE_CHARS = 3

# Noun put back in front of a known value, so "{order_id}" reads "order 123" or "your order".
_NOUNS = {"order_id": "order", "invoice_id": "invoice"}
# No word boundary after the noun: messages glue it to the number ("order732201349959").
_ORDER_NOUN = r"\b(?:order|purchase|parcel|package)s?"
_INVOICE_NOUN = r"\b(?:invoice|bill)s?"
_CONNECT = r"\s*(?:(?:number|no\.?)\s*)?(?::\s*)?(?:#\s*)?"
_TOKEN = r"(?=[\w-]*\d)[A-Za-z0-9][\w-]*"
_NUM = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_I = re.IGNORECASE

_EMAIL = re.compile(r"(?P<v>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)")
_ORDER_FORMS = (
    re.compile(rf"{_ORDER_NOUN}{_CONNECT}(?P<v>{_TOKEN})", _I),
    re.compile(r"\b(?P<v>o\d{8})\b", _I),
    re.compile(r"(?<![\w#$£€.,])(?P<v>\d{8,})(?![\w]|[.,]\d)"),
)
_INVOICE_FORMS = (
    re.compile(rf"{_INVOICE_NOUN}\s*(?:(?:number|no\.?)\s*)?:?\s*(?P<v>#?{_TOKEN})", _I),
    re.compile(r"(?<!\w)(?P<v>#\d{3,})\b"),
)
_AMOUNT = re.compile(
    rf"(?P<v>(?:[$£€]\s?|\b(?:USD|GBP|EUR)\s?){_NUM}\b"
    rf"|(?<![\d.,]){_NUM}\s?(?:[$£€]|(?:USD|GBP|EUR|dollars?|euros?|pounds?)\b))",
    _I,
)
_NUMBER = re.compile(_NUM)
# Wording that answer_template folds into an order/invoice placeholder together with the value.
_PREFIXES = {kind: rf"(?:\b(?:your|the)\s+)?{noun}{_CONNECT}" for kind, noun in (("order_id", _ORDER_NOUN), ("invoice_id", _INVOICE_NOUN))}


def _first(forms: tuple[re.Pattern[str], ...], text: str) -> re.Match[str] | None:
    matches = (m for form in forms for m in form.finditer(text))
    return next((m for m in matches if len(m.group("v").rstrip("-_")) >= MIN_VALUE_CHARS), None)


def extract_entities(text: str) -> dict[str, str]:
    """Entities named in a customer message, found by regular expressions.

    Forms per type, in order of preference (the first match of the first form that
    matches wins): ``order_id``: a token with a digit after order / purchase / parcel /
    package (optionally ``number``, ``no.``, ``#`` or ``:`` between, dropped), a shop id
    ``o`` + 8 digits, a standalone run of 8+ digits. ``invoice_id``: a token with a digit
    after invoice / bill (a leading ``#`` kept), ``#`` + 3 or more digits. ``amount``: a
    number with a currency symbol, code or word before or after, as written. ``email``:
    an address. Values under 3 characters are ignored ("order 2 items" names no order).
    Types are searched e-mail, order, invoice, amount, each match blanked out before
    the next type, so no span is reported twice.

    Args:
        text: The customer's message.

    Returns:
        ``{type: value}`` for the types found, in :data:`ENTITY_TYPES` order.
    """
    found: dict[str, str] = {}
    work = text
    for kind, forms in (("email", (_EMAIL,)), ("order_id", _ORDER_FORMS), ("invoice_id", _INVOICE_FORMS), ("amount", (_AMOUNT,))):
        if (match := _first(forms, work)) is not None:
            found[kind] = match.group("v").rstrip("-_")
            work = work[: match.start()] + " " * (match.end() - match.start()) + work[match.end() :]
    return {kind: found[kind] for kind in ENTITY_TYPES if kind in found}


def _value_pattern(kind: str, literal: str) -> re.Pattern[str]:
    # Word boundaries only where the value has a word character at that end ("#85632").
    body = re.escape(literal)
    body = (r"(?<!\w)" if literal[0].isalnum() else "") + body + (r"(?!\w)" if literal[-1].isalnum() else "")
    return re.compile(f"(?:{_PREFIXES[kind]})?{body}" if kind in _PREFIXES else body, _I)


def answer_template(resolution: str, entities: dict[str, str]) -> str:
    """An agent's answer with the ticket's entity values turned into placeholders.

    Every occurrence of each value (longest first, values under 3 characters skipped)
    becomes ``{<type>}``. For ``order_id`` and ``invoice_id`` the replaced span also
    covers the noun directly before the value, with its connector and an optional
    "your"/"the" ("your order no. 123", "purchase #123", "invoice #85632"), because
    :func:`fill_template` puts a noun back: ``order <value>`` / ``invoice <value>``, or
    the generic ``your order`` / ``your invoice``. For ``amount`` the bare number is
    replaced too ("refund of 160" for an amount written "$160"). Literal braces are
    doubled, so the template is a valid :meth:`str.format_map` string.

    Args:
        resolution: The answer an agent gave.
        entities: ``{entity type: value}`` of the ticket; other keys are ignored.
    """
    candidates = [(kind, value) for kind, value in entities.items() if kind in ENTITY_TYPES and value]
    if number := _NUMBER.search(entities.get("amount") or ""):
        candidates.append(("amount", number.group()))
    text = resolution.replace("{", "{{").replace("}", "}}")
    spans: list[tuple[int, int, str]] = []
    for kind, literal in sorted(candidates, key=lambda c: (-len(c[1]), c[0], c[1])):
        if len(literal) < MIN_VALUE_CHARS:
            continue
        for match in _value_pattern(kind, literal).finditer(text):
            if all(match.end() <= s or match.start() >= e for s, e, _ in spans):
                spans.append((match.start(), match.end(), kind))
    parts, pos = [], 0
    for start, end, kind in sorted(spans):
        parts += [text[pos:start], "{" + kind + "}"]
        pos = end
    return "".join(parts) + text[pos:]


def template_fields(template: str) -> frozenset[str]:
    """The placeholder names a template needs."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


def fill_template(template: str, entities: dict[str, str]) -> str:
    """A template with its placeholders filled.

    ``order_id`` and ``invoice_id`` get their noun back (``order <value>``); a
    placeholder whose entity is missing or empty gets its :data:`GENERIC_PHRASES`
    entry. A template that starts with a placeholder gets its first letter upper-cased.

    Args:
        template: A template from :func:`answer_template`.
        entities: ``{entity type: value}`` of the message being answered.

    Raises:
        KeyError: A placeholder is neither in ``entities`` nor a known entity type.
    """
    values = {name: entities.get(name) for name in template_fields(template)}
    text = template.format_map(
        {name: f"{_NOUNS[name]} {v}" if v and name in _NOUNS else v or GENERIC_PHRASES[name] for name, v in values.items()}
    )
    if template.startswith("{") and not template.startswith("{{"):
        text = text[:1].upper() + text[1:]
    return text


@dataclass(frozen=True)
class Answer:
    """A filled answer and where it came from.

    Attributes:
        text: The answer to send.
        ticket_id: The ticket whose template was used.
        similarity: Dot product of the query and that ticket's embedding.
        filled: The message's entities the answer uses.
        missing: Placeholders filled with a generic phrase, sorted.
    """

    text: str
    ticket_id: str
    similarity: float
    filled: dict[str, str]
    missing: list[str]


@dataclass(eq=False)
class AnswerStore:
    """Answer templates of answered tickets, with their embeddings, by intent.

    Attributes:
        ticket_ids: Source ticket per row.
        row_intents: Intent per row.
        templates: Answer template per row.
        embeddings: ``(n, d)`` float32, one row per answer row.
        fields: Placeholders per row, derived from ``templates``.
    """

    ticket_ids: list[str]
    row_intents: list[str]
    templates: list[str]
    embeddings: np.ndarray
    fields: list[frozenset[str]] = field(init=False, repr=False)
    _by_intent: dict[str, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
        n = len(self.ticket_ids)
        if self.embeddings.ndim != 2 or {len(self.row_intents), len(self.templates), len(self.embeddings)} != {n}:
            raise ValueError(
                f"{len(self.ticket_ids)} ticket ids, {len(self.row_intents)} intents, "
                f"{len(self.templates)} templates and embeddings of shape {self.embeddings.shape}"
            )
        self.fields = [template_fields(t) for t in self.templates]
        intents = np.asarray(self.row_intents, dtype=object)
        self._by_intent = {i: np.flatnonzero(intents == i) for i in sorted(set(self.row_intents))}

    @classmethod
    def build(cls, rows: list[dict], embeddings: np.ndarray) -> AnswerStore:
        """A store from answered tickets and their embeddings.

        A row's entities are those of its text, with ``order_id`` from its column when set.

        Args:
            rows: Tickets with ``ticket_id``, ``text``, ``intent``, ``resolution`` and
                ``order_id``; rows without a resolution or intent are dropped.
            embeddings: ``(len(rows), d)`` L2-normalised embeddings, row i of ``rows[i]``.

        Raises:
            ValueError: The embedding row count differs from the number of rows.
        """
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2:
            raise ValueError(f"embeddings must be 2-D (rows, dim), got shape {embeddings.shape}")
        if embeddings.shape[0] != len(rows):
            raise ValueError(f"embeddings have {embeddings.shape[0]} rows but there are {len(rows)} rows")
        keep, templates = [], []
        for i, row in enumerate(rows):
            if not row.get(C.RESOLUTION) or not row.get(C.INTENT):
                continue
            entities = extract_entities(row.get(C.TEXT) or "")
            if row.get(C.ORDER_ID):
                entities[C.ORDER_ID] = str(row[C.ORDER_ID])
            keep.append(i)
            templates.append(answer_template(row[C.RESOLUTION], entities))
        log.info("answer store: %d of %d rows have an answer", len(keep), len(rows))
        return cls([str(rows[i][C.TICKET_ID]) for i in keep], [str(rows[i][C.INTENT]) for i in keep], templates, embeddings[keep])

    @property
    def intents(self) -> list[str]:
        """Intents with at least one answer, sorted."""
        return list(self._by_intent)

    def __len__(self) -> int:
        return len(self.ticket_ids)

    def answer(self, intent: str, query_embedding: np.ndarray, entities: dict[str, str]) -> Answer | None:
        """The answer for a message of a given intent.

        Among the rows of ``intent``, the most similar (dot product) row whose
        placeholders are all in ``entities``; if none is, the most similar row, its
        missing placeholders filled with :data:`GENERIC_PHRASES`. Ties go to the
        earlier row.

        Args:
            intent: The predicted intent.
            query_embedding: The message's ``(d,)`` embedding.
            entities: The message's entities, e.g. from :func:`extract_entities`.

        Returns:
            The answer, or None when the intent has no rows.

        Raises:
            ValueError: The query's dimension differs from the store's.
        """
        query = np.asarray(query_embedding, dtype=np.float32).reshape(-1)
        dim = self.embeddings.shape[1]
        if query.shape[0] != dim:
            raise ValueError(f"query embedding has dimension {query.shape[0]}, the store's embeddings have {dim}")
        rows = self._by_intent.get(intent)
        if rows is None:
            return None
        have = {k for k, v in entities.items() if v}
        sims = self.embeddings[rows] @ query
        ok = np.array([self.fields[r] <= have for r in rows])
        pick = int(np.argmax(np.where(ok, sims, -np.inf))) if ok.any() else int(np.argmax(sims))
        row = int(rows[pick])
        needed = self.fields[row]
        return Answer(
            fill_template(self.templates[row], entities),
            self.ticket_ids[row],
            float(sims[pick]),
            {k: entities[k] for k in sorted(needed & have)},
            sorted(needed - have),
        )

    def save(self, folder: str | Path) -> Path:
        """Write ``answers.parquet`` and ``answer_embeddings.npy`` to ``folder`` (created if needed); return it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.table(
            {
                C.TICKET_ID: pa.array(self.ticket_ids, pa.string()),
                C.INTENT: pa.array(self.row_intents, pa.string()),
                TEMPLATE: pa.array(self.templates, pa.string()),
            }
        )
        pq.write_table(table, folder / ANSWERS_FILE)
        np.save(folder / EMBEDDINGS_FILE, self.embeddings)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> AnswerStore:
        """A store written by :meth:`save`."""
        folder = Path(folder)
        data = pq.read_table(folder / ANSWERS_FILE).to_pydict()
        return cls(data[C.TICKET_ID], data[C.INTENT], data[TEMPLATE], np.load(folder / EMBEDDINGS_FILE))
