"""Write ``companies.csv``: 300 made-up companies that arrived over five days.

The table is generated rather than collected so that it is free to ship and the same on
every machine: ``python example_project/data/make_companies.py`` rewrites it byte for byte
(a seeded generator, no network). The names, domains and numbers are invented; any
resemblance to a real company is a coincidence.

A few companies are in stealth (industry ``Stealth``): the example's emulated AI Tutor
workflow fails on them, so the enriched table has some failed rows for the checks and the
summary to report.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

SEED = 20261116
FIRST_DAY = dt.date(2026, 11, 16)
DAYS = 5
ROWS_PER_DAY = 60
STEALTH_ROWS = 4

# country: (top-level domain, cities)
COUNTRIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "Germany": (".de", ("Berlin", "Munich", "Hamburg", "Cologne")),
    "United Kingdom": (".co.uk", ("London", "Manchester", "Edinburgh", "Bristol")),
    "France": (".fr", ("Paris", "Lyon", "Toulouse")),
    "Netherlands": (".nl", ("Amsterdam", "Rotterdam", "Utrecht")),
    "Sweden": (".se", ("Stockholm", "Gothenburg", "Malmö")),
    "Spain": (".es", ("Madrid", "Barcelona", "Valencia")),
    "United States": (".com", ("New York", "Austin", "San Francisco", "Chicago", "Boston")),
    "Canada": (".ca", ("Toronto", "Vancouver", "Montréal")),
    "India": (".in", ("Bengaluru", "Pune", "Hyderabad")),
    "Japan": (".jp", ("Tokyo", "Osaka", "Fukuoka")),
    "Brazil": (".com.br", ("São Paulo", "Rio de Janeiro", "Curitiba")),
    "Australia": (".com.au", ("Sydney", "Melbourne", "Brisbane")),
}
COUNTRY_WEIGHTS = (14, 12, 9, 7, 5, 6, 20, 5, 8, 5, 4, 5)

# industry: (name endings, weight, earliest founding year)
INDUSTRIES: dict[str, tuple[tuple[str, ...], int, int]] = {
    "Software": (("Analytics", "Cloud", "Labs", "Systems", "Data", "Software"), 20, 1985),
    "Fintech": (("Pay", "Ledger", "Capital", "Finance"), 10, 2000),
    "Food & Beverage": (("Foods", "Kitchen", "Brewing", "Farms", "Bakery"), 9, 1950),
    "Logistics": (("Logistics", "Freight", "Cargo", "Shipping"), 8, 1960),
    "Renewable Energy": (("Solar", "Wind", "Energy", "Power"), 8, 1995),
    "Healthcare": (("Health", "Diagnostics", "Care", "Clinics"), 10, 1970),
    "Retail": (("Goods", "Market", "Outfitters", "Supply"), 8, 1955),
    "Manufacturing": (("Robotics", "Industries", "Works", "Machines"), 10, 1950),
    "Biotech": (("Bio", "Therapeutics", "Genomics"), 7, 1990),
    "Media": (("Media", "Studios", "Publishing"), 6, 1975),
}

WORDS = (
    "Acme",
    "Alder",
    "Aurora",
    "Beacon",
    "Birch",
    "Blue",
    "Harbor",
    "Canyon",
    "Cedar",
    "Cobalt",
    "Delta",
    "Driftwood",
    "Dune",
    "Echo",
    "Ember",
    "Evergreen",
    "Falcon",
    "Fjord",
    "Flint",
    "Glacier",
    "Granite",
    "Grove",
    "Halcyon",
    "Harbor",
    "Helios",
    "Indigo",
    "Iris",
    "Ivory",
    "Jade",
    "Jasper",
    "Juniper",
    "Keel",
    "Kestrel",
    "Kite",
    "Larch",
    "Lumen",
    "Meridian",
    "Mosaic",
    "Nimbus",
    "Northwind",
    "Oakridge",
    "Orchid",
    "Pioneer",
    "Prism",
    "Quartz",
    "Quill",
    "Raven",
    "Redwood",
    "Sierra",
    "Summit",
    "Terra",
    "Tidal",
    "Unity",
    "Vale",
    "Vertex",
    "Willow",
    "Wren",
    "Yarrow",
    "Zenith",
    "Zephyr",
)


def _slug(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def companies(seed: int = SEED) -> list[dict[str, object]]:
    """The rows, in order of arrival."""
    rng = random.Random(seed)
    names: set[str] = set()
    stealth_at = set(rng.sample(range(DAYS * ROWS_PER_DAY), STEALTH_ROWS))
    rows: list[dict[str, object]] = []
    for i in range(DAYS * ROWS_PER_DAY):
        country = rng.choices(list(COUNTRIES), weights=COUNTRY_WEIGHTS)[0]
        tld, cities = COUNTRIES[country]
        if i in stealth_at:
            industry, earliest = "Stealth", 2024
            name = f"Project {rng.choice(WORDS)}"
            tld = ".io"
        else:
            industry = rng.choices(list(INDUSTRIES), weights=[v[1] for v in INDUSTRIES.values()])[0]
            endings, _, earliest = INDUSTRIES[industry]
            name = f"{rng.choice(WORDS)} {rng.choice(endings)}"
        while name in names:  # same words twice: tell them apart as people do
            name = f"{name} {rng.choice(cities)}"
        names.add(name)
        founded = min(2025, earliest + int(rng.expovariate(1 / 12)))
        rows.append(
            {
                "company_id": f"C{i + 1:04d}",
                "name": name,
                "domain": _slug(name) + tld,
                "country": country,
                "city": rng.choice(cities),
                "industry": industry,
                "founded": founded,
                "employees": max(2, int(rng.lognormvariate(3.6, 1.3))),
                "arrived_on": (FIRST_DAY + dt.timedelta(days=i // ROWS_PER_DAY)).isoformat(),
            }
        )
    return rows


def main() -> None:
    rows = companies()
    path = Path(__file__).with_name("companies.csv")
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
