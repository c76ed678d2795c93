"""What every tab shares about a browser session: who it is, which models it may draw
against, and the components that list them.

A session's own runs (trained or fine-tuned in the app) answer, and show their dashboard,
in that session only; the shipped models answer everyone, and so do the :class:`SharedModels`
that arrive while pages are open (the room's model). :class:`ModelLookup` is the one place a
model choice becomes a model.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from digitnet.errors import DigitnetError
from digitnet.jobs import RunRecord
from digitnet.pad_value import PadDrawing, preprocess_pad_value
from digitnet.preprocess import Preprocessed
from digitnet.training_service import TrainingService
from digitnet.ui.models import LoadedModel
from digitnet.ui.pad import pad_models
from digitnet.ui.static_files import serve_files

LOCAL_SESSION = "local"  # a handler called directly, with no browser session
# An absolute path: a slash, then folders, then the name (which is kept).
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/:;,'\"()]+/)+([^\s/:;,'\"()]*)")


def session_of(request: gr.Request | None) -> str:
    """The browser session (or API client) a request comes from."""
    return getattr(request, "session_hash", None) or LOCAL_SESSION


def hide_paths(text: str) -> str:
    """``text`` with every absolute server path cut to its file's name: what a visitor sees
    says which file, never where the server keeps it."""
    return ABSOLUTE_PATH.sub(r"\1", text)


def visitor_error(error: Exception) -> gr.Error:
    """A library error as the one line a visitor sees (no server paths, no traceback)."""
    return gr.Error(hide_paths(str(error)), print_exception=False)


def read_pad(value: object, examples: dict[str, Path]) -> tuple[PadDrawing, Preprocessed]:
    """:func:`~digitnet.pad_value.preprocess_pad_value` for a handler: anything that is not a
    pad value is a one-line gr.Error saying what to send."""
    try:
        return preprocess_pad_value(value, examples)
    except DigitnetError as error:
        raise visitor_error(error) from None


@dataclass(frozen=True)
class SharedModels:
    """Models every session may draw against beside the shipped ones, which may arrive while
    pages are open (the room's model, :mod:`digitnet.room`): asked for each time."""

    models: Callable[[], dict[str, LoadedModel]] = dict
    web_files: Callable[[], dict[str, Path]] = dict  # the browser's copies, by name


@dataclass(frozen=True)
class ModelLookup:
    """Model choice -> model: the session's own run of that name first, then the shared
    models, then the shipped ``models`` (the first is the default). Another session's run
    is never found."""

    models: dict[str, LoadedModel]
    service: TrainingService | None = None
    shared: SharedModels = SharedModels()

    def own_run(self, choice: str | None, request: gr.Request | None) -> LoadedModel | None:
        """The session's own run called ``choice``, or None when it names no run of its.

        A run evicted from disk is a one-line gr.Error, never silently another model.
        """
        if self.service is None or not choice:
            return None
        record = self.service.find_run(session_of(request), choice)
        if record is None:
            return None
        if record.evicted:
            raise gr.Error(
                f"{choice} was removed to make room (this server keeps its last "
                f"{self.service.keep_runs} runs); train it again"
            )
        return LoadedModel(record.name, record.model, record.metadata)

    def find(self, choice: str | None, request: gr.Request | None = None) -> LoadedModel:
        """The model to answer with: the session's run, the shipped model, or the default."""
        own = self.own_run(choice, request)
        if own is not None:
            return own
        shared = self.shared.models().get(choice or "")
        if shared is not None:
            return shared
        default = next(iter(self.models.values()))
        return self.models.get(choice or "", default)

    def session_models(self, request: gr.Request | None) -> dict[str, LoadedModel]:
        """The shipped models, the shared ones, then the session's runs still on disk."""
        runs = self.service.runs(session_of(request)) if self.service is not None else []
        own = {r.name: LoadedModel(r.name, r.model, r.metadata) for r in runs if not r.evicted}
        return {**self.models, **self.shared.models(), **own}


def browser_runs(records: Sequence[RunRecord]) -> dict[str, Path]:
    """The runs the browser can run, by name: their web models."""
    return {
        record.name: record.web_model
        for record in records
        if not record.evicted and record.web_model is not None and record.web_model.is_file()
    }


@dataclass(frozen=True)
class ModelChoiceOutputs:
    """The components that list a session's models, updated when one of its runs (trained
    or fine-tuned) is done, or a shared model arrives: the Draw tab's model choice, holding
    the ``shipped`` models, and its pad, holding their web files."""

    choice: gr.Radio | None = None
    shipped: Sequence[str] = ()
    pad: gr.HTML | None = None
    pad_browser_models: dict[str, Path] = dataclasses.field(default_factory=dict)
    shared: SharedModels = SharedModels()

    @property
    def outputs(self) -> list[gr.Component]:
        return [component for component in (self.choice, self.pad) if component is not None]

    def updates(self, records: Sequence[RunRecord], new: RunRecord | None = None) -> list:
        """The outputs' values once ``new`` has joined the session's ``records``."""
        values = []
        if self.choice is not None:
            shared = list(self.shared.models())
            names = [*self.shipped, *shared, *(r.name for r in records if not r.evicted)]
            values.append(gr.Radio(choices=names))
        if self.pad is not None:
            if new is not None and new.web_model is not None:
                serve_files([new.web_model])  # this one file, at an unguessable path
            browser = {**self.pad_browser_models, **self.shared.web_files()}
            browser.update(browser_runs(records))
            values.append(gr.HTML(models=pad_models(browser)))
        return values
