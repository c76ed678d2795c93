"""What Ctrl-C does to a run: it never throws one away."""

from __future__ import annotations

import os
import signal
import sys
import time

# For tests only: when this variable is set, `train --drawings N` announces the drawings
# measurement on stdout and holds it until Ctrl-C arrives, so a test interrupts the
# measurement at a known state instead of guessing how long it runs.
HOLD_MEASURING_ENV = "DIGITNET_TEST_HOLD_MEASURING"
HOLDING_LINE = "measuring drawings: held until Ctrl-C"


class SkipMeasuring(BaseException):
    """Ctrl-C while a finished run is being measured: save it without that measurement.

    A BaseException, like KeyboardInterrupt, so no ``except Exception`` on the way swallows it.
    """


class CtrlC:
    """Ctrl-C never throws a run away. The first press stops training after its current step;
    pressed after training, it skips the slow measurement on drawings; pressed while saving,
    it waits for the save. Either way the best weights so far are saved. A second press quits
    at once without saving, as Ctrl-C usually does.
    """

    TRAINING, MEASURING, SAVING = "training", "measuring", "saving"

    def __init__(self, run) -> None:
        self.run = run
        self.phase = self.TRAINING
        self.pressed = False

    def __enter__(self) -> CtrlC:
        self.previous = signal.signal(signal.SIGINT, self._first_press)
        return self

    def __exit__(self, *exc_info) -> None:
        signal.signal(signal.SIGINT, self.previous)

    def _first_press(self, signum, frame) -> None:
        signal.signal(signal.SIGINT, self.previous)
        self.pressed = True
        doing = {
            self.TRAINING: "stopping after this step to save the best weights so far",
            self.MEASURING: "skipping the drawings measurement to save the weights now",
            self.SAVING: "saving the weights; one moment",
        }[self.phase]
        print(f"\n{doing} (Ctrl-C again to quit without saving)", file=sys.stderr, flush=True)
        if self.phase == self.TRAINING:
            self.run.stop()
        elif self.phase == self.MEASURING:
            raise SkipMeasuring


def hold_measuring_for_tests() -> None:
    """Under ``$DIGITNET_TEST_HOLD_MEASURING``, wait for Ctrl-C (SkipMeasuring) forever."""
    if not os.environ.get(HOLD_MEASURING_ENV):
        return
    print(HOLDING_LINE, flush=True)
    while True:
        time.sleep(60)  # the signal handler raises SkipMeasuring out of the sleep
