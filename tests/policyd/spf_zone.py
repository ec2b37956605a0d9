"""A pyspf-shaped DNS lookup answered from an RFC 7208 test-suite `zonedata` map (for SPF tests).

Zone entries are one-key maps (`{TXT: "v=spf1 -all"}`, `{MX: [10, mx.example.com]}`) or the bare
string TIMEOUT (a query for a type the name does not list times out); a value TIMEOUT times out that type only.
As the suite asks of its drivers, SPF (type 99) records are also served as TXT when the name
has no TXT record of its own, and a value NONE stands for "no record".
"""

from __future__ import annotations

import ipaddress

import spf


def _values(v):
    return v if isinstance(v, list) else [v]


def zone_lookup(zonedata: dict):
    zone: dict[str, list] = {}
    for name, records in (zonedata or {}).items():
        entries, generated, has_txt = [], [], False
        for rec in records or []:
            if rec == "TIMEOUT":
                entries.append(("*", "TIMEOUT"))
                continue
            (rtype, value), = rec.items()
            rtype = rtype.upper()
            if rtype == "TXT":
                has_txt = True
            if value == "NONE":
                continue
            if rtype in ("TXT", "SPF") and value != "TIMEOUT":
                value = tuple(s.encode("utf-8") for s in _values(value))
                if rtype == "SPF":
                    generated.append(("TXT", value))
            elif rtype == "MX" and value != "TIMEOUT":
                value = (int(value[0]), str(value[1]))
            elif rtype == "AAAA" and value != "TIMEOUT":
                value = str(ipaddress.ip_address(value))
            entries.append((rtype, value))
        if not has_txt:
            entries.extend(generated)
        zone[str(name).lower().rstrip(".")] = entries

    def lookup(name: str, qtype: str, timeout: float) -> list:
        name = name.lower().rstrip(".")
        entries = zone.get(name)
        if entries is None:
            return []          # NXDOMAIN
        out = []
        timeout_marker = False
        for rtype, value in entries:
            if rtype == "*":
                timeout_marker = True
                continue
            if rtype == qtype or rtype == "CNAME":
                if value == "TIMEOUT":
                    raise spf.TempError(f"DNS timeout for {name}/{qtype}")
                out.append(((name, rtype), value))
        if timeout_marker and not out:
            # the name answers the types it lists; any other type times out
            raise spf.TempError(f"DNS timeout for {name}/{qtype}")
        return out
    return lookup
