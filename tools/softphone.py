"""The tests' softphone: the pjsua2 phone of `softswitch phone`, which lives in the package (softswitch.phone.softphone)
so the installed command has it too."""

from softswitch.phone.softphone import (CallRecord, PhoneAccount, PhoneCall, Softphones, answer_after, shutdown,  # noqa: F401
                                  wav_energy)
