"""Controlled vocabularies a podcast feed must draw from.

Apple Podcasts' category list (the 2019 revision, which Spotify and the Podcast Index follow) and
the ISO 639-1 language codes the RSS ``<language>`` element takes. Kept as data so the model can
refuse a value Apple would reject before a feed is ever published.
"""

from __future__ import annotations

import re
from typing import Final

#: Apple Podcasts categories: top-level text → allowed subcategory texts.
APPLE_CATEGORIES: Final[dict[str, frozenset[str]]] = {
    "Arts": frozenset(
        {"Books", "Design", "Fashion & Beauty", "Food", "Performing Arts", "Visual Arts"}
    ),
    "Business": frozenset(
        {"Careers", "Entrepreneurship", "Investing", "Management", "Marketing", "Non-Profit"}
    ),
    "Comedy": frozenset({"Comedy Interviews", "Improv", "Stand-Up"}),
    "Education": frozenset({"Courses", "How To", "Language Learning", "Self-Improvement"}),
    "Fiction": frozenset({"Comedy Fiction", "Drama", "Science Fiction"}),
    "Government": frozenset(),
    "History": frozenset(),
    "Health & Fitness": frozenset(
        {"Alternative Health", "Fitness", "Medicine", "Mental Health", "Nutrition", "Sexuality"}
    ),
    "Kids & Family": frozenset(
        {"Education for Kids", "Parenting", "Pets & Animals", "Stories for Kids"}
    ),
    "Leisure": frozenset(
        {
            "Animation & Manga",
            "Automotive",
            "Aviation",
            "Crafts",
            "Games",
            "Hobbies",
            "Home & Garden",
            "Video Games",
        }
    ),
    "Music": frozenset({"Music Commentary", "Music History", "Music Interviews"}),
    "News": frozenset(
        {
            "Business News",
            "Daily News",
            "Entertainment News",
            "News Commentary",
            "Politics",
            "Sports News",
            "Tech News",
        }
    ),
    "Religion & Spirituality": frozenset(
        {"Buddhism", "Christianity", "Hinduism", "Islam", "Judaism", "Religion", "Spirituality"}
    ),
    "Science": frozenset(
        {
            "Astronomy",
            "Chemistry",
            "Earth Sciences",
            "Life Sciences",
            "Mathematics",
            "Natural Sciences",
            "Nature",
            "Physics",
            "Social Sciences",
        }
    ),
    "Society & Culture": frozenset(
        {"Documentary", "Personal Journals", "Philosophy", "Places & Travel", "Relationships"}
    ),
    "Sports": frozenset(
        {
            "Baseball",
            "Basketball",
            "Cricket",
            "Fantasy Sports",
            "Football",
            "Golf",
            "Hockey",
            "Rugby",
            "Running",
            "Soccer",
            "Swimming",
            "Tennis",
            "Volleyball",
            "Wilderness",
            "Wrestling",
        }
    ),
    "Technology": frozenset(),
    "True Crime": frozenset(),
    "TV & Film": frozenset(
        {"After Shows", "Film History", "Film Interviews", "Film Reviews", "TV Reviews"}
    ),
}

#: ISO 639-1 two-letter language codes.
ISO_639_1: Final[frozenset[str]] = frozenset(
    """
    aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy
    da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu
    hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb
    lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om
    or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw
    ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu
    """.split()  # noqa: SIM905 - a word list reads better than 184 quoted strings
)

# A primary ISO 639-1 code, optionally followed by a region (ISO 3166 alpha-2 or UN M.49).
_LANGUAGE = re.compile(r"^(?P<primary>[A-Za-z]{2})(?:-(?:[A-Za-z]{2}|[0-9]{3}))?$")


def is_language(value: str) -> bool:
    """True for an RSS language tag: ISO 639-1 code with an optional region (``en``, ``en-us``)."""
    match = _LANGUAGE.match(value)
    return match is not None and match.group("primary").lower() in ISO_639_1


def is_category(text: str, subcategory: str | None = None) -> bool:
    """True when ``text`` (and ``subcategory``, if given) is in Apple's category list."""
    subs = APPLE_CATEGORIES.get(text)
    if subs is None:
        return False
    return subcategory is None or subcategory in subs
