"""``python -m digitnet calibrate``: fit a saved run's calibration again on its validation split."""

from __future__ import annotations

import argparse

from digitnet.calibration import DIGITS_REFUSED
from digitnet.cli.options import add_data_option, add_model_option, data_paths
from digitnet.errors import DigitnetError


def add_parser(commands) -> None:
    calibrate = commands.add_parser(
        "calibrate",
        help="fit a model's temperature and not-a-digit threshold again",
        description=(
            "Fit the temperature (honest probabilities) and the not-a-digit threshold of a "
            "saved run on its own validation split, as training does at its end. Only the "
            "run's JSON changes. --data must be the run's training data."
        ),
    )
    add_model_option(calibrate, "the run to calibrate")
    add_data_option(calibrate)
    calibrate.add_argument(
        "--digits-refused",
        type=float,
        default=DIGITS_REFUSED,
        metavar="SHARE",
        help="share of validation digits the not-a-digit threshold may refuse "
        f"(default: {DIGITS_REFUSED}; from 0 to 0.05)",
    )
    calibrate.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from digitnet.runs import calibrate_checkpoint

    if not 0 <= args.digits_refused <= 0.05:
        raise DigitnetError(f"--digits-refused must be from 0 to 0.05, got {args.digits_refused}")
    calibration = calibrate_checkpoint(args.model, data_paths(args), args.digits_refused)
    refused = calibration["digits_refused"]
    print(
        f"temperature {calibration['temperature']:.4f}, not a digit below "
        f"{calibration['reject_below']:.4f}: refuses {100 * refused['drawings']:.2f}% of "
        f"validation drawings, {100 * refused['validation']:.2f}% of validation digits and "
        f"{100 * calibration['nondigits_refused']:.1f}% of {calibration['nondigits_count']:,} "
        f"held-out non-digits; drawings' calibration error {calibration['ece_before']:.4f} "
        f"-> {calibration['ece']:.4f}"
    )
    return 0
