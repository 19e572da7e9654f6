"""check_dom.py TOPOLOGY_JSON DOM1 DOM2 HOSTILE_NAME: checks two DOM dumps of the dashboard.

Every component of the topology is a card (div.stage) whose name is its name as text; the hostile
name appears as text only (the page's own script is the only <script> element, no element carries
an event-handler attribute); the counts of the pipeline's cards moved between the two dumps.
Exits 1 with the reasons when a check fails."""
import json
import sys
from html.parser import HTMLParser


class Cards(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.cards = {}  # data-id -> {"name": text, "count": text}
        self.scripts = 0
        self.handlers = []  # on* attributes anywhere
        self._card = None
        self._field = None
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.handlers += [k for k in a if k.startswith("on")]
        if tag == "script":
            self.scripts += 1
        if tag == "div" and "stage" in (a.get("class") or "").split():
            self._card = a["data-id"]
            self.cards[self._card] = {"name": "", "count": ""}
        elif self._card is not None:
            cls = (a.get("class") or "").split()
            if tag == "div" and "name" in cls:
                self._field = "name"
            elif a.get("data-field") == "count":
                self._field = "count"

    def handle_endtag(self, tag):
        if tag in ("div", "td"):
            self._field = None

    def handle_data(self, data):
        if self._card is not None and self._field is not None:
            self.cards[self._card][self._field] += data


def parse(path):
    p = Cards()
    with open(path, encoding="utf-8") as f:
        p.feed(f.read())
    return p


def main():
    topology_path, dom1, dom2, hostile = sys.argv[1:5]
    with open(topology_path, encoding="utf-8") as f:
        topology = json.load(f)
    first, second = parse(dom1), parse(dom2)
    errors = []
    for dump, p in (("first", first), ("second", second)):
        for c in topology["components"]:
            card = p.cards.get(str(c["id"]))
            if card is None:
                errors.append(f"{dump} load: no card for {c['name']!r}")
            elif card["name"] != c["name"]:
                errors.append(f"{dump} load: card {c['id']} shows {card['name']!r}, not {c['name']!r}")
        if p.scripts != 1:
            errors.append(f"{dump} load: {p.scripts} <script> elements (the page has one)")
        if p.handlers:
            errors.append(f"{dump} load: event-handler attributes {p.handlers}")
        if not any(card["name"] == hostile for card in p.cards.values()):
            errors.append(f"{dump} load: the name {hostile!r} is not shown as text")
    moved = 0
    for cid, card in second.cards.items():
        before = first.cards.get(cid)
        if before and before["count"] and card["count"] and int(card["count"]) > int(before["count"]):
            moved += 1
    if moved != len(topology["components"]):
        errors.append(f"counts moved on {moved} of {len(topology['components'])} cards")
    for e in errors:
        print("check_dom:", e, file=sys.stderr)
    if errors:
        sys.exit(1)
    print(f"check_dom: {len(topology['components'])} cards, all named as text, all counts moved")


if __name__ == "__main__":
    main()
