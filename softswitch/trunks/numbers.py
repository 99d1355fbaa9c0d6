"""How numbers arrive on a trunk and how they leave it: a prefix to strip or add, and E.164 normalisation.

Inbound, `0301234567` with country code 49 and national prefix 0 becomes `+49301234567`, `0049...` becomes
`+49...`; outbound, an E.164 number is written the way the carrier wants it (e164 `+49...`, digits `49...`,
international `0049...`, national `0301234567` for a number of the home country).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FORMATS = ("e164", "digits", "international", "national")
_VISUAL = re.compile(r"[\s().\-/]")       # what people and some SBCs put between digits


@dataclass(frozen=True)
class NumberPlan:
    country_code: str = ""           # "49"; empty: numbers are taken as they come (no national form known)
    national_prefix: str = "0"
    international_prefix: str = "00"
    strip: str = ""                  # inbound: a technical prefix the carrier puts in front, removed if present
    add: str = ""                    # outbound: put in front of every number sent
    send_as: str = "e164"            # outbound format, one of FORMATS

    def inbound(self, number: str) -> str:
        """The number as the switch handles it: E.164 with `+` where it can be told, else as it came."""
        n = _VISUAL.sub("", number)
        if self.strip and n.startswith(self.strip):
            n = n[len(self.strip):]
        if n.startswith("+"):
            return n
        if self.international_prefix and n.startswith(self.international_prefix):
            return "+" + n[len(self.international_prefix):]
        if self.country_code and self.national_prefix and n.startswith(self.national_prefix) and \
                len(n) > len(self.national_prefix):
            return f"+{self.country_code}{n[len(self.national_prefix):]}"
        return n

    def outbound(self, number: str) -> str:
        """An E.164 (or local) number as the carrier is sent it."""
        n = self.inbound(number) if not number.startswith("+") else _VISUAL.sub("", number)
        if n.startswith("+"):
            digits = n[1:]
            if self.send_as == "digits":
                n = digits
            elif self.send_as == "international":
                n = self.international_prefix + digits
            elif self.send_as == "national":
                if self.country_code and digits.startswith(self.country_code):
                    n = self.national_prefix + digits[len(self.country_code):]
                else:
                    n = self.international_prefix + digits
        return self.add + n
