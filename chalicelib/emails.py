"""The words of the emails a finished job sends its person. Pure: no I/O, no settings read here.

Plain text and HTML of the same words; no image, no tracking pixel, no link but the one to the result (or, after
a failure, to the upload page). The line saying why the person got the email ends both."""

from __future__ import annotations

from datetime import datetime
from html import escape

from . import domain
from .mail import EmailMessage

WHY = "You're getting this because you uploaded a photo to 3D Ultra with this address."
PRODUCT = "3D Ultra"


def view_link(frontend_url: str, job_id: str, view_token: str) -> str:
    """The capability link: the token rides in the fragment, which no browser sends to any server (so it reaches
    no access log) and which the processing page reads and sends as X-View-Token."""
    return f"{frontend_url}/processing/{job_id}#view={view_token}"


def completed_email(*, to: str, job_id: str, view_token: str, frontend_url: str, expires_at: datetime) -> EmailMessage:
    link = view_link(frontend_url, job_id, view_token)
    until = _day(expires_at)
    text = (f"Your 3D model is ready.\n\n"
            f"Open it on any device, look at it from every side and download it:\n{link}\n\n"
            f"The link works until {until}; after that the photo and the model are deleted.\n\n"
            f"{WHY}\n")
    html = _html("Your 3D model is ready.",
                 f'<p><a href="{escape(link)}">Open your 3D model</a> on any device, look at it from every side and '
                 f'download it.</p>\n<p>The link works until {escape(until)}; after that the photo and the model are '
                 f'deleted.</p>\n<p>If the link does not open, paste this address into a browser:<br>'
                 f'{escape(link)}</p>')
    return EmailMessage(to=to, subject="Your 3D model is ready", text=text, html=html)


def failed_email(*, to: str, error_message: str | None, frontend_url: str) -> EmailMessage:
    reason = error_message or domain.failure_message("provider_failed")
    link = f"{frontend_url}/"
    text = (f"We couldn't make a 3D model of your photo.\n\n{reason}\n\n"
            f"Upload another photo:\n{link}\n\n{WHY}\n")
    html = _html("We couldn't make a 3D model of your photo.",
                 f"<p>{escape(reason, quote=False)}</p>\n<p><a href=\"{escape(link)}\">Upload another photo</a></p>")
    return EmailMessage(to=to, subject="We couldn't make your 3D model", text=text, html=html)


def _html(heading: str, body: str) -> str:
    return ("<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>" + escape(PRODUCT) +
            "</title></head>\n<body>\n<h1>" + escape(heading, quote=False) + "</h1>\n" + body + "\n<p>" + escape(WHY, quote=False) +
            "</p>\n</body>\n</html>\n")


def _day(moment: datetime) -> str:
    return f"{moment.day} {moment:%B %Y}"
