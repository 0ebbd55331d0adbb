"""The message table says the same things in both languages.

Proves, for every entry of `shared.messages.MESSAGES`: the Vietnamese and the English
template name the same facts (the same placeholders, up to their `_vi`/`_en` suffix), the
two texts differ, and the code it is filed under is one of DESIGN §3's, with or without a
variant suffix.
"""

from __future__ import annotations

import re
import string

import pytest

from shared.messages import MESSAGES

pytestmark = pytest.mark.unit

CODES = {
    "E100", "E101", "E102", "E103", "E104", "E105", "E106", "E107",
    "E110", "E111", "E112", "E113", "E114", "E120", "E130", "E140", "E141", "E142", "E150",
}  # fmt: skip


def facts(template: str) -> set[str]:
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    return {re.sub(r"_(vi|en)$", "", name) for name in names}


@pytest.mark.parametrize("key", list(MESSAGES))
def test_both_languages_name_the_same_facts(key: str) -> None:
    vi, en = MESSAGES[key]
    assert facts(vi) == facts(en), key
    assert vi != en
    assert key.split(".", 1)[0] in CODES
