"""VQA accuracy as the official evaluation (GT-Vision-Lab/VQA, vqaEval.py) computes it: the answer is
normalised (punctuation, number words, articles, contractions); with several human answers (VQAv2 has
10) an answer scores the mean over the leave-one-out subsets of min(1, matches / 3), the references
punctuation-processed when they disagree; with one reference, exact agreement of the normalised answers."""
from __future__ import annotations

import re

NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
           "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = {"a", "an", "the"}
_ONE = ("ain't aren't can't could've couldn't didn't doesn't don't hadn't hasn't haven't he'd he's how'd how'll "
        "how's isn't it'd it'll ma'am mightn't might've mustn't must've needn't not've o'clock oughtn't shan't "
        "should've shouldn't somebody'll somebody's someone'd someone'll someone's something'd something'll that's "
        "there'd there're there's they'd they'll they're they've 'twas wasn't we've weren't what'll what're what's "
        "what've when's where'd where's where've who'd who'll who's who've why'll why're why's won't would've "
        "wouldn't y'all you'd you'll you're you've").split()
_SEVERAL = ("couldn't've hadn't've he'd've it'd've mightn't've 'ow's'at she'd've shouldn't've somebody'd've "
            "someone'd've something'd've there'd've they'd've we'd've who'd've wouldn't've y'all'll y'all'd've "
            "you'd've").split()


def _contractions() -> dict:
    """The official table: a word missing its apostrophe -> the contraction; a contraction with several
    apostrophes from each spelling missing one; its few odd entries. (Its capitalised keys, such as "Im",
    never meet the lower-cased text, so they are left out.)"""
    table = {w.replace("'", ""): w for w in _ONE}
    for word in _SEVERAL:
        table.update({word[:i] + word[i + 1:]: word for i, c in enumerate(word) if c == "'"})
    return {**table, "somebody'd": "somebodyd", "let's": "let's", "she's": "she's"}


CONTRACTIONS = _contractions()
PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`",
               ",", "?", "!"]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")


def process_punctuation(text: str) -> str:
    """The official processPunctuation: each mark is dropped where it touches a space (or the text has
    a digit-comma-digit), else replaced by a space; then periods not inside numbers go."""
    out = text
    for p in PUNCTUATION:
        if (p + " " in text or " " + p in text) or _COMMA_STRIP.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out)


def process_digit_article(text: str) -> str:
    """The official processDigitArticle: lower case, number words -> digits, no articles, contractions."""
    words = [NUMBERS.get(w, w) for w in text.lower().split()]
    return " ".join(CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES)


def normalize_answer(answer: str) -> str:
    """A predicted answer as the official evaluation normalises it."""
    return process_digit_article(process_punctuation(answer.replace("\n", " ").replace("\t", " ").strip()))


# One reference (the world's questions) is scored as unio always scored it, so world figures stay
# comparable: each mark checked against the text as already processed, and 10 contractions.
_SINGLE_CONTRACTIONS = {k: CONTRACTIONS[k] for k in ("dont", "doesnt", "isnt", "arent", "cant", "wont", "whats",
                                                     "thats", "youre")} | {"im": "i'm"}


def _single_reference_form(answer: str) -> str:
    text = answer.replace("\n", " ").replace("\t", " ").strip().lower()
    for p in PUNCTUATION:
        if (p + " " in text or " " + p in text) or _COMMA_STRIP.search(text) is not None:
            text = text.replace(p, "")
        else:
            text = text.replace(p, " ")
    words = [NUMBERS.get(w, w) for w in _PERIOD_STRIP.sub("", text).split() if w not in ARTICLES]
    return " ".join(_SINGLE_CONTRACTIONS.get(w, w) for w in words)


def vqa_accuracy(prediction: str, references: list) -> float:
    """One answer's score: the official leave-one-out accuracy over several references; agreement of the
    normalised answers with a single one (where the official formula, with no other answers, gives 0)."""
    if len(references) == 1:
        return float(_single_reference_form(references[0]) == _single_reference_form(prediction))
    pred = normalize_answer(prediction)
    refs = [process_punctuation(r) for r in references] if len(set(references)) > 1 else list(references)
    matches = sum(r == pred for r in refs)
    return sum(min(1.0, (matches - (r == pred)) / 3) for r in refs) / len(refs)
