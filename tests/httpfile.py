"""A small runner of ``.http`` files (VS Code REST Client's and JetBrains HTTP Client's), for CI
(``tests/test_collection.py``).

No well-kept PyPI runner of these formats exists (the maintained ones, httpyac and JetBrains'
ijhttp, are npm / JVM tools), so this reads the part of the formats the collection uses:

- file variables ``@name = value`` (values may use other variables), overridden by the caller;
- ``###`` between requests (the rest of that line is the request's title);
- ``# @name NAME`` before a request: its answer is kept, and ``{{NAME.response.body.$.a.b}}``
  (a JSON path of dots and ``[i]``) in a later request is replaced by that value;
- the request line ``METHOD URL``, header lines, a blank line, the body;
- ``# @expect FIELD V1 V2 ...``: the answer's ``FIELD`` must be one of the values (compared as
  text); without one, ``statusCode`` must be 0. The answer must be HTTP 2xx JSON in any case;
- JetBrains response handlers ``> {% ... %}`` after a request, of the two forms the generator
  writes: ``client.assert([V1, V2].includes(response.body.FIELD), ...)`` (the expectation) and
  ``client.global.set("VAR", response.body.PATH)`` (a variable for later requests, ``{{VAR}}``).

An unresolved ``{{...}}`` is an error, never sent as text.
"""

from __future__ import annotations

import json
import re
import ssl
from dataclasses import dataclass, field
from typing import Any

import aiohttp

VAR = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")
BODY_REF = re.compile(r"(\w+)\.response\.body\.\$\.?(.*)")
PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}
JS_EXPECT = re.compile(r"client\.assert\((\[[^\]]*\])\.includes\(response\.body\.(\w+)\)")
JS_SET = re.compile(r'client\.global\.set\("(\w+)",\s*response\.body\.([\w.\[\]]+)\)')


def _handler(req: HttpRequest, script: str) -> None:
    for values, key in JS_EXPECT.findall(script):
        req.expect = (key, [v if isinstance(v, str) else json.dumps(v) for v in json.loads(values)])
    req.sets += JS_SET.findall(script)


@dataclass
class HttpRequest:
    title: str
    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str | None = None
    name: str | None = None
    expect: tuple[str, list[str]] = ("statusCode", ["0"])
    sets: list[tuple[str, str]] = field(default_factory=list)  # JetBrains: (variable, path in the answer)


@dataclass
class HttpFile:
    variables: dict[str, str]
    requests: list[HttpRequest]


def parse(text: str) -> HttpFile:
    variables: dict[str, str] = {}
    requests: list[HttpRequest] = []
    blocks: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines():
        if line.startswith("###"):
            blocks.append((line[3:].strip(), []))
        else:
            blocks[-1][1].append(line)
    for title, lines in blocks:
        req: HttpRequest | None = None
        name: str | None = None
        expect: tuple[str, list[str]] | None = None
        state = "pre"
        body: list[str] = []
        script: list[str] = []
        for line in lines:
            stripped = line.strip()
            if state == "script" or (state != "pre" and stripped.startswith("> {%")):
                script.append(stripped)
                state = "script"
                if stripped.endswith("%}"):
                    _handler(req, "\n".join(script))  # type: ignore[arg-type]
                    script, state = [], "body"
                continue
            if state == "pre":
                if not stripped:
                    continue
                if stripped.startswith(("#", "//")):
                    meta = stripped.lstrip("#/").strip()
                    if meta.startswith("@name "):
                        name = meta.split(None, 1)[1].strip()
                    elif meta.startswith("@expect "):
                        key, *values = meta.split()[1:]
                        expect = (key, values)
                    continue
                if m := re.fullmatch(r"@(\w+)\s*=\s*(.*)", stripped):
                    variables[m.group(1)] = m.group(2).strip()
                    continue
                method, url = stripped.split(None, 1)
                if method not in METHODS:
                    raise ValueError(f"not a request line: {stripped!r}")
                req = HttpRequest(title, method, url.split(" HTTP/")[0].strip(), name=name)
                if expect is not None:
                    req.expect = expect
                state = "headers"
            elif state == "headers":
                if not stripped:
                    state = "body"
                    continue
                k, v = stripped.split(":", 1)
                req.headers.append((k.strip(), v.strip()))  # type: ignore[union-attr]
            else:
                body.append(line)
        if req is not None:
            while body and not body[-1].strip():
                body.pop()
            req.body = "\n".join(body) if body else None
            requests.append(req)
    return HttpFile(variables, requests)


def _walk(value: Any, path: str) -> Any:
    for key, index in PATH_PART.findall(path):
        value = value[int(index)] if index else value[key]
    return value


def substitute(text: str, variables: dict[str, str], answers: dict[str, Any], depth: int = 0) -> str:
    def one(m: re.Match[str]) -> str:
        expr = m.group(1)
        if expr in variables:
            return substitute(variables[expr], variables, answers, depth + 1) if depth < 10 else variables[expr]
        ref = BODY_REF.fullmatch(expr)
        if ref and ref.group(1) in answers:
            try:
                value = _walk(answers[ref.group(1)], ref.group(2))
            except (KeyError, IndexError, TypeError):
                raise KeyError(f"{{{{{expr}}}}}: no such field in the answer of {ref.group(1)!r}") from None
            return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        raise KeyError(f"{{{{{expr}}}}} is not resolved (no such variable, or no earlier request of that @name)")

    return VAR.sub(one, text)


@dataclass
class Outcome:
    request: HttpRequest
    url: str
    status: int
    answer: Any
    ok: bool
    why: str = ""


async def run(text: str, http: aiohttp.ClientSession, overrides: dict[str, str] | None = None) -> list[Outcome]:
    """Send every request of the file ``text`` in order; stops at the first that fails its check."""
    f = parse(text)
    variables = {**f.variables, **(overrides or {})}
    answers: dict[str, Any] = {}
    out: list[Outcome] = []
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE  # the agent's loopback certificate (trusted on a workstation by `nhigw agent trust`)
    for req in f.requests:
        url = substitute(req.url, variables, answers)
        headers = {k: substitute(v, variables, answers) for k, v in req.headers}
        body = substitute(req.body, variables, answers).encode() if req.body is not None else None
        async with http.request(req.method, url, data=body, headers=headers, ssl=insecure if url.startswith("https:") else True) as r:
            text = await r.text()
            status = r.status
        try:
            answer = json.loads(text)
        except ValueError:
            answer = text
        key, values = req.expect
        why = ""
        if not 200 <= status < 300 or not isinstance(answer, dict):
            why = f"HTTP {status}, not a JSON object"
        elif str(answer.get(key)) not in values:
            why = f"{key} {answer.get(key)!r}, expected one of {values}"
        out.append(Outcome(req, url, status, answer, not why, why))
        if why:
            break
        if req.name:
            answers[req.name] = answer
        for var, fld in req.sets:
            value = _walk(answer, fld)
            variables[var] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return out
