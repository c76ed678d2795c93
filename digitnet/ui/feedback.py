"""Right / No, it's a …: confirming or correcting the answer under the Draw tab's pad, and
the "Keep my drawings" switch beside them.

Saves run on their own events and queue slots (:data:`SAVE_QUEUE`), never the answer's,
so saving never holds up the next answer. Whether a drawing is kept is the server's
:class:`~digitnet.ui.drawing_policy.SavingPolicy`: the switch's state of that session, the
operator's settings and the rate limit, never what the request says.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from digitnet.errors import DigitnetError
from digitnet.pad_value import PadDrawing, parse_pad_value
from digitnet.predict import Prediction, classify_preprocessed, with_article
from digitnet.store import SOURCE_APP, drawing_png
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

# The feedback buttons read the pad's drawing in the page as it is now: the value Gradio
# holds is sent a moment after the pen lifts, and a quick click must not save the one before.
FRESH_PAD_JS = "(pad, choice) => [globalThis.digitnetPads?.[{pad!r}]?.value() ?? pad, choice]"


def pad_strokes(strokes: list[np.ndarray]) -> list[list[list[float]]]:
    """The pad's strokes as compact JSON-able lists (as the pad sends them, rounded)."""
    return [np.round(stroke, STROKE_DECIMALS).tolist() for stroke in strokes]


def shown_label(drawing: PadDrawing, model_name: str, answer: Prediction) -> int:
    """What "Right" confirms: the digit the page showed (the browser's answer for the
    model), else the server's. They differ only on a near tie, and the person saw the page's.
    """
    probs = drawing.browser_answers.get(model_name)
    return int(np.argmax(probs)) if probs is not None else answer.label


def drawing_key(drawing: PadDrawing) -> str:
    """What tells one drawing from another: its strokes as saved (or the example's name)."""
    if drawing.example:
        return f"example:{drawing.example}"
    return json.dumps(pad_strokes(drawing.strokes), separators=(",", ":"))


@dataclass(frozen=True)
class KeptDrawing:
    """A session's last kept drawing."""

    key: str  # drawing_key
    row_id: int
    label: int


class KeptDrawings:
    """Each session's last kept drawing.

    A person who presses Right, then "No, it's a 9" for the same drawing, corrects one row
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

    saver: Callable[[int | None], Callable]  # label (None: "Right") -> (pad, choice, request)
    clear_stale: Callable  # (pad value, request) -> "" once the pad holds another drawing
    set_switch: Callable  # (on, request) -> None: the session's switch, kept on the server
    kept: KeptDrawings


def make_feedback_handlers(
    app_store: AppStore,
    examples: dict[str, Path],
    lookup: ModelLookup,
    policy: SavingPolicy,
) -> FeedbackHandlers:
    """``saver(label)``: the handler of the "Right" (label None) or "No, it's a LABEL" button.

    The server reads the drawing again from the pad's strokes and runs the chosen model on
    it, so what is stored is exactly what the server would answer, not what a page claims.
    The same drawing confirmed or corrected again replaces its row (see :class:`KeptDrawings`).
    """
    kept = KeptDrawings()

    def saver(label: int | None) -> Callable:
        def save(value, choice: str | None, request: gr.Request = None) -> str:
            session = session_of(request)
            if not policy.is_on(session):
                return SWITCHED_OFF
            if app_store.store is None:
                return NO_DATABASE
            drawing, preprocessed = read_pad(value, examples)
            if preprocessed.is_blank:
                return NOTHING_DRAWN
            loaded = lookup.find(choice, request)
            if choice and loaded.name != choice:
                raise gr.Error(
                    f"{str(choice)[:40]} is no longer here (the server restarted, or the run "
                    f"was removed); choose another model and draw again",
                    print_exception=False,
                )
            try:
                return keep(session, drawing, preprocessed, loaded, label)
            except DigitnetError as error:
                raise visitor_error(error) from None

        return save

    def keep(session: str, drawing, preprocessed, loaded: LoadedModel, label: int | None) -> str:
        answer = classify_preprocessed(loaded.model, preprocessed)
        said = shown_label(drawing, loaded.name, answer)  # the answer the person saw
        true_label = said if label is None else label
        key, last = drawing_key(drawing), kept.last(session)
        again = last is not None and last.key == key
        if again and last.label == true_label:
            article, digit = with_article(true_label).split()
            return f"Already kept as {article} **{digit}** (drawing #{last.row_id})."
        policy.admit(session)
        if again:  # a correction of the drawing just kept: one row, the new label
            app_store.store.delete(last.row_id, session=session)
        saved = app_store.store.save(
            preprocessed.image,
            true_label,
            session=session,
            source=SOURCE_APP,
            model=loaded.name,
            probs=answer.probs,
            predicted=said,
            strokes=pad_strokes(drawing.strokes) if drawing.strokes else None,
            png=drawing_png(preprocessed),
        )
        kept.remember(session, KeptDrawing(key, saved.id, true_label))
        verdict = "right" if true_label == said else f"wrong (it said {said})"
        changed = f"Changed from {with_article(last.label)} to " if again else "Kept as "
        article, digit = with_article(true_label).split()
        return (
            f"{changed}{article} **{digit}**, {loaded.name} was {verdict}: drawing "
            f"#{saved.id}, {saved.count} in the store. Thank you!"
        )

    def clear_stale(value, request: gr.Request = None):
        try:
            drawing = parse_pad_value(value, frozenset(examples))
        except DigitnetError:
            return gr.skip()  # the answer's own event says what is wrong with the value
        return gr.skip() if kept.is_last(session_of(request), drawing_key(drawing)) else ""

    def set_switch(on: bool, request: gr.Request = None) -> None:
        policy.set_switch(session_of(request), on)

    return FeedbackHandlers(saver, clear_stale, set_switch, kept)


# ---------------------------------------------------------------------------
# Layout and wiring


@dataclass(frozen=True)
class Feedback:
    """The components under an answer."""

    switch: gr.Checkbox
    right: gr.Button
    wrong: list[gr.Button]  # digits 0-9
    status: gr.Markdown


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
    """ "Right ✓" and "No, it's a …" 0-9, a status line, and the saving switch."""
    # Real buttons, with borders and room for a finger (app.css): a bare row of 0-9 under the
    # bars read as the chart's axis.
    with gr.Column(elem_id="feedback"):  # not a Group: it strips the buttons' borders
        with gr.Row(equal_height=True, elem_id="right-row"):
            right = gr.Button("Right ✓", variant="primary", elem_id="right", scale=0)
            gr.Markdown("or, if not: **No, it's a …**", elem_id="wrong-label")
        with gr.Row(elem_id="wrong-digits"):
            wrong = [
                gr.Button(digit, variant="secondary", min_width=26, elem_id=f"wrong-{digit}")
                for digit in DIGIT_LABELS
            ]
    status = gr.Markdown(elem_id="feedback-status")
    switch = saving_switch(app_store, policy)
    return Feedback(switch, right, wrong, status)


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
    for label, button in [(None, feedback.right), *enumerate(feedback.wrong)]:
        button.click(
            handlers.saver(label),
            [pad, choice],
            feedback.status,
            js=FRESH_PAD_JS.format(pad=pad.elem_id),
            api_visibility="private",
            concurrency_id=SAVE_QUEUE,
            concurrency_limit=SAVE_CONCURRENCY,
            show_progress="hidden",
        )
