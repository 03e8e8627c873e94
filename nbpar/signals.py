"""The signals a Boss understands on its control pipe (taylorism's vocabulary)."""

import enum


class Signal(enum.Enum):
    """What a caller, a progress bar, a widget or a magic may ask of a Boss.

    HALT            start no new work; running tasks finish
    RESUME          start work again after HALT
    SEND_REPORT     answer with an interim report
    END             finish what is pending, then stop listening
    STOP            start nothing more; let running tasks finish
    STOP_LISTENING  stop listening to the control pipe; running and pending work goes on
    STOP_RIGHTNOW   kill running tasks now; what they were running counts as pending
    """

    HALT = "HALT"
    RESUME = "RESUME"
    SEND_REPORT = "SEND_REPORT"
    END = "END"
    STOP = "STOP"
    STOP_LISTENING = "STOP_LISTENING"
    STOP_RIGHTNOW = "STOP_RIGHTNOW"
