"""Right / No, it's a … / Not a digit: confirming or correcting the answer under the Draw
tab's pad, and the "Keep my drawings" switch beside them.

Saves run on their own events and queue slots (:data:`SAVE_QUEUE`), never the answer's,
so saving never holds up the next answer. Whether a drawing is kept is the server's
:class:`~digitnet.ui.drawing_policy.SavingPolicy`: the switch's state of that session, the
operator's settings and the rate limit, never what the request says.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from digitnet.drawing_data import answers_from_probs
from digitnet.errors import DigitnetError
from digitnet.number_answer import number_on_pad
from digitnet.numbers import Reading
from digitnet.pad_value import PadDrawing, parse_pad_value
from digitnet.predict import Prediction, classify_preprocessed, with_article
from digitnet.store import NOT_A_DIGIT, SOURCE_APP, NewDrawing, drawing_png
from digitnet.ui.drawing_policy import AppStore, SavingPolicy
from digitnet.ui.models import LoadedModel
from digitnet.ui.session import ModelLookup, read_pad, session_of, visitor_error

DIGIT_LABELS = [str(digit) for digit in range(10)]
SAVE_QUEUE = "drawings-save"  # saves' own queue slots, apart from the answer's
SAVE_CONCURRENCY = 4  # the store serialises writes anyway; more only waits
STROKE_DECIMALS = 1  # pad units are 0-280: a tenth is far finer than the brush
NOTHING_DRAWN = "Draw a digit first, then tell the model whether it was right."
SWITCHED_OFF = "Not kept: saving is switched off (the switch below)."
NO_DATABASE = "Not kept: the drawings database could not be opened (see the warning)."
TYPE_A_NUMBER = "Type the number you drew, digits 0-9 only (e.g. 42), then press Enter or Keep."

# The feedback buttons read the pad's drawing in the page as it is now: the value Gradio
# holds is sent a moment after the pen lifts, and a quick click must not save the one before.
FRESH_PAD_JS = "(pad, ...rest) => [globalThis.digitnetPads?.[{pad!r}]?.value() ?? pad, ...rest]"


def pad_strokes(strokes: list[np.ndarray]) -> list[list[list[float]]]:
    """The pad's strokes as compact JSON-able lists (as the pad sends them, rounded)."""
    return [np.round(stroke, STROKE_DECIMALS).tolist() for stroke in strokes]


def shown_label(drawing: PadDrawing, model_name: str, answer: Prediction) -> int:
    """What "Right" confirms: the answer the page showed (the browser's for the model), else
    the server's: a digit, or NOT_A_DIGIT where the model refused the drawing. They differ
    only on a near tie or at the threshold, and the person saw the page's.
    """
    probs = drawing.browser_answers.get(model_name)
    if probs is None:
        return answer.label if answer.is_digit else NOT_A_DIGIT
    return int(answers_from_probs(probs, answer.reject_below)[0])


def as_kept(label: int, bold: str = "**") -> str:
    """A label in the status line: "a **7**", "an **8**", or "**not a digit**"."""
    if label == NOT_A_DIGIT:
        return f"{bold}not a digit{bold}"
    article, digit = with_article(label).split()
    return f"{article} {bold}{digit}{bold}"


def as_said(label: int) -> str:
    """What a model said, in a few words: "it said 7", or "it refused it"."""
    return "it refused it" if label == NOT_A_DIGIT else f"it said {label}"


def number_text(labels: tuple[int, ...]) -> str:
    """A number's digits as the pad writes them: "42", a refused digit as "?"."""
    return "".join("?" if label == NOT_A_DIGIT else str(label) for label in labels)


def kept_text(labels: tuple[int, ...], bold: str = "**") -> str:
    """What a drawing was kept as: ``as_kept`` for one digit, "**42**" for a number."""
    if len(labels) == 1:
        return as_kept(labels[0], bold)
    return f"{bold}{number_text(labels)}{bold}"


def said_labels(number: Reading) -> tuple[int, ...]:
    """What the pad showed for each digit of a number: the digit, or NOT_A_DIGIT for "?"."""
    return tuple(NOT_A_DIGIT if digit.label == "?" else int(digit.label) for digit in number.digits)


def typed_labels(typed: object) -> tuple[int, ...] | None:
    """The digits of a typed number ("4 7" and " 47" are 4, 7); None unless digits 0-9."""
    text = "".join(str(typed or "").split())
    return tuple(int(c) for c in text) if re.fullmatch("[0-9]{1,40}", text) else None


def row_ids_text(ids: tuple[int, ...]) -> str:
    return f"drawing #{ids[0]}" if len(ids) == 1 else "drawings " + ", ".join(f"#{i}" for i in ids)


def drawing_key(drawing: PadDrawing) -> str:
    """What tells one drawing from another: its strokes as saved (or the example's name)."""
    if drawing.example:
        return f"example:{drawing.example}"
    return json.dumps(pad_strokes(drawing.strokes), separators=(",", ":"))


@dataclass(frozen=True)
class KeptDrawing:
    """A session's last kept drawing: one row, or a number's rows (one per digit)."""

    key: str  # drawing_key
    row_ids: tuple[int, ...]
    labels: tuple[int, ...]  # the true labels, one per row


class KeptDrawings:
    """Each session's last kept drawing.

    A person who presses Right, then "No, it's a 9" (or "Not a digit") for the same drawing,
    corrects one row
    rather than keeping the drawing twice; pressing the same button again keeps nothing new.
    And the status line ("Kept as a 7") is cleared once the pad holds another drawing.
    """

    SESSIONS = 10_000  # the oldest sessions are forgotten first; a row is never lost by it

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: OrderedDict[str, KeptDrawing] = OrderedDict()

    def last(self, session: str) -> KeptDrawing | None:
        with self._lock:
            return self._last.get(session)

    def remember(self, session: str, kept: KeptDrawing) -> None:
        with self._lock:
            self._last[session] = kept
            self._last.move_to_end(session)
            while len(self._last) > self.SESSIONS:
                self._last.popitem(last=False)

    def is_last(self, session: str, key: str) -> bool:
        last = self.last(session)
        return last is not None and last.key == key


@dataclass(frozen=True)
class FeedbackHandlers:
    """The handlers under the answer, plain functions (tested without a server)."""

    # label (None: "Right"; NOT_A_DIGIT: "Not a digit") -> handler(pad, choice, request)
    saver: Callable[[int | None], Callable]
    save_number: Callable  # (pad, choice, typed number, request): "No, it's …" typed
    clear_stale: Callable  # (pad value, request) -> "" once the pad holds another drawing
    set_switch: Callable  # (on, request) -> None: the session's switch, kept on the server
    kept: KeptDrawings


def count_mismatch(typed: int, drawn: int) -> str:
    """The line for a typed number whose digits do not match the digits drawn."""
    if drawn == 1:
        return f"You typed {typed} digits, but the pad holds one: type just that digit."
    digits = "one digit" if typed == 1 else f"{typed} digits"
    return (
        f"You typed {digits}, but the pad holds {drawn}: type one digit for each digit drawn "
        f"(or Clear and draw the number again)."
    )


class Keeper:
    """What the buttons under the answer do, on the server: each press kept (or not) by the
    saving policy, the drawing read again from the pad's strokes by the chosen model, so
    what is stored is exactly what the server would answer, not what a page claims.

    A number the pad shows (``number_answer.number_on_pad``) is kept as one row per digit, each
    with its own strokes, 28x28 and label, and counts as that many saves. The same drawing
    confirmed or corrected again replaces its rows (see :class:`KeptDrawings`).
    """

    def __init__(
        self,
        app_store: AppStore,
        examples: dict[str, Path],
        lookup: ModelLookup,
        policy: SavingPolicy,
    ) -> None:
        self.app_store, self.examples, self.lookup, self.policy = (
            app_store,
            examples,
            lookup,
            policy,
        )
        self.kept = KeptDrawings()

    def prepare(self, value, choice: str | None, request) -> tuple | str:
        """(session, drawing, its input, the model), or the line saying why nothing is kept."""
        session = session_of(request)
        if not self.policy.is_on(session):
            return SWITCHED_OFF
        if self.app_store.store is None:
            return NO_DATABASE
        drawing, preprocessed = read_pad(value, self.examples)
        if preprocessed.is_blank:
            return NOTHING_DRAWN
        loaded = self.lookup.find(choice, request)
        if choice and loaded.name != choice:
            raise gr.Error(
                f"{str(choice)[:40]} is no longer here (the server restarted, or the run "
                f"was removed); choose another model and draw again",
                print_exception=False,
            )
        return session, drawing, preprocessed, loaded

    def save(self, label: int | None, value, choice: str | None, request=None) -> str:
        """A button: "Right" (label None), "No, it's a LABEL", "Not a digit" (NOT_A_DIGIT)."""
        ready = self.prepare(value, choice, request)
        if isinstance(ready, str):
            return ready
        try:
            return self.keep(*ready, label)
        except DigitnetError as error:
            raise visitor_error(error) from None

    def save_number(self, value, choice: str | None, typed, request=None) -> str:
        """The typed "No, it's …": a number's true digits, or one digit's."""
        ready = self.prepare(value, choice, request)
        if isinstance(ready, str):
            return ready
        labels = typed_labels(typed)
        if labels is None:
            return TYPE_A_NUMBER
        session, drawing, _, loaded = ready
        try:
            number = self.shown_number(drawing, loaded)
            drawn = 1 if number is None else len(number.digits)
            if len(labels) != drawn:
                return count_mismatch(len(labels), drawn)
            if number is None:
                return self.keep(*ready, labels[0])
            return self.keep_number(session, drawing, number, loaded, labels)
        except DigitnetError as error:
            raise visitor_error(error) from None

    @staticmethod
    def shown_number(drawing: PadDrawing, loaded: LoadedModel) -> Reading | None:
        if drawing.example or not drawing.strokes:
            return None
        return number_on_pad(loaded.model, drawing.strokes)

    def keep(self, session: str, drawing, preprocessed, loaded, label: int | None) -> str:
        number = None if label == NOT_A_DIGIT else self.shown_number(drawing, loaded)
        if number is not None:
            if label is not None:
                return (
                    f"The pad shows a number of {len(number.digits)} digits: type the right "
                    f"number in the box below (No, it's …), one digit for each."
                )
            return self.keep_number(session, drawing, number, loaded, None)
        answer = classify_preprocessed(loaded.model, preprocessed)
        said = shown_label(drawing, loaded.name, answer)  # the answer the person saw
        row = NewDrawing(
            preprocessed.image,
            said if label is None else label,
            loaded.name,
            answer.probs,
            said,
            pad_strokes(drawing.strokes) if drawing.strokes else None,
            drawing_png(preprocessed),
        )
        return self.remember(session, drawing, loaded, [row], (said,))

    def keep_number(
        self, session: str, drawing, number: Reading, loaded, labels: tuple[int, ...] | None
    ) -> str:
        """Each digit its own row: its 28x28, strokes, probabilities and label."""
        said = said_labels(number)
        rows = [
            NewDrawing(
                digit.prediction.preprocessed.image,
                label,
                loaded.name,
                digit.prediction.probs,
                shown,
                pad_strokes(digit.strokes),
                drawing_png(digit.prediction.preprocessed),
            )
            for digit, label, shown in zip(number.digits, labels or said, said)
        ]
        return self.remember(session, drawing, loaded, rows, said)

    def remember(self, session: str, drawing, loaded, rows: list[NewDrawing], said) -> str:
        """Keep the rows (a correction replaces the same drawing's), and say so."""
        labels = tuple(row.label for row in rows)
        key, last = drawing_key(drawing), self.kept.last(session)
        again = last is not None and last.key == key
        if again and last.labels == labels:
            return f"Already kept as {kept_text(labels)} ({row_ids_text(last.row_ids)})."
        self.policy.admit(session, len(rows))
        store = self.app_store.store
        if again:  # a correction of the drawing just kept: its rows, the new labels
            store.delete(last.row_ids, session=session)
        saved = store.save_each(rows, session=session, source=SOURCE_APP)
        ids = tuple(row.id for row in saved)
        self.kept.remember(session, KeptDrawing(key, ids, labels))
        told = as_said(said[0]) if len(said) == 1 else f"it said {number_text(said)}"
        verdict = "right" if labels == said else f"wrong ({told})"
        changed = f"Changed from {kept_text(last.labels, bold='')} to " if again else "Kept as "
        each = ", one drawing per digit" if len(rows) > 1 else ""
        return (
            f"{changed}{kept_text(labels)}{each}, {loaded.name} was {verdict}: "
            f"{row_ids_text(ids)}, {saved[-1].count} in the store. Thank you!"
        )

    def clear_stale(self, value, request=None):
        """ "" once the pad holds another drawing than the one the status line is about."""
        try:
            drawing = parse_pad_value(value, frozenset(self.examples))
        except DigitnetError:
            return gr.skip()  # the answer's own event says what is wrong with the value
        last = self.kept.is_last(session_of(request), drawing_key(drawing))
        return gr.skip() if last else ""

    def set_switch(self, on: bool, request=None) -> None:
        self.policy.set_switch(session_of(request), on)


def make_feedback_handlers(
    app_store: AppStore,
    examples: dict[str, Path],
    lookup: ModelLookup,
    policy: SavingPolicy,
) -> FeedbackHandlers:
    """The handlers under the answer (see :class:`Keeper`), each a plain function with the
    parameters Gradio fills: ``saver(label)`` is the handler of the "Right" (label None),
    "No, it's a LABEL" or "Not a digit" (label NOT_A_DIGIT) button."""
    keeper = Keeper(app_store, examples, lookup, policy)

    def saver(label: int | None) -> Callable:
        def save(value, choice: str | None, request: gr.Request = None) -> str:
            return keeper.save(label, value, choice, request)

        return save

    def save_number(value, choice: str | None, typed, request: gr.Request = None) -> str:
        return keeper.save_number(value, choice, typed, request)

    def clear_stale(value, request: gr.Request = None):
        return keeper.clear_stale(value, request)

    def set_switch(on: bool, request: gr.Request = None) -> None:
        keeper.set_switch(on, request)

    return FeedbackHandlers(saver, save_number, clear_stale, set_switch, keeper.kept)


# ---------------------------------------------------------------------------
# Layout and wiring


@dataclass(frozen=True)
class Feedback:
    """The components under an answer."""

    switch: gr.Checkbox
    right: gr.Button
    not_a_digit: gr.Button
    wrong: list[gr.Button]  # digits 0-9
    status: gr.Markdown
    number: gr.Textbox  # "No, it's …" typed: a number's true digits (or one digit)
    keep_number: gr.Button  # keeps what ``number`` says (so does Enter in it)


def saving_switch(app_store: AppStore, policy: SavingPolicy) -> gr.Checkbox:
    """The visible opt-in switch, saying what is kept (disabled when saving is off)."""
    if not app_store.saving or policy.forced_off:
        why = "could not be opened" if not app_store.saving else "is switched off here"
        return gr.Checkbox(
            value=False,
            interactive=False,
            label=f"Keep my drawings (off: the drawings database {why})",
            elem_id="keep-drawings",
        )
    return gr.Checkbox(
        value=policy.default,
        label="Keep my drawings when I confirm or correct an answer",
        info=policy.kept_text(),
        elem_id="keep-drawings",
    )


def build_feedback(app_store: AppStore, policy: SavingPolicy) -> Feedback:
    """ "Right ✓", "Not a digit" and "No, it's a …" 0-9, a status line, and the saving
    switch."""
    # Real buttons, with borders and room for a finger (app.css): a bare row of 0-9 under the
    # bars read as the chart's axis.
    with gr.Column(elem_id="feedback"):  # not a Group: it strips the buttons' borders
        with gr.Row(equal_height=True, elem_id="right-row"):
            right = gr.Button("Right ✓", variant="primary", elem_id="right", scale=0)
            gr.Markdown("or, if not: **No, it's a …**", elem_id="wrong-label")
            # A letter, a star, a scribble: kept as such, never filed as some digit.
            not_a_digit = gr.Button("Not a digit", elem_id="not-a-digit", scale=0)
        with gr.Row(elem_id="wrong-digits"):
            wrong = [
                gr.Button(digit, variant="secondary", min_width=26, elem_id=f"wrong-{digit}")
                for digit in DIGIT_LABELS
            ]
        # A number drawn: its true digits typed, each kept as its own drawing.
        with gr.Row(equal_height=True, elem_id="number-row"):
            number = gr.Textbox(
                label="No, it's the number …",
                show_label=False,
                placeholder="A number? No, it's … (type it, e.g. 42)",
                max_lines=1,
                container=False,
                elem_id="wrong-number",
                scale=1,
            )
            keep_number = gr.Button("Keep", elem_id="keep-number", scale=0, min_width=80)
    status = gr.Markdown(elem_id="feedback-status")
    switch = saving_switch(app_store, policy)
    return Feedback(switch, right, not_a_digit, wrong, status, number, keep_number)


def wire_feedback(
    feedback: Feedback, pad: gr.HTML, choice: gr.Radio, handlers: FeedbackHandlers
) -> None:
    """Each button saves on its own event and queue slots (:data:`SAVE_QUEUE`).

    The status line goes blank when the pad sends another drawing: "Kept as a 7" under a
    freshly drawn 4 would read as being about the 4.
    """
    pad.change(
        handlers.clear_stale,
        pad,
        feedback.status,
        queue=False,
        api_visibility="private",
        show_progress="hidden",
    )
    # Unqueued, so the switch is set before a click right after it is handled.
    feedback.switch.input(
        handlers.set_switch, feedback.switch, None, queue=False, api_visibility="private"
    )
    saving = dict(
        outputs=feedback.status,
        js=FRESH_PAD_JS.format(pad=pad.elem_id),
        api_visibility="private",
        concurrency_id=SAVE_QUEUE,
        concurrency_limit=SAVE_CONCURRENCY,
        show_progress="hidden",
    )
    buttons = [(None, feedback.right), (NOT_A_DIGIT, feedback.not_a_digit)]
    for label, button in [*buttons, *enumerate(feedback.wrong)]:
        button.click(handlers.saver(label), [pad, choice], **saving)
    gr.on(
        [feedback.number.submit, feedback.keep_number.click],
        handlers.save_number,
        [pad, choice, feedback.number],
        **saving,
    )
