"""Signing a test client in, and reading the dashboard's pages through an HTML parser."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bs4 import BeautifulSoup, Tag
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine

from app.components.backend.main import create_app
from app.core.settings import Settings
from tests.conftest import TEST_TOKEN


def page(response: Response) -> BeautifulSoup:
    return BeautifulSoup(response.text, "html.parser")


def one(soup: BeautifulSoup | Tag, selector: str) -> Tag:
    """The one element `selector` names; the test fails if there is none or several."""
    found = soup.select(selector)
    assert len(found) == 1, f"{len(found)} elements match {selector!r}"
    return found[0]


def text(element: Tag) -> str:
    return " ".join(element.get_text(" ").split())


def facts(soup: BeautifulSoup | Tag) -> dict[str, str]:
    """A page's fact boxes (`dl.facts`): each term and its value."""
    found: dict[str, str] = {}
    for item in soup.select("dl.facts > div"):
        term, value = item.find("dt"), item.find("dd")
        assert isinstance(term, Tag)
        assert isinstance(value, Tag)
        found[text(term)] = text(value)
    return found


def rows(soup: BeautifulSoup | Tag, selector: str = "table") -> list[list[str]]:
    """The body rows of a table, as the text of each cell."""
    table = one(soup, selector)
    return [[text(cell) for cell in row.find_all(["th", "td"])] for row in table.select("tbody tr")]


def form_fields(form: Tag) -> dict[str, str]:
    """The values a browser would send for a form's hidden and filled-in fields."""
    fields: dict[str, str] = {}
    for field in form.find_all(["input", "textarea", "select"]):
        name = field.get("name")
        if not name:
            continue
        if field.name == "textarea":
            fields[str(name)] = field.get_text()
        elif field.name == "select":
            chosen = field.find("option", selected=True) or field.find("option")
            fields[str(name)] = str(chosen.get("value", chosen.get_text())) if chosen else ""
        elif field.get("type") == "radio":
            if field.has_attr("checked"):
                fields[str(name)] = str(field.get("value", ""))
        else:
            fields[str(name)] = str(field.get("value", ""))
    return fields


def flash(soup: BeautifulSoup) -> tuple[str, str]:
    """The kind of the message an action left (applied, stored, rejected) and its text."""
    message = one(soup, "p.flash")
    kinds = [name for name in message.get_attribute_list("class") if name != "flash"]
    return kinds[0], text(message)


def sign_in(client: TestClient, token: str = TEST_TOKEN, next_path: str = "") -> Response:
    """Sign in as a browser does: read the form, fill the token in, post it."""
    form = one(page(client.get("/dashboard/sign-in", params={"next": next_path})), "form")
    fields = form_fields(form) | {"token": token}
    response: Response = client.post(str(form["action"]), data=fields)
    return response


def csrf_of(client: TestClient, path: str = "/dashboard") -> str:
    return str(one(page(client.get(path)), "header form input[name=csrf]")["value"])


def submit(client: TestClient, path: str, form_action: str, **values: str) -> Response:
    """Fill in and post the form on `path` whose action ends with `form_action`."""
    soup = page(client.get(path))
    forms = [
        form for form in soup.find_all("form") if str(form.get("action", "")).endswith(form_action)
    ]
    assert len(forms) == 1, f"{len(forms)} forms post to {form_action!r} on {path}"
    response: Response = client.post(str(forms[0]["action"]), data=form_fields(forms[0]) | values)
    return response


@pytest.fixture
def browser(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """A client that keeps cookies and does not follow redirects, signed out."""
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


@pytest.fixture
def signed_in(browser: TestClient) -> TestClient:
    response = sign_in(browser)
    assert response.status_code == 303, response.text
    return browser
