"""Message templates of the WhatsApp Business Account, as the Cloud API holds and checks them.

A business may start a conversation only with an approved template: a named, per-language
text with variables, reviewed by Meta. This module is the account's template library and
the checks a ``type: template`` message goes through before it is accepted:

- ``GET /{waba-id}/message_templates`` lists them (``name`` matches a part of the name,
  ``status``, ``language`` and ``category`` filter; ``fields`` selects; cursor paging,
  25 a page by default);
- ``POST /{waba-id}/message_templates`` creates one: ``name`` (lower-case letters, digits
  and underscores, at most 512), ``language`` (a locale such as ``pt_BR``), ``category``
  (``MARKETING``, ``UTILITY`` or ``AUTHENTICATION``), ``parameter_format`` (``POSITIONAL``
  ``{{1}}`` … or ``NAMED`` ``{{first_name}}``) and ``components`` with one ``BODY`` (at most
  1024 characters; variables need an ``example``). A second template with the same name
  and language is refused (subcode 2388024). The sandbox reviews at once: a valid template
  is ``APPROVED``;
- a message naming a template that does not exist in that language, or is not approved
  (``PENDING``, ``REJECTED``), fails with ``132001`` (HTTP 404); a paused one ``132015``; a
  disabled one ``132016``; body parameters that are not as many as the template's variables
  (or, for a named template, not the same names) ``132000``; a parameter with a new line,
  a tab or more than four spaces in a row ``132018``; a body longer than 1024 characters
  once filled in ``132005``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from omnicanal.channels.meta import GraphError, invalid_parameter

CATEGORIES = ("MARKETING", "UTILITY", "AUTHENTICATION")
STATUSES = ("APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "IN_APPEAL")
PARAMETER_FORMATS = ("POSITIONAL", "NAMED")
MAX_NAME_LENGTH = 512
MAX_BODY_LENGTH = 1024
_NAME = re.compile(r"[a-z0-9_]+")
_LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")
_VARIABLE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_NAMED_VARIABLE = re.compile(r"[a-z][a-z0-9_]*")
_BAD_PARAMETER_TEXT = re.compile(r"[\n\t]| {5,}")


class TemplateError(GraphError):
    """A template error with the Cloud API's ``error_data`` (``messaging_product``, ``details``)."""

    def __init__(self, message: str, *, code: int, details: str, status: int = 400) -> None:
        super().__init__(message, code=code, status=status)
        self.details = details

    def body(self) -> dict[str, Any]:
        body = super().body()
        error = body["error"]
        trace = error.pop("fbtrace_id")
        error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        error["fbtrace_id"] = trace
        return body


class CreationError(GraphError):
    """A template management error: code 100 with a subcode and the text Business
    Manager shows the user (``error_user_title``, ``error_user_msg``)."""

    def __init__(self, subcode: int, title: str, user_msg: str) -> None:
        super().__init__("Invalid parameter", code=100, subcode=subcode, is_transient=False)
        self.title, self.user_msg = title, user_msg

    def body(self) -> dict[str, Any]:
        body = super().body()
        error = body["error"]
        trace = error.pop("fbtrace_id")
        error["error_user_title"], error["error_user_msg"] = self.title, self.user_msg
        error["fbtrace_id"] = trace
        return body


def variables(text: str) -> list[str]:
    """The variables of a body text, in order of appearance (``["1", "2"]`` or names)."""
    return [match.group(1) for match in _VARIABLE.finditer(text)]


@dataclass
class Template:
    id: str
    name: str
    language: str
    category: str
    body: str
    parameter_format: str = "POSITIONAL"
    status: str = "APPROVED"
    examples: list[str] = field(default_factory=list)

    @property
    def variables(self) -> list[str]:
        return variables(self.body)

    def as_graph(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "BODY", "text": self.body}
        if self.examples:
            if self.parameter_format == "NAMED":
                body["example"] = {
                    "body_text_named_params": [
                        {"param_name": name, "example": example}
                        for name, example in zip(self.variables, self.examples, strict=False)
                    ]
                }
            else:
                body["example"] = {"body_text": [self.examples]}
        return {
            "name": self.name,
            "parameter_format": self.parameter_format,
            "components": [body],
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "id": self.id,
        }


#: The sandbox account's templates: Meta's sample every account starts with, the campaigns
#: the demo sends, and what a real library also holds (one template pending review, one
#: rejected, one paused for low quality).
SANDBOX_TEMPLATES = (
    Template(
        "1192837465500001",
        "hello_world",
        "en_US",
        "UTILITY",
        "Welcome and congratulations!! This message demonstrates your ability to send a "
        "WhatsApp message notification from the Cloud API, hosted by Meta. Thank you for "
        "taking the time to test with us.",
    ),
    Template(
        "1192837465501234",
        "carrinho_abandonado",
        "pt_BR",
        "MARKETING",
        "Oi, {{first_name}}! Você deixou R$ {{cart_total}} em produtos no carrinho. "
        "Eles ainda estão reservados para você: {{checkout_url}}",
        "NAMED",
        examples=["Ana", "189,90", "https://loja.example/checkouts/abc/recover"],
    ),
    Template(
        "1192837465505678",
        "abandoned_cart",
        "en_US",
        "MARKETING",
        "Hi {{1}}, you left {{2}} in your cart. Complete your order: {{3}}",
        examples=["Ann", "$39.90", "https://shop.example/checkouts/abc/recover"],
    ),
    Template(
        "1192837465509012",
        "pesquisa_pos_compra",
        "pt_BR",
        "UTILITY",
        "Olá {{1}}, seu pedido {{2}} chegou bem? Responda de 1 a 5.",
        examples=["Ana", "#1043"],
    ),
    Template(
        "1192837465503456",
        "black_friday_2026",
        "pt_BR",
        "MARKETING",
        "{{1}}, a Black Friday começou: até 50% off em tudo.",
        status="PENDING",
        examples=["Ana"],
    ),
    Template(
        "1192837465507890",
        "ultima_chance",
        "pt_BR",
        "MARKETING",
        "ÚLTIMA CHANCE {{1}}!!! Compre agora!!!",
        status="REJECTED",
        examples=["Ana"],
    ),
    Template(
        "1192837465502468",
        "volte_sempre",
        "pt_BR",
        "MARKETING",
        "Sentimos sua falta, {{1}}! Use o cupom VOLTA10.",
        status="PAUSED",
        examples=["Ana"],
    ),
)


class TemplateLibrary:
    """The account's templates; thread-safe (the sandbox serves requests on threads)."""

    def __init__(self, templates: tuple[Template, ...] = SANDBOX_TEMPLATES) -> None:
        self._lock = threading.Lock()
        self._templates: list[Template] = [Template(**vars(t)) for t in templates]
        self._next_id = 1192837465600000

    def all(self) -> list[Template]:
        with self._lock:
            return list(self._templates)

    def set_status(self, name: str, language: str, status: str) -> Template:
        """Meta's review (or a quality pause) changes a template's status."""
        if status not in STATUSES:
            raise ValueError(f"a template status is one of {STATUSES}, not {status!r}")
        with self._lock:
            for template in self._templates:
                if template.name == name and template.language == language:
                    template.status = status
                    return template
        raise KeyError((name, language))

    def listing(
        self,
        *,
        name: str | None = None,
        status: str | None = None,
        language: str | None = None,
        category: str | None = None,
    ) -> list[dict[str, Any]]:
        found = []
        for template in self.all():
            if name and name not in template.name:
                continue
            if status and template.status != status.upper():
                continue
            if language and template.language != language:
                continue
            if category and template.category != category.upper():
                continue
            found.append(template.as_graph())
        return found

    def create(self, body: Any) -> dict[str, Any]:
        """Validate a creation request as the Graph API does; the sandbox approves it."""
        if not isinstance(body, dict):
            raise invalid_parameter("The request body must be a JSON object.")
        for required in ("name", "language", "category", "components"):
            if body.get(required) in (None, "", []):
                raise invalid_parameter(f"The parameter {required} is required.")
        name, language = body["name"], body["language"]
        if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
            raise invalid_parameter(
                "Param name must contain only lowercase characters, numbers and underscores "
                f"(at most {MAX_NAME_LENGTH})."
            )
        if not isinstance(language, str) or not _LANGUAGE.fullmatch(language):
            raise invalid_parameter(
                f"Param language must be a locale such as pt_BR, got {language!r}."
            )
        category = str(body["category"]).upper()
        if category not in CATEGORIES:
            raise invalid_parameter(
                f"Param category must be one of {{{', '.join(CATEGORIES)}}} - got "
                f'"{body["category"]}".'
            )
        parameter_format = str(body.get("parameter_format") or "POSITIONAL").upper()
        if parameter_format not in PARAMETER_FORMATS:
            raise invalid_parameter(
                f"Param parameter_format must be one of {{{', '.join(PARAMETER_FORMATS)}}}."
            )
        components = body["components"]
        if not isinstance(components, list):
            raise invalid_parameter("Param components must be an array.")
        bodies = [c for c in components if isinstance(c, dict) and c.get("type") == "BODY"]
        if len(bodies) != 1:
            raise CreationError(
                2388043,
                "Message template components missing expected field(s)",
                "A template needs exactly one component of type BODY.",
            )
        text = bodies[0].get("text")
        if not isinstance(text, str) or not text.strip():
            raise invalid_parameter("Param components[BODY].text must be a non-empty string.")
        if len(text) > MAX_BODY_LENGTH:
            raise CreationError(
                2388040,
                "Character limit exceeded",
                f"The body of a template is at most {MAX_BODY_LENGTH} characters.",
            )
        found = variables(text)
        examples: list[str] = []
        if found:
            _check_variables(found, parameter_format)
            examples = _examples(bodies[0].get("example"), found, parameter_format)
        with self._lock:
            if any(t.name == name and t.language == language for t in self._templates):
                raise CreationError(
                    2388024,
                    "Content in this language already exists",
                    f"A template named {name} already has content in {language}.",
                )
            self._next_id += 1
            template = Template(
                str(self._next_id),
                name,
                language,
                category,
                text,
                parameter_format,
                "APPROVED",
                examples,
            )
            self._templates.append(template)
        return {"id": template.id, "status": template.status, "category": template.category}

    def check_send(self, content: dict[str, Any]) -> Template:
        """The template a ``type: template`` message names, if it may be sent as given;
        else the Cloud API's error."""
        name = content.get("name")
        language = content.get("language")
        code = language.get("code") if isinstance(language, dict) else None
        if not code:
            raise TemplateError(
                "(#131008) Required parameter is missing",
                code=131008,
                details="The parameter template['language']['code'] is required.",
            )
        match = next((t for t in self.all() if t.name == name and t.language == code), None)
        if match is None or match.status in ("PENDING", "REJECTED", "IN_APPEAL"):
            raise TemplateError(
                "(#132001) Template name does not exist in the translation",
                code=132001,
                details=f"template name ({name}) does not exist in {code}",
                status=404,
            )
        if match.status == "PAUSED":
            raise TemplateError(
                "(#132015) Template is Paused",
                code=132015,
                details=f"Template {name} ({code}) is paused because of low quality.",
            )
        if match.status == "DISABLED":
            raise TemplateError(
                "(#132016) Template is disabled",
                code=132016,
                details=f"Template {name} ({code}) has been disabled because of low quality.",
            )
        parameters = _body_parameters(content.get("components"))
        expected = match.variables
        if len(parameters) != len(expected):
            raise TemplateError(
                "(#132000) Number of parameters does not match the expected number of params",
                code=132000,
                details=f"body: number of localizable_params ({len(parameters)}) does not "
                f"match the expected number of params ({len(expected)})",
            )
        if match.parameter_format == "NAMED":
            names = [p.get("parameter_name") for p in parameters]
            if sorted(map(str, names)) != sorted(expected):
                raise TemplateError(
                    "(#132000) Number of parameters does not match the expected number of params",
                    code=132000,
                    details=f"body: parameter names {names} do not match the template's {expected}",
                )
        values = {}
        for index, parameter in enumerate(parameters):
            kind = parameter.get("type")
            if kind != "text":
                raise TemplateError(
                    "(#132012) Parameter format does not match format in the created template",
                    code=132012,
                    details=f"body: parameter {index + 1} must be of type text",
                )
            text = parameter.get("text")
            if not isinstance(text, str) or not text.strip():
                raise TemplateError(
                    "(#131008) Required parameter is missing",
                    code=131008,
                    details=f"body: parameter {index + 1} has no text.",
                )
            if _BAD_PARAMETER_TEXT.search(text):
                raise TemplateError(
                    "(#132018) There was an issue with the parameters in your template.",
                    code=132018,
                    details="Param text cannot have new-line/tab characters or more than "
                    "4 consecutive spaces",
                )
            key = parameter.get("parameter_name") if match.parameter_format == "NAMED" else None
            values[key or expected[index]] = text
        filled = _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), match.body)
        if len(filled) > MAX_BODY_LENGTH:
            raise TemplateError(
                "(#132005) Translated text too long",
                code=132005,
                details=f"The body is {len(filled)} characters once its parameters are "
                f"filled in; at most {MAX_BODY_LENGTH}.",
            )
        return match


def _check_variables(found: list[str], parameter_format: str) -> None:
    if parameter_format == "POSITIONAL":
        if found != [str(n) for n in range(1, len(found) + 1)]:
            raise CreationError(
                2388299,
                "Variables must be sequential",
                "Positional variables are {{1}}, {{2}} … in order, without gaps.",
            )
    elif not all(_NAMED_VARIABLE.fullmatch(v) for v in found) or len(set(found)) != len(found):
        raise CreationError(
            2388299,
            "Invalid variable names",
            "Named variables are distinct lower-case letters, digits and underscores.",
        )


def _examples(example: Any, found: list[str], parameter_format: str) -> list[str]:
    """The example values a template with variables must carry (2388043 without them)."""
    missing = CreationError(
        2388043,
        "Message template components missing expected field(s)",
        "component of type BODY is missing expected field(s) (example)",
    )
    if not isinstance(example, dict):
        raise missing
    if parameter_format == "NAMED":
        named = example.get("body_text_named_params")
        if not isinstance(named, list):
            raise missing
        by_name = {p.get("param_name"): p.get("example") for p in named if isinstance(p, dict)}
        if set(by_name) != set(found):
            raise missing
        return [str(by_name[name]) for name in found]
    rows = example.get("body_text")
    if not isinstance(rows, list) or not rows or not isinstance(rows[0], list):
        raise missing
    if len(rows[0]) != len(found):
        raise missing
    return [str(v) for v in rows[0]]


def _body_parameters(components: Any) -> list[dict[str, Any]]:
    if components is None:
        return []
    if not isinstance(components, list):
        raise TemplateError(
            "(#100) Invalid parameter",
            code=100,
            details="Param template['components'] must be an array.",
        )
    parameters: list[dict[str, Any]] = []
    for component in components:
        if not isinstance(component, dict):
            raise TemplateError(
                "(#100) Invalid parameter",
                code=100,
                details="Each of template['components'] must be a JSON object.",
            )
        if str(component.get("type", "")).lower() == "body":
            for parameter in component.get("parameters") or []:
                parameters.append(parameter if isinstance(parameter, dict) else {})
    return parameters
