"""The generator's constants: names and codes it draws from, the rates of clean-data mess, the
timestamp spellings, and the invalid values the defects write (checked against the contract
by `generate`)."""

from __future__ import annotations

from datetime import timezone

import numpy as np

DAY = 86_400
UTC = timezone.utc
LOG_FILE = "_generator_log.json"
PARTITION_PREFIX = "ingest_date="

CUSTOMERS, PRODUCTS, ORDERS, ORDER_ITEMS, PAYMENTS, EVENTS = (
    "customers", "products", "orders", "order_items", "payments", "events",
)
DIMENSIONS = (CUSTOMERS, PRODUCTS)

CURRENCIES = ("EUR", "USD", "GBP")
CURRENCY_P = (0.55, 0.30, 0.15)
COUNTRIES = ("DE", "FR", "GB", "US", "NL", "ES", "IT", "PL", "SE", "AT",
             "BE", "CH", "IE", "DK", "PT", "CA", "AU", "JP", "BR", "IN")
FIRST_NAMES = (("Anna", "anna"), ("Zoë", "zoe"), ("José", "jose"), ("Liam", "liam"),
               ("Sofía", "sofia"), ("Noah", "noah"), ("Mia", "mia"), ("Lukas", "lukas"),
               ("Chloé", "chloe"), ("Mateo", "mateo"), ("Emma", "emma"), ("Olivier", "olivier"),
               ("Björn", "bjorn"), ("Aoife", "aoife"), ("Jan", "jan"), ("Fatima", "fatima"),
               ("Yuki", "yuki"), ("Priya", "priya"), ("Ben", "ben"), ("Léa", "lea"))
LAST_NAMES = (("Müller", "mueller"), ("O'Brien", "obrien"), ("García", "garcia"),
              ("Smith", "smith"), ("Rossi", "rossi"), ("Nowak", "nowak"), ("Dubois", "dubois"),
              ("Jansen", "jansen"), ("Silva", "silva"), ("Tanaka", "tanaka"),
              ("Kowalski", "kowalski"), ("Andersson", "andersson"), ("Byrne", "byrne"),
              ("Novák", "novak"), ("Schmidt", "schmidt"), ("Martin", "martin"),
              ("de Vries", "devries"), ("López", "lopez"), ("Patel", "patel"), ("Brown", "brown"))
NICKNAMES = ("Sunny", "Ace", "Bee", "Doc")
DOMAINS = ("example.com", "mail.example.org", "shop.example.net", "example.co.uk", "post.example.de")
CATEGORIES = ("electronics", "home", "garden", "toys", "books", "fashion", "sports", "beauty")
ADJECTIVES = ("Classic", "Compact", "Deluxe", "Eco", "Smart", "Vintage", "Ultra", "Mini", "Pro", "Cozy")
NOUNS = ("Lamp", "Chair", "Kettle", "Backpack", "Headphones", "Puzzle", "Novel", "Sneakers",
         "Blender", "Plant Pot", "Yoga Mat", "Desk")
EXTRA_VALUES = ("", "WINTER10", "FREESHIP", "VIP", "10% off, today only")

# Weights by enum value; a value the contract adds later gets a small default weight.
ORDER_STATUS_W = {"placed": .15, "paid": .35, "shipped": .25, "delivered": .15,
                  "cancelled": .07, "refunded": .03}
PAYMENT_METHOD_W = {"card": .6, "paypal": .2, "bank_transfer": .12, "gift_card": .08}
EVENT_TYPE_W = {"page_view": .62, "add_to_cart": .2, "checkout": .1, "purchase": .08}
PLATFORM_W = {"web": .55, "ios": .25, "android": .2}

# Clean-data rates.
LATE_RATE = {ORDERS: 0.01, EVENTS: 0.005}
FAILED_ATTEMPT_RATE = 0.08
ANONYMOUS_RATE = 0.25
WHITESPACE_RATE = 0.01
ID_WHITESPACE_RATE = 0.003
CASE_RATE = 0.05
MONEY_SHORT_RATE = 0.02  # "12.5" / "12" instead of "12.50" / "12.00"
MONEY_PLUS_RATE = 0.003  # "+12.50"
WS_PADS = ((" ", ""), ("", " "), ("  ", "  "), (" ", " "))
FILE_SHUFFLE_P, FILE_HEADER_P, FILE_BOM_P, FILE_CRLF_P = 0.25, 0.25, 0.08, 0.10

# Timestamp spellings: (separator, fraction digits, zone) with zone "Z", "off", "" or "epoch".
TS_STYLES = (("T", 0, "Z"), (" ", 0, ""), ("T", 3, "Z"), ("T", 0, "off"), (" ", 0, "off"),
             ("T", 6, ""), ("", 0, "epoch"), ("T", 0, ""), (" ", 3, "off"))
_TS_ZONE = np.array([{"": 0, "Z": 1, "off": 2, "epoch": 3}[s[2]] for s in TS_STYLES])
TS_STYLE_P = (0.60, 0.10, 0.06, 0.06, 0.04, 0.04, 0.04, 0.04, 0.02)
TZ_OFFSETS_MIN = (60, 120, -300, 330, -180, 540, 0, -480, 345)

# Values that are really invalid (checked against the contract at generation time).
BAD_EMAILS = ("anna.mueller.example.com", "anna@@example.com", "anna mueller@example.com",
              "anna.mueller@example")
BAD_COUNTRIES = ("U5", "Germany", "D")
BAD_CURRENCIES = ("EURO", "US$", "E")
BAD_ENUMS = {"status": ("pending", "on_hold"), "method": ("cash", "crypto"),
             "event_type": ("scroll", "click"), "platform": ("windows", "smart_tv")}
BAD_TIMESTAMPS = ("%d/%m/%Y", "%d/%m/%Y %H:%M", "%b %d %Y %H:%M")
BAD_INTEGERS = ("two", "3x", "#2")
BAD_DURATIONS = ("1,500", "12s", "n/a")
FUTURE_DAYS = 3
