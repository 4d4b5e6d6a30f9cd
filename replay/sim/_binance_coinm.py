"""What makes the synthetic COIN-M market (``binance-coinm``) differ from USDⓈ-M: contracts of
``contract_size`` USD named ``<PAIR>_PERP`` / ``<PAIR>_<YYMMDD>``, base-asset volumes, and the
markPrice funding fields. Everything else is rendered by the USDⓈ-M code paths with ``ps``."""

from __future__ import annotations

from replay.sim._binance_state import COINM_VALUE_DECIMALS, SymState
from replay.sim._types import SymbolSpec

FUNDING_PERIOD_MS = 28_800_000


def pair_of(symbol: str) -> str:
    """``BTCUSD_PERP`` / ``BTCUSD_251226`` -> ``BTCUSD``."""
    return symbol.partition("_")[0]


def base_value(spec: SymbolSpec, qty: int, price: int) -> int:
    """The base-asset amount (units of 1e-8) of ``qty`` contracts at ``price``."""
    size = spec.contract_size or 100
    scale = 10 ** (COINM_VALUE_DECIMALS + spec.price_decimals - spec.qty_decimals)
    value: int = qty * size * scale // max(price, 1)
    return value


def mark_price(st: SymState, t: int, funding_fields: bool) -> str:
    """COIN-M markPriceUpdate: no `ap`; perpetuals carry funding `r`/`T`, delivery contracts
    ``"r":""`` and ``"T":0`` (neither with ``funding_fields=False``)."""
    p = st.fp(st.last_price)
    head = f'{{"e":"markPriceUpdate","E":{t},"s":"{st.spec.symbol}","p":"{p}","P":"{p}","i":"{p}"'
    if not funding_fields:
        return head + "}"
    if st.spec.symbol.endswith("_PERP"):
        nxt = (t // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS
        return f'{head},"r":"0.00010000","T":{nxt}}}'
    return f'{head},"r":"","T":0}}'
