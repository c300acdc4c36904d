"""Tasks baked into a derived SPANE image (see Dockerfile and README beside this file).

``spane worker --pool function --import mytasks`` imports this module from the
image's working directory; each ``@spane.task`` registers itself under its name, the
name a workflow's ``function:`` field uses.
"""

from __future__ import annotations

import spane


@spane.task("greetings.hello")
async def hello(data: dict[str, str]) -> dict[str, str]:
    """Greets ``data["name"]``."""
    return {"greeting": f"Hello, {data.get('name', 'world')}!"}


@spane.task("greetings.shout")
def shout(data: dict[str, str]) -> dict[str, str]:
    """A plain ``def`` runs in the worker's thread pool."""
    return {"greeting": data["greeting"].upper()}
