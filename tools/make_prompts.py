"""Generate the shipped 8 kHz prompts (config/prompts/*.wav) with espeak-ng; never downloaded at run time.

    python tools/make_prompts.py [--out config/prompts]
Without espeak-ng (Debian package espeak-ng) each prompt becomes a short tone pattern of the same name, so
a node still plays something recognisable.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from media.wav import read_wav_raw, resample, to_int16, tone, write_wav  # noqa: E402

NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
           "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
TENS = {30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy", 80: "eighty", 90: "ninety"}

PROMPTS = {
    "welcome": "Welcome to the Acme contact center.",
    "menu": "For support, press 1. For video support, press 2.",
    "closed": "We are sorry, nobody can take your call now. Please call again later. Goodbye.",
    "caller_number": "You are caller number",
    "estimated_wait": "Your estimated waiting time is",
    "minutes": "minutes",
    "less_than_a_minute": "less than one minute",
    "callback_offer": "To be called back without losing your place in the queue, press 9.",
    "callback_confirm": "Thank you. We will call you back when it is your turn. Goodbye.",
    "callback_hello": "Hello, this is the Acme contact center calling you back. Connecting you now.",
    "invalid": "Sorry, that is not a valid choice.",
}
PROMPTS.update({f"n{i}": w for i, w in enumerate(NUMBERS)})
PROMPTS.update({f"n{k}": w for k, w in TENS.items()})


def speak(text: str) -> np.ndarray | None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    wav = subprocess.run([exe, "-v", "en-us", "-s", "150", "--stdout", text], capture_output=True, check=True).stdout
    samples, rate = read_wav_raw(io.BytesIO(wav))
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    return to_int16(resample(samples.astype(np.float64), rate, 8000))


def beeps(name: str) -> np.ndarray:
    base = 400 + (sum(map(ord, name)) % 8) * 60
    parts = [tone(base, 0.15, amplitude=0.3), np.zeros(400, np.int16), tone(base * 1.25, 0.15, amplitude=0.3)]
    return np.concatenate(parts).astype(np.int16)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                  "config", "prompts"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    spoken = 0
    for name, text in PROMPTS.items():
        samples = speak(text)
        if samples is None:
            samples = beeps(name)
        else:
            spoken += 1
        write_wav(os.path.join(args.out, f"{name}.wav"), samples)
    print(f"{len(PROMPTS)} prompts in {args.out} ({spoken} spoken by espeak-ng, {len(PROMPTS) - spoken} tone patterns)")


if __name__ == "__main__":
    main()
