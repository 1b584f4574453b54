"""`--model-arg KEY=VALUE`: model options (a width, a dropout) from the command line.

`train`, `summary` and `check` take the option any number of times and hand the result to the
model's factory as keyword arguments (`minicnn train resnet20 --model-arg width=32` builds
`create_model("resnet20", width=32)`). VALUE is read as JSON where it parses (`32`, `0.5`, `true`,
`null`, `[1, 2]`), the Python spellings `True`, `False` and `None` included, and as a string
otherwise, so `--model-arg activation=relu` needs no quotes.
"""

from __future__ import annotations

import json

import typer

PYTHON_WORDS = {"True": True, "False": False, "None": None}

HELP = "A model option KEY=VALUE for the model's factory (repeatable; VALUE read as JSON, else as text)."


def option():
    """The typer option, one definition for every command that takes it."""
    return typer.Option([], "--model-arg", metavar="KEY=VALUE", help=HELP)


def parse_model_args(values: list[str]) -> dict:
    """["width=32", "name=a"] -> {"width": 32, "name": "a"}; raises ValueError naming the bad one."""
    options = {}
    for text in values or []:
        key, equals, value = text.partition("=")
        key = key.strip()
        if not equals or not key.isidentifier():
            raise ValueError(f"--model-arg must be KEY=VALUE with KEY a keyword argument name, got {text!r} "
                             "(e.g. --model-arg width=32)")
        if key in options:
            raise ValueError(f"--model-arg {key} is given twice ({options[key]!r} and {value!r}): give it once")
        options[key] = _value(value.strip())
    return options


def _value(text: str):
    if text in PYTHON_WORDS:
        return PYTHON_WORDS[text]
    try:
        return json.loads(text)
    except ValueError:
        return text
