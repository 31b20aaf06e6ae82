"""Network and identity infrastructure: ASNs, IPs, user agents, TLS and payment fingerprints, emails.

Benign resellers and attack proxy networks draw from the *same* proxy/cloud ASNs on purpose:
"traffic from a hosting ASN" must not be enough to convict anyone. Addresses are synthetic
(plausible prefixes per ASN); nothing ever contacts them.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import numpy as np
import xxhash

# (asn, country, /16 prefixes)
ISP: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (7922, "US", ("73.12", "98.207", "24.60")), (7018, "US", ("99.33", "107.77")), (701, "US", ("71.105", "108.28")),
    (20115, "US", ("75.140", "97.93")), (812, "CA", ("99.240", "174.112")), (577, "CA", ("70.24", "184.147")),
    (2856, "GB", ("81.129", "86.171")), (5089, "GB", ("82.20", "86.30")), (3320, "DE", ("79.192", "91.61")),
    (3215, "FR", ("90.12", "86.242")), (3352, "ES", ("81.34", "83.45")), (3269, "IT", ("79.27", "93.45")),
    (1136, "NL", ("84.80", "145.53")), (4713, "JP", ("60.34", "114.150")), (2516, "JP", ("106.128", "111.86")),
    (4766, "KR", ("121.128", "175.192")), (1221, "AU", ("110.142", "124.168")), (55836, "IN", ("49.36", "157.32")),
    (24560, "IN", ("122.161", "182.64")), (26599, "BR", ("177.94", "187.10")), (3462, "TW", ("114.32", "118.160")),
    (4134, "CN", ("114.222", "183.14")), (4837, "CN", ("123.112", "221.216")), (9121, "TR", ("78.180", "88.230")),
    (7552, "VN", ("27.64", "171.224")), (9299, "PH", ("112.198", "124.6")), (12389, "RU", ("95.24", "178.70")),
    (8551, "IL", ("79.176", "109.64")), (7473, "SG", ("116.14", "119.74")),
)
CLOUD: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (16509, "US", ("3.80", "18.204", "52.14", "54.210")), (15169, "US", ("34.102", "35.199")),
    (396982, "US", ("34.105", "35.188")), (8075, "US", ("20.42", "40.112", "52.160")),
    (14061, "SG", ("104.131", "159.89", "167.71")), (24940, "DE", ("65.108", "88.198", "135.181")),
    (16276, "FR", ("51.38", "54.36", "145.239")), (31898, "US", ("129.146", "150.136")),
    (63949, "US", ("45.79", "172.105")), (13335, "US", ("104.28", "172.69")),
)
# Hosting and residential-proxy networks: where hydra clusters *and* legitimate resellers live.
PROXY: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (9009, "RO", ("89.187", "193.27")), (212238, "GB", ("185.107", "149.102")), (62240, "GB", ("185.245", "45.87")),
    (51167, "DE", ("161.97", "173.212")), (36352, "US", ("23.94", "192.227")), (53667, "US", ("198.98", "209.141")),
    (45102, "SG", ("47.74", "8.219")), (132203, "HK", ("43.128", "101.32")), (136907, "HK", ("94.74", "159.138")),
    (20473, "US", ("45.32", "149.28")), (60068, "GB", ("185.59", "195.181")), (174, "US", ("38.91", "154.16")),
)
EDU: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (11537, "US", ("192.5", "198.32")), (2152, "US", ("128.32", "169.229")), (786, "GB", ("129.67", "131.111")),
    (680, "DE", ("129.187", "141.20")), (1103, "NL", ("145.97", "130.89")), (2200, "FR", ("129.175", "193.48")),
    (4538, "CN", ("166.111", "202.120")), (7575, "AU", ("129.94", "130.56")), (2907, "JP", ("133.11", "130.54")),
)

TZ = {"US": -6.0, "CA": -5.0, "GB": 0.0, "DE": 1.0, "FR": 1.0, "ES": 1.0, "IT": 1.0, "NL": 1.0, "JP": 9.0,
      "KR": 9.0, "AU": 10.0, "IN": 5.5, "BR": -3.0, "TW": 8.0, "CN": 8.0, "TR": 3.0, "VN": 7.0, "PH": 8.0,
      "RU": 3.0, "IL": 2.0, "SG": 8.0, "HK": 8.0, "RO": 2.0}
MAIL_BY_COUNTRY = {"CN": ("qq.com", "163.com", "126.com"), "KR": ("naver.com", "daum.net"),
                   "RU": ("yandex.ru", "mail.ru"), "DE": ("gmx.de", "web.de", "gmail.com"),
                   "JP": ("yahoo.co.jp", "gmail.com"), "FR": ("orange.fr", "gmail.com")}
MAINSTREAM_MAIL = ("gmail.com", "gmail.com", "gmail.com", "outlook.com", "hotmail.com", "yahoo.com", "icloud.com",
                   "proton.me")

SDK_UA = ("OpenAI/Python 1.54.4", "OpenAI/Python 1.59.7", "OpenAI/Python 1.61.0", "AsyncOpenAI/Python 1.59.7",
          "OpenAI/JS 4.77.0", "OpenAI/JS 4.85.1", "python-httpx/0.27.2", "python-requests/2.32.3", "axios/1.7.9",
          "Go-http-client/2.0", "okhttp/4.12.0", "LangChain/0.3.14 (python)", "litellm/1.59.8", "curl/8.5.0")
APP_UA = ("Chatbox/1.9.5", "TypingMind/2025.1", "LibreChat/0.7.6", "Raycast/1.89.0", "OpenAI/Python 1.59.7",
          "python-requests/2.32.3", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/132.0")
IDE_UA = ("Cursor/0.45.11", "cline/3.2.0", "continue/0.9.250", "aider/0.72.1", "Zed/0.170.4")
RESELLER_UA = ("new-api/0.4.8", "one-api/0.6.10", "litellm/1.59.8", "Go-http-client/2.0")


def tls_fp(family: str) -> str:
    """A JA4-shaped fingerprint that is a stable function of the client stack it stands for."""
    h = xxhash.xxh3_128_hexdigest(family.encode())
    return f"t13d{15 + int(h[0], 16) % 6:02d}{10 + int(h[1], 16) % 8:02d}h2_{h[2:14]}_{h[14:26]}"


def ua_tls(ua: str) -> str:
    """Clients built on the same stack share a TLS fingerprint, whatever their UA string says."""
    return tls_fp(ua.split("/")[0].split(" ")[0])


@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: str
    asn: int
    country: str


def endpoints(rng: np.random.Generator, table: tuple, n: int, subnets: int = 0) -> list[Endpoint]:
    """``n`` addresses from ``table``; with ``subnets`` > 0 they are packed into that many /24s."""
    rows = [table[i] for i in rng.integers(0, len(table), max(subnets, 1) if subnets else n)]
    bases = [f"{row[2][int(rng.integers(len(row[2])))]}.{int(rng.integers(0, 256))}" for row in rows]
    out = []
    for i in range(n):
        j = i % len(rows)
        out.append(Endpoint(f"{bases[j]}.{int(rng.integers(2, 255))}", rows[j][0], rows[j][1]))
    return out


def clients(where: list[Endpoint], uas: tuple[str, ...], fps: tuple[str, ...] | None = None) -> list[dict]:
    """Every (address, client stack) pair as a ready ``client`` object; ``fps`` pairs with ``uas``."""
    fps = fps or tuple(ua_tls(ua) for ua in uas)
    return [{"ip": e.ip, "user_agent": ua, "asn": e.asn, "country": e.country, "tls_fp": fp}
            for e in where for ua, fp in zip(uas, fps, strict=True)]


class Network:
    """Where an account's requests come from: a few home addresses, optionally rotating over a shared
    pool. Client objects are built once and shared (they are only ever serialised)."""

    __slots__ = ("home", "rotate", "_home", "_pool")

    def __init__(self, home: list[Endpoint], uas: tuple[str, ...], pool: list[dict] | None = None,
                 rotate: float = 0.0, fps: tuple[str, ...] | None = None) -> None:
        self.home = home
        self.rotate = rotate
        self._home = clients(home, uas, fps)
        self._pool = pool or self._home

    def client(self, r: random.Random) -> dict:
        spot = self._pool if self.rotate and r.random() < self.rotate else self._home
        return spot[int(r.random() * len(spot))]


def hexid(rng: np.random.Generator, n: int = 16) -> str:
    return f"{int(rng.integers(0, 2**63)):016x}"[:n]


# Common card BINs seen on benign accounts, and the prepaid/virtual ones a few benign users share with actors.
COMMON_BINS = tuple(f"{b:06x}" for b in range(0x4A1F00, 0x4A1F00 + 180 * 37, 37))
PREPAID_BINS = ("53d2a1", "5b7c0e", "4f66d9", "52e4b7", "4c0f1a", "5e9a23")


def payment_fp(rng: np.random.Generator, bins: tuple[str, ...] = COMMON_BINS) -> str:
    """``pfp_`` + issuer part + card part: actors reuse issuers (the account record names it, ``issuer_of``)."""
    return f"pfp_{bins[int(rng.integers(len(bins)))]}{hexid(rng, 10)}"


def issuer_of(payment: str | None) -> str | None:
    """The issuer a payment processor would report for a simulated card (the record's ``payment_issuer``); an
    invoice or a shared card given as a plain string has none."""
    if payment and payment.startswith("pfp_") and len(payment) >= 10:
        return payment[4:10]
    return None


WORDS = ("north", "blue", "river", "peak", "maple", "cedar", "lumen", "nova", "atlas", "orbit", "delta", "harbor",
         "quartz", "summit", "pixel", "vector", "signal", "forge", "ember", "crest", "tidal", "willow", "iron", "sage")
SUFFIXES = ("labs", "analytics", "systems", "health", "logistics", "media", "works", "capital", "robotics", "studio")


def company_domain(rng: np.random.Generator) -> str:
    w = WORDS[int(rng.integers(len(WORDS)))]
    s = SUFFIXES[int(rng.integers(len(SUFFIXES)))]
    return f"{w}{s}.{('com', 'io', 'ai', 'co', 'de', 'co.uk')[int(rng.integers(6))]}"


def person_domain(rng: np.random.Generator, country: str) -> str:
    local = MAIL_BY_COUNTRY.get(country)
    if local and rng.random() < 0.6:
        return local[int(rng.integers(len(local)))]
    return MAINSTREAM_MAIL[int(rng.integers(len(MAINSTREAM_MAIL)))]


def created_before(rng: np.random.Generator, start_ms: int, days_lo: float, days_hi: float) -> int:
    return int(start_ms - rng.uniform(days_lo, days_hi) * 86_400_000)


def pick_isp(rng: np.random.Generator) -> tuple[int, str, tuple[str, ...]]:
    return ISP[int(rng.integers(len(ISP)))]


# Residential-proxy services: exits on home-ISP addresses, rented by privacy users, people in restricted
# regions, scrapers *and* distillation campaigns alike. A pool is drawn from (seed, pool) only, so it is the
# same in every provider, and benign customers and attackers draw exits from the same pools.
RESI_POOLS = 3
RESI_EXITS = 600


@functools.lru_cache(maxsize=16)
def residential_pool(seed: int, pool: int) -> tuple[Endpoint, ...]:
    rng = np.random.default_rng([seed, 0x7265_7369, pool])
    return tuple(endpoints(rng, ISP, RESI_EXITS, subnets=RESI_EXITS // 3))


def residential(seed: int, rng: np.random.Generator, uas: tuple[str, ...], fps: tuple[str, ...] | None = None,
                sticky: int = 2) -> tuple[list[Endpoint], list[dict]]:
    """``sticky`` exits of one residential pool (an account's usual ones) and the whole pool as clients."""
    k = int(rng.integers(RESI_POOLS))
    pool = residential_pool(seed, k)
    home = [pool[int(j)] for j in rng.integers(0, len(pool), sticky)]
    return home, _pool_clients(seed, k, uas, fps)


@functools.lru_cache(maxsize=512)
def _pool_clients(seed: int, pool: int, uas: tuple[str, ...], fps: tuple[str, ...] | None) -> list[dict]:
    return clients(list(residential_pool(seed, pool)), uas, fps)


def vpn(rng: np.random.Generator, n: int = 2) -> list[Endpoint]:
    """Commercial VPN exits: hosting and proxy ASNs, the networks hydra clusters rent from too."""
    return endpoints(rng, PROXY + CLOUD[4:], n)
