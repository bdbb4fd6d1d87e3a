"""A seeded generator of simple stories from a small closed grammar.

The grammar is deliberately structured so that components of a model trained on it can become
selective: names follow "named", colours precede objects, places follow "in the" / "to the",
dialogue sits between quotes, numbers precede plural objects, pronouns agree with the main
character. Every story is a list of token strings from `VOCABULARY`; words carry a leading space so
that joining tokens gives readable text.
"""

from __future__ import annotations

import random
from collections.abc import Callable

EOS = "<eos>"

GIRLS = [
    "Lily",
    "Mia",
    "Sue",
    "Anna",
    "Lucy",
    "Emma",
    "Zoe",
    "Ella",
    "Rosa",
    "Nina",
    "Ivy",
    "Maya",
    "Ruby",
    "Luna",
    "Ada",
    "Clara",
    "Jade",
    "Nora",
    "Elsa",
    "Kim",
]
BOYS = [
    "Tom",
    "Ben",
    "Max",
    "Sam",
    "Jack",
    "Leo",
    "Tim",
    "Finn",
    "Omar",
    "Kai",
    "Hugo",
    "Eli",
    "Theo",
    "Noah",
    "Milo",
    "Owen",
    "Luke",
    "Dan",
    "Ray",
    "Joe",
]
ANIMALS = [
    "cat",
    "dog",
    "bird",
    "fox",
    "rabbit",
    "bear",
    "frog",
    "duck",
    "mouse",
    "owl",
    "lion",
    "horse",
    "fish",
    "turtle",
    "pig",
    "cow",
    "sheep",
    "goat",
    "deer",
    "bee",
    "wolf",
    "puppy",
    "kitten",
    "snail",
    "tiger",
]
COLOURS = [
    "red",
    "blue",
    "green",
    "yellow",
    "purple",
    "pink",
    "orange",
    "white",
    "black",
    "brown",
    "gray",
    "gold",
]
OBJECTS = [
    "ball",
    "kite",
    "hat",
    "book",
    "box",
    "cake",
    "boat",
    "drum",
    "cup",
    "key",
    "shoe",
    "bag",
    "star",
    "flower",
    "apple",
    "toy",
    "car",
    "bell",
    "map",
    "rope",
    "shell",
    "stone",
    "leaf",
    "sock",
    "spoon",
    "basket",
    "blanket",
    "balloon",
]
PLACES = [
    "park",
    "forest",
    "garden",
    "river",
    "house",
    "school",
    "beach",
    "farm",
    "market",
    "hill",
    "lake",
    "cave",
    "castle",
    "town",
    "field",
    "kitchen",
    "zoo",
    "library",
    "meadow",
    "pond",
]
SIZES = ["little", "big", "small", "tiny", "cute", "young", "brave", "kind", "shy", "funny"]
FEELINGS = [
    "happy",
    "sad",
    "scared",
    "angry",
    "tired",
    "proud",
    "excited",
    "sleepy",
    "hungry",
    "surprised",
    "worried",
    "calm",
]
OBJECT_VERBS = [
    "found",
    "lost",
    "liked",
    "wanted",
    "painted",
    "carried",
    "dropped",
    "shared",
    "hid",
    "threw",
    "caught",
    "washed",
    "fixed",
]
MOTIONS = [
    "ran",
    "jumped",
    "walked",
    "danced",
    "sang",
    "played",
    "swam",
    "climbed",
    "laughed",
    "hopped",
    "rested",
]
NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
SAY_VERBS = ["said", "shouted", "whispered", "replied", "cried"]
TIMES = [
    ["One", "day"],
    ["The", "next", "day"],
    ["In", "the", "morning"],
    ["At", "night"],
    ["After", "lunch"],
    ["Later"],
    ["Soon"],
]

FUNCTION_WORDS = [
    "Once",
    "upon",
    "a",
    "time",
    "there",
    "was",
    "were",
    "named",
    "girl",
    "boy",
    "lived",
    "in",
    "the",
    "with",
    "near",
    "had",
    "went",
    "to",
    "In",
    "saw",
    "The",
    "and",
    "very",
    "felt",
    "counted",
    "asked",
    "In",
    "end",
    "home",
    "slept",
    "He",
    "She",
    "They",
    "he",
    "she",
    "they",
    "his",
    "her",
    "friend",
    "I",
    "like",
    "Let",
    "us",
    "go",
    "Where",
    "is",
    "my",
    "Can",
    "you",
    "help",
    "me",
    "Look",
    "at",
    "am",
    "so",
    "Thank",
    "Yes",
    "No",
    "we",
    "play",
    "There",
    "then",
    "Then",
    "all",
    "day",
    "it",
    "It",
    "found",
    "big",
    "One",
    "next",
    "morning",
    "At",
    "night",
    "After",
    "lunch",
    "Later",
    "Soon",
    "of",
    "on",
    "together",
    "The",
    "end",
    "sky",
    "sun",
    "was",
    "shining",
    "bright",
    "rain",
    "began",
    "fall",
    "wind",
    "blew",
    "hard",
]
PUNCTUATION = [".", ",", "!", "?", ' "', '"', "s"]
"""`" \""` opens a quote (with a space before it), `"\""` closes one, `"s"` makes a plural."""


def _words(words: list[str]) -> list[str]:
    return [" " + w for w in words]


def _vocabulary() -> list[str]:
    """All token strings, EOS first, in a fixed order (the model's weights depend on it)."""
    ordered = [EOS, *PUNCTUATION]
    for group in (
        FUNCTION_WORDS,
        GIRLS,
        BOYS,
        ANIMALS,
        COLOURS,
        OBJECTS,
        PLACES,
        SIZES,
        FEELINGS,
        OBJECT_VERBS,
        MOTIONS,
        NUMBERS,
        SAY_VERBS,
    ):
        ordered.extend(_words(group))
    seen: set[str] = set()
    return [t for t in ordered if not (t in seen or seen.add(t))]


VOCABULARY: list[str] = _vocabulary()


class _Story:
    """State of one story being told: its cast and props, so sentences refer back to them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        girl = rng.random() < 0.5
        self.hero = rng.choice(GIRLS if girl else BOYS)
        self.pronoun = "She" if girl else "He"
        self.possessive = "her" if girl else "his"
        self.friend = rng.choice([n for n in GIRLS + BOYS if n != self.hero])
        self.animal = rng.choice(ANIMALS)
        self.colour = rng.choice(COLOURS)
        self.object = rng.choice(OBJECTS)
        self.place = rng.choice(PLACES)
        self.tokens: list[str] = []

    def say(self, *parts: str | list[str]) -> None:
        """Append words (given without their leading space) and punctuation tokens."""
        for part in parts:
            for piece in [part] if isinstance(part, str) else part:
                self.tokens.append(piece if piece in PUNCTUATION else " " + piece)

    def pick(self, options: list[str]) -> str:
        return self.rng.choice(options)

    def subject(self) -> str:
        return self.hero if self.rng.random() < 0.6 else self.pronoun


def _intro(s: _Story) -> None:
    if s.rng.random() < 0.5:
        s.say(
            "Once",
            "upon",
            "a",
            "time",
            ",",
            "there",
            "was",
            "a",
            s.pick(SIZES),
            s.animal if s.rng.random() < 0.5 else ("girl" if s.pronoun == "She" else "boy"),
            "named",
            s.hero,
            ".",
        )
    else:
        s.say(
            "There",
            "was",
            "a",
            s.pick(SIZES),
            "girl" if s.pronoun == "She" else "boy",
            "named",
            s.hero,
            ".",
        )
    s.say(s.pronoun, "lived", "near", "the", s.place, "with", s.possessive, "friend", s.friend, ".")


def _have(s: _Story) -> None:
    s.say(s.subject(), "had", "a", s.colour, s.object, ".")


def _went(s: _Story) -> None:
    place = s.pick(PLACES)
    subject = s.hero if s.rng.random() < 0.6 else s.pronoun.lower()
    s.say(s.pick(TIMES), ",", subject, "went", "to", "the", place)
    if s.rng.random() < 0.5:
        s.say("with", s.friend)
    s.say(".")
    s.place = place


def _saw(s: _Story) -> None:
    colour = s.pick(COLOURS)
    s.say("In", "the", s.place, ",", s.pronoun.lower(), "saw", "a", colour, s.pick(ANIMALS), ".")


def _animal_moves(s: _Story) -> None:
    s.say("The", s.animal, s.pick(MOTIONS), "and", s.pick(MOTIONS), ".")


def _object_verb(s: _Story) -> None:
    s.say(s.subject(), s.pick(OBJECT_VERBS), "the", s.colour, s.object)
    if s.rng.random() < 0.4:
        s.say("in", "the", s.place)
    s.say(".")


def _feel(s: _Story) -> None:
    if s.rng.random() < 0.5:
        s.say(s.subject(), "was", "very", s.pick(FEELINGS), ".")
    else:
        s.say(s.subject(), "felt", s.pick(FEELINGS), ".")


def _count(s: _Story) -> None:
    s.say(s.subject(), "counted", s.pick(NUMBERS), s.pick(COLOURS), s.pick(OBJECTS), "s", ".")


def _quote(s: _Story) -> list[str]:
    """The words said inside a quote, ending with its punctuation."""
    choice = s.rng.randrange(8)
    if choice == 0:
        return ["I", "like", "the", s.colour, s.object, "!"]
    if choice == 1:
        return ["Let", "us", "go", "to", "the", s.pick(PLACES), "!"]
    if choice == 2:
        return ["Where", "is", "my", s.object, "?"]
    if choice == 3:
        return ["Can", "you", "help", "me", "?"]
    if choice == 4:
        return ["Look", "at", "the", s.pick(COLOURS), s.animal, "!"]
    if choice == 5:
        return ["I", "am", "so", s.pick(FEELINGS), "!"]
    if choice == 6:
        return ["Thank", "you", ",", s.friend, "!"]
    return ["Can", "we", "play", "in", "the", s.place, "?"]


def _dialogue(s: _Story) -> None:
    words = _quote(s)
    if words[-1] == "?" or s.rng.random() < 0.3:
        speaker = s.hero if s.rng.random() < 0.5 else s.friend
        verb = "asked" if words[-1] == "?" else s.pick(SAY_VERBS)
        s.say(' "', words, '"', verb, speaker, ".")
    else:
        s.say(s.subject(), s.pick(SAY_VERBS), ",", ' "', words, '"')


def _weather(s: _Story) -> None:
    if s.rng.random() < 0.5:
        s.say("The", "sun", "was", "shining", "bright", ".")
    else:
        s.say("Then", "the", "wind", "blew", "hard", "and", "rain", "began", "to", "fall", ".")


def _ending(s: _Story) -> None:
    if s.rng.random() < 0.5:
        s.say("In", "the", "end", ",", s.hero, "and", s.friend, "were", s.pick(FEELINGS), ".")
    else:
        s.say(s.pronoun, "went", "home", "and", "slept", ".")
    if s.rng.random() < 0.3:
        s.say("The", "end", ".")


_MIDDLE: list[tuple[Callable[[_Story], None], float]] = [
    (_have, 1.0),
    (_went, 1.5),
    (_saw, 1.0),
    (_animal_moves, 0.8),
    (_object_verb, 1.2),
    (_feel, 1.0),
    (_count, 0.6),
    (_dialogue, 1.8),
    (_weather, 0.4),
]


def story(rng: random.Random) -> list[str]:
    """One story as token strings (without the EOS that follows it in a stream)."""
    s = _Story(rng)
    _intro(s)
    sentences, weights = zip(*_MIDDLE, strict=True)
    for sentence in rng.choices(sentences, weights=weights, k=rng.randint(3, 8)):
        sentence(s)
    _ending(s)
    return s.tokens


def token_row(seed: str, length: int) -> list[str]:
    """`length` tokens of a stream of EOS-separated stories, cut at a random point of the first.

    The row is a pure function of `seed`, so any row of any batch can be produced directly.
    """
    rng = random.Random(seed)
    row: list[str] = []
    first = True
    while len(row) < length:
        told = [*story(rng), EOS]
        if first:
            told = told[rng.randrange(len(told)) :]
            first = False
        row.extend(told)
    return row[:length]
