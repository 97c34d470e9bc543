"""Texts that tokenizers disagree on: the shared sample for tokenizer parity tests.

`VARIED_TEXTS` covers accents (composed and decomposed), CJK, Hangul, emoji (with skin tones and
ZWJ sequences), full-width forms, punctuation runs, odd whitespace, zero-width and control
characters, special tokens written in the text, words at and over the 100-character limit, and
empty strings. `VARIED_PAIRS` are (first, second) pairs, some long enough to need truncation.

Example:
    >>> from ptft_keras.testing.unicode_samples import VARIED_PAIRS, VARIED_TEXTS
    >>> "" in VARIED_TEXTS and all(len(pair) == 2 for pair in VARIED_PAIRS)
    True
"""

VARIED_TEXTS = [
    # accents, composed and decomposed
    "Café au lait, s'il vous plaît.",
    "héllo wörld",
    "naïve façade — Ångström résumé",
    "e\u0301le\u0300ve a\u0308 (decomposed accents)",
    "İSTANBUL ıi ΣΊΣΥΦΟΣ ς МОСКВА Straße STRASSE",
    "Łódź Ærøskøbing ĳ ǅ ﬁne",
    # CJK, Hangul, other scripts
    "北京欢迎你！BERT模型很好。",
    "日本語のテキスト、カタカナ",
    "한국어 텍스트입니다",
    "مَرْحَبًا بالعالم",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    # emoji
    "I love 🍕 and 🚀!!",
    "👍🏽👨‍👩‍👧 🇫🇷 ❤️",
    # full-width forms
    "ＦＵＬＬ－ｗｉｄｔｈ　ｔｅｘｔ！ １２３",
    # punctuation runs and symbols
    "Wait...what?!?! --->>> *** ¿¡Qué!?",
    "«quotes» „german“ ‘single’ “double” (parens) [brackets] {braces}",
    "The U.S.A. costs $3.50 (approx.) — 50% off! ½ € £ ¥ © ® ™ °C",
    "e-mail: foo@bar.com, url https://x.org/a?b=c#d&e=f_g~h",
    "a.b,c;d:e!f?g^h`i|j\\k",
    # whitespace, zero-width and control characters
    "tabs\tand\nnewlines\r\nhere",
    "non\u00a0breaking\u2009thin\u3000ideographic\u2028line\u2029para",
    "zero\u200bwidth\u200cnon\u200djoiner\u2060word",
    "\ufeffbyte order mark at start",
    "control\x00\x07\x1b\x7f chars\x0b\x0c and \x85 next-line",
    "soft\u00adhyphen and replacement \ufffd char, private \ue000 use",
    "  leading and trailing spaces   ",
    # special tokens written in the text
    "hello [MASK] world [SEP] x[CLS]y [mask] [UNK]",
    # words around transformers' 100-character limit
    "a" * 100,
    "b" * 101 + " short",
    "supercalifragilisticexpialidocious" * 4,
    "unaffable antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    # empty and whitespace-only
    "",
    "   ",
    "\u200b\u200b",
    # numbers
    "3.14159 1,000,000 2nd 1st ٣٤٥ ⅷ",
]

VARIED_PAIRS = [
    ("Where is Paris?", "Paris is the capital of France."),
    ("Café?", "北京欢迎你 🍕 ＦＵＬＬ－ｗｉｄｔｈ"),
    ("", "an empty first segment"),
    ("an empty second segment", ""),
    ("short question", " ".join(["a very long context that must be truncated"] * 30)),
    (" ".join(["a long question that also needs cutting"] * 20), " ".join(["and a long context"] * 40)),
    ("hello [SEP] there", "tabs\tand\u00a0spaces\u200b"),
]
