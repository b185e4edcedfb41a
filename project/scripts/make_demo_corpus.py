"""Write the bundled demo corpus: our own template sentences, nested mentions.

python project/scripts/make_demo_corpus.py assets/demo
Types: person, organization, location, dish. Organizations and dishes often
contain a location ("Porto Rowing Club", "Lisbon custard tart"): nested.
"""
import json
import random
import sys
from pathlib import Path

PEOPLE = ["Ana Silva", "Tomas Berg", "Mei Tanaka", "Omar Haddad", "Lena Fischer", "Ravi Menon",
          "Ines Costa", "Pavel Novak", "Sara Lind", "Kofi Mensah", "Nadia Rossi", "Jonas Weber"]
PLACES = ["Lisbon", "Porto", "Oslo", "Kyoto", "Cairo", "Lyon", "Bergen", "Accra", "Turin", "Graz",
          "Valencia", "Krakow"]
ORG_SUFFIXES = ["Rowing Club", "City Library", "Chess Society", "Harbour Authority", "Film Festival",
                "Science Museum"]
PLAIN_ORGS = ["Northwind Bakery", "Bluefin Press", "Greenway Transit", "Atlas Robotics"]
DISHES = ["fish stew", "custard tart", "noodle soup", "bean salad", "apple cake", "rice pudding"]

TEMPLATES = [
    "{person} moved to {place} last spring .",
    "{person} joined the {org} in {place} .",
    "The {org} opened a new office near {place} .",
    "{person} ordered the {dish} at a cafe in {place} .",
    "Visitors to {place} often try the {dish} .",
    "{person} and {person2} met at the {org} .",
    "The {org} hired {person} as a guide .",
    "{person} wrote a book about {place} .",
    "A reporter from {org} interviewed {person} .",
    "{person} cooked {dish} for the {org} .",
]


def mention(tokens, text, label, mentions, nested=()):
    start = len(tokens)
    words = text.split()
    tokens.extend(words)
    mentions.append({"start": start, "end": start + len(words), "entity_type": label})
    for inner_text, inner_label in nested:
        inner = inner_text.split()
        for i in range(len(words) - len(inner) + 1):
            if words[i : i + len(inner)] == inner:
                mentions.append({"start": start + i, "end": start + i + len(inner), "entity_type": inner_label})
                break


def organization(rng):
    if rng.random() < 0.3:
        return rng.choice(PLAIN_ORGS), ()
    place = rng.choice(PLACES)
    return f"{place} {rng.choice(ORG_SUFFIXES)}", ((place, "location"),)


def dish(rng):
    if rng.random() < 0.5:
        place = rng.choice(PLACES)
        return f"{place} {rng.choice(DISHES)}", ((place, "location"),)
    return rng.choice(DISHES), ()


def build(rng, doc_id):
    """One sentence from a random template, with its (nested) mentions."""
    template = rng.choice(TEMPLATES)
    tokens, mentions = [], []
    person, person2 = rng.sample(PEOPLE, 2)
    for piece in template.split():
        if piece == "{person}":
            mention(tokens, person, "person", mentions)
        elif piece == "{person2}":
            mention(tokens, person2, "person", mentions)
        elif piece == "{place}":
            mention(tokens, rng.choice(PLACES), "location", mentions)
        elif piece == "{org}":
            text, nested = organization(rng)
            mention(tokens, text, "organization", mentions, nested)
        elif piece == "{dish}":
            text, nested = dish(rng)
            mention(tokens, text, "dish", mentions, nested)
        else:
            tokens.append(piece)
    return {"tokens": tokens, "doc_id": doc_id, "entity_mentions": mentions}


def main(out: Path, n_train: int = 240, n_dev: int = 60) -> None:
    rng = random.Random(13)
    out.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        with (out / f"{split}.jsonl").open("w", encoding="utf8") as file:
            for i in range(n):
                file.write(json.dumps(build(rng, f"demo-{split}-{i // 5}")) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
