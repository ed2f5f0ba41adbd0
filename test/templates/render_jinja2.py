#!/usr/bin/env python3
"""Chat-template oracle: renders Jinja chat templates with Python's jinja2, configured exactly
as Hugging Face transformers configures it (transformers/utils/chat_template_utils.py,
`_compile_jinja_template`):

- ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,  (one exception: the list
  methods in LIST_MUTATORS are allowed, see there)
  extensions=[AssistantTracker, jinja2.ext.loopcontrols]); keep_trailing_newline stays False;
- filter `tojson` = json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False);
- globals `raise_exception` (raises TemplateError) and `strftime_now`.

Differences from transformers, for determinism: `strftime_now` formats a FIXED datetime given in
the request instead of datetime.now(). The `{% generation %}` tag renders its body unchanged (the
tracker is only active for assistant-token masks, which is never the case here).

Protocol: one JSON object on stdin:
  {"templates": {"key": "template source", ...},
   "cases": [{"template": "key", "context": {...}, "now": [Y, M, D, h, m, s]}, ...]}
Answer on stdout: a JSON array, one entry per case, in order:
  {"ok": true, "out": "rendered"} or {"ok": false, "error": "ExceptionType: message"}.
"""

import datetime
import json
import sys

import jinja2
import jinja2.ext
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment


class GenerationTag(Extension):
    """`{% generation %}...{% endgeneration %}`: renders the body as is (transformers'
    AssistantTracker with the tracker inactive)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(
            self.call_method("_generation_support"), [], [], body
        ).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


NOW = [datetime.datetime(2025, 3, 14, 9, 26, 53)]


def strftime_now(format):
    return NOW[0].strftime(format)


# Mutating list methods that are allowed (spool's evaluator allows them too; llama.cpp's engine
# does): Kimi K2's templates call `ns.ids.append(...)` and `ns.ids.pop(0)` on a list they made.
# Every other mutation (dict.update, list.sort, ...) stays forbidden as in transformers.
LIST_MUTATORS = {"append", "pop", "insert", "extend", "remove", "clear", "reverse"}


class ChatTemplateSandbox(ImmutableSandboxedEnvironment):
    """transformers' ImmutableSandboxedEnvironment, except for LIST_MUTATORS on lists."""

    def is_safe_attribute(self, obj, attr, value):
        if isinstance(obj, list) and attr in LIST_MUTATORS:
            return SandboxedEnvironment.is_safe_attribute(self, obj, attr, value)
        return super().is_safe_attribute(obj, attr, value)


def make_env():
    env = ChatTemplateSandbox(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    request = json.load(sys.stdin)
    env = make_env()
    compiled = {}
    results = []
    for case in request["cases"]:
        key = case["template"]
        try:
            if key not in compiled:
                try:
                    compiled[key] = env.from_string(request["templates"][key])
                except Exception as e:  # noqa: BLE001 - reported per case
                    compiled[key] = e
            tmpl = compiled[key]
            if isinstance(tmpl, Exception):
                raise tmpl
            now = case.get("now")
            if now:
                NOW[0] = datetime.datetime(*now)
            out = tmpl.render(**case["context"])
            results.append({"ok": True, "out": out})
        except Exception as e:  # noqa: BLE001 - the oracle reports every failure
            results.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
    json.dump(results, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
