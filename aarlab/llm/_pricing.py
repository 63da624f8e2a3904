"""What a call costs: a per-model price table in dollars per million tokens, overridable from config.

The shipped table is ``prices.yaml`` next to this module. Overrides come, last wins, from ``$AARLAB_PRICES``
(a YAML file), a ``prices_file`` option and a ``prices`` option given to ``get_model``. A model with no
price costs 0 and logs one warning per model name, so that a local server or a new model never stops a run.
"""

from __future__ import annotations

import logging
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from aarlab.errors import UserError
from aarlab.llm._base import Usage

log = logging.getLogger(__name__)

_DATE_SUFFIX = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2})$")
_warned: set[str] = set()


class Price(BaseModel):
    """Dollars per million tokens. ``cache_write`` and ``cache_read`` default to the input price."""

    input: float
    output: float
    cache_write: float | None = None
    cache_read: float | None = None

    def cost(self, usage: Usage) -> float:
        """The dollar cost of ``usage`` at these prices."""
        cache_write = self.input if self.cache_write is None else self.cache_write
        cache_read = self.input if self.cache_read is None else self.cache_read
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_write_tokens * cache_write
            + usage.cache_read_tokens * cache_read
        ) / 1e6


def _parse_table(raw: Any, source: str) -> dict[str, Price]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{source}: a price table maps 'provider:model' to {{input, output, ...}}")
    table = {}
    for name, entry in raw.items():
        try:
            table[str(name)] = entry if isinstance(entry, Price) else Price.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise UserError(f"{source}: price for {name!r}: {first['loc']} {first['msg']}") from None
    return table


def load_prices(path: str | Path) -> dict[str, Price]:
    """Read a YAML price table (same shape as the shipped ``prices.yaml``)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"price file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc})") from None
    return _parse_table(raw, str(path))


@cache
def default_prices() -> dict[str, Price]:
    """The shipped price table (read once)."""
    return load_prices(Path(__file__).with_name("prices.yaml"))


def price_table(
    prices: dict[str, Any] | None = None, prices_file: str | Path | None = None
) -> dict[str, Price]:
    """The shipped table with the overrides applied: ``$AARLAB_PRICES``, then ``prices_file``, then ``prices``."""
    table = dict(default_prices())
    if env := os.environ.get("AARLAB_PRICES"):
        table.update(load_prices(env))
    if prices_file:
        table.update(load_prices(prices_file))
    table.update(_parse_table(prices, "prices"))
    return table


def find_price(name: str, table: dict[str, Price] | None = None) -> Price | None:
    """The price of ``provider:model``: exact name first, then the name without a date suffix."""
    table = default_prices() if table is None else table
    if name in table:
        return table[name]
    undated = _DATE_SUFFIX.sub("", name)
    return table.get(undated)


def resolve_price(name: str, prices: Any = None, prices_file: str | Path | None = None) -> Price | None:
    """The price a model named ``provider:model`` is billed at, given a ``get_model`` ``prices`` option.

    ``prices`` may be one price for this model (``{"input": 3, "output": 15}``) or a table keyed by
    ``provider:model``. Unknown models log a warning once and get ``None`` (cost 0).
    """
    if isinstance(prices, Price):
        return prices
    if isinstance(prices, dict) and "input" in prices and "output" in prices:
        return _parse_table({name: prices}, "prices")[name]
    price = find_price(name, price_table(prices, prices_file))
    if price is None and name not in _warned:
        _warned.add(name)
        log.warning("no price known for %s: its cost counts as $0 (set prices= or $AARLAB_PRICES)", name)
    return price


def cost_of(usage: Usage, price: Price | None) -> float:
    return 0.0 if price is None else price.cost(usage)
