"""dates: calendar arithmetic (a Python tool; see tools/python/toolenv_guest.py)."""

import datetime
from typing import Literal, Optional

from toolenv_guest import Run, ToolError, tool  # noqa: F401 - Run is the component's export


def _date(text: str, field: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise ToolError(f"{field}: {text!r} is not a date in YYYY-MM-DD form") from None


@tool
def dates(
    operation: Literal["days_between", "add_days", "weekday"],
    date: str,
    other: Optional[str] = None,
    days: int = 0,
) -> dict:
    """Calendar arithmetic on ISO dates (YYYY-MM-DD, proleptic Gregorian). `days_between` gives the signed number of days from `date` to `other`; `add_days` gives `date` plus `days` (negative to go back); `weekday` gives the day of the week of `date`. Every result also names the weekday of the date it returns. Example: {"operation": "add_days", "date": "2024-02-27", "days": 3} returns {"date": "2024-03-01", "weekday": "Friday"}.

    Args:
        operation: What to compute: days_between, add_days or weekday.
        date: The date to start from, e.g. "2024-02-27".
        other: For days_between: the date to count to.
        days: For add_days: how many days to add.
    """
    start = _date(date, "date")
    if operation == "days_between":
        if other is None:
            raise ToolError("days_between needs `other`, the date to count to")
        end = _date(other, "other")
        return {"days": (end - start).days, "weekday": end.strftime("%A")}
    if operation == "add_days":
        try:
            end = start + datetime.timedelta(days=days)
        except OverflowError:
            raise ToolError(f"{date} plus {days} days is outside years 1 to 9999") from None
        return {"date": end.isoformat(), "weekday": end.strftime("%A")}
    return {"date": start.isoformat(), "weekday": start.strftime("%A")}
