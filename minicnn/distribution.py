"""The name minicnn is installed under, and the install commands every message takes from it.

An unrelated project publishes a package called `minicnn` on the Python Package Index, so asking
pip for `minicnn` would install that project. minicnn's distribution is `minicnn-framework`;
its import name (`import minicnn`), its command (`minicnn`) and its plugins' entry-point group
(`minicnn`) keep the short name. A message that says what to install builds the command here, so
that it is right both from a source checkout and for the published package.
"""

NAME = "minicnn-framework"


def install_command(extra: str) -> str:
    """How to install minicnn with an optional dependency group ("cuda", "plot"), e.g.
    '`pip install "minicnn-framework[plot]"` (from a source checkout: `pip install -e ".[plot]"`)'."""
    return f'`pip install "{NAME}[{extra}]"` (from a source checkout: `pip install -e ".[{extra}]"`)'
